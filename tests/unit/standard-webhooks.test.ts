import { createHmac, randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { sign, signatureHeader } from '../../functions/_shared/standard-webhooks.ts';

const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/** An implementation written from the spec alone, to check ours against. */
function specSignature(secret: string, msgId: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return `v1,${createHmac('sha256', key).update(`${msgId}.${timestamp}.${body}`).digest('base64')}`;
}

describe('Standard Webhooks signatures', () => {
  const msgId = 'msg_2b6f0cbd1a8e4d0f9c3b7a5e4d2c1b0a';
  const body = JSON.stringify({
    type: 'document.failed',
    timestamp: '2026-11-23T10:00:00.000Z',
    data: { name: 'ä.pdf' },
  });

  it('matches the test vector of the Standard Webhooks libraries', async () => {
    expect(
      await sign(
        'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
        'msg_p5jXN8AQM9LWM0D4loKWxJek',
        1614265330,
        '{"test": 2432232314}',
      ),
    )
      .toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('equals an independent HMAC-SHA256 over "id.timestamp.body" (UTF-8) and verifies with the standardwebhooks package', async () => {
    const secret = newSecret();
    const timestamp = Math.floor(Date.now() / 1000);
    const header = await signatureHeader([secret], msgId, timestamp, body);
    expect(header).toBe(specSignature(secret, msgId, timestamp, body));
    const headers = { 'webhook-id': msgId, 'webhook-timestamp': String(timestamp), 'webhook-signature': header };
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
  });

  it('signs with every secret during a rotation, so receivers holding either one accept', async () => {
    const [newer, older] = [newSecret(), newSecret()];
    const timestamp = Math.floor(Date.now() / 1000);
    const header = await signatureHeader([newer, older], msgId, timestamp, body);
    expect(header.split(' ')).toEqual([
      specSignature(newer, msgId, timestamp, body),
      specSignature(older, msgId, timestamp, body),
    ]);
    const headers = { 'webhook-id': msgId, 'webhook-timestamp': String(timestamp), 'webhook-signature': header };
    for (const secret of [newer, older]) expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(newSecret()).verify(body, headers)).toThrow();
    // A changed byte in the body breaks every signature.
    expect(() => new Webhook(newer).verify(body.replace('ä', 'a'), headers)).toThrow();
  });

  it('refuses to sign without a secret, or with one that is not base64', async () => {
    await expect(signatureHeader([], msgId, 1, body)).rejects.toThrow(/No secret/);
    await expect(sign('whsec_not base64!', msgId, 1, body)).rejects.toThrow(/base64/);
  });
});
