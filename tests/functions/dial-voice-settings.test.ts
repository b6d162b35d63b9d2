/**
 * The org's voice settings on the wire (functions/_shared/voice/dialer.ts,
 * against the Vapi stand-in, which checks assistantOverrides as Vapi's
 * validation does): a dial given the org's interruption sensitivity sends it
 * as assistantOverrides.stopSpeakingPlan (numWords 0, voiceSeconds 0.4 to 0
 * s, the org default 0.5 being Vapi's default 0.2) beside our metadata, and
 * Vapi takes the call; a dial without settings leaves the assistant's own.
 * The voice and transcriber overrides need a provider, which org_settings
 * does not hold: the stand-in refuses them without one, as Vapi does.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createVapiDialer, type DialRequest, type VoiceDialer } from '../../functions/_shared/voice/dialer.ts';
import { startVapiStub, type VapiStub } from '../support/vapi-stub.ts';

let vapi: VapiStub;
let dialer: VoiceDialer;

const request = (callId: string, extra: Partial<DialRequest> = {}): DialRequest => ({
  to: '+15550102733',
  assistantId: 'asst-voice-settings',
  phoneNumberId: 'pn-voice-settings',
  metadata: { call_id: callId, org_id: '2733aaaa-0000-4000-8000-000000000001' },
  ...extra,
});

/** The assistantOverrides of the POST /call that created a call, as Vapi received them. */
function sentOverrides(): Record<string, unknown> {
  const placed = vapi.placed();
  expect(placed).toHaveLength(1);
  expect(placed[0].status).toBe(201);
  return placed[0].body.assistantOverrides as Record<string, unknown>;
}

beforeAll(async () => {
  vapi = await startVapiStub();
  dialer = createVapiDialer({ apiKey: vapi.apiKey, baseUrl: vapi.baseUrl, timeoutMs: 2_000 });
});

afterAll(async () => {
  await vapi?.close();
});

beforeEach(() => vapi.reset());

describe('a dial with the org\'s voice settings', () => {
  it('sends the interruption sensitivity as stopSpeakingPlan beside the metadata, and Vapi takes the call', async () => {
    const placed = await dialer.dial(request('dial-voice-settings-1', { voice: { interruptionSensitivity: 0.9 } }));
    expect(placed.status).toBe('queued');
    expect(sentOverrides()).toEqual({
      metadata: { call_id: 'dial-voice-settings-1', org_id: '2733aaaa-0000-4000-8000-000000000001' },
      stopSpeakingPlan: { numWords: 0, voiceSeconds: 0.04 },
    });
  });

  it.each([
    [0, 0.4],
    [0.25, 0.3],
    [0.5, 0.2],
    [1, 0],
  ])('maps sensitivity %s onto voiceSeconds %s (the org default 0.5 is Vapi\'s default 0.2)', async (sensitivity, seconds) => {
    await dialer.dial(request(`dial-voice-settings-${sensitivity}`, { voice: { interruptionSensitivity: sensitivity } }));
    expect(sentOverrides().stopSpeakingPlan).toEqual({ numWords: 0, voiceSeconds: seconds });
  });

  it('without settings sends only the metadata (the assistant\'s own plan)', async () => {
    await dialer.dial(request('dial-voice-settings-none'));
    expect(sentOverrides()).toEqual({
      metadata: { call_id: 'dial-voice-settings-none', org_id: '2733aaaa-0000-4000-8000-000000000001' },
    });
  });
});

describe('the Vapi stand-in checks assistantOverrides as Vapi does', () => {
  const post = (assistantOverrides: Record<string, unknown>) =>
    fetch(`${vapi.baseUrl}/call`, {
      method: 'POST',
      headers: { authorization: `Bearer ${vapi.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        assistantId: 'asst-voice-settings',
        phoneNumberId: 'pn-voice-settings',
        customer: { number: '+15550102733' },
        assistantOverrides,
      }),
    });

  it('refuses a voice id, speed or language without the provider org_settings does not hold', async () => {
    const answer = await post({ voice: { voiceId: 'Elliot', speed: 1.2 }, transcriber: { language: 'en' } });
    expect(answer.status).toBe(400);
    expect(((await answer.json()) as { message: string[] }).message).toEqual([
      'assistantOverrides.voice.provider must be one of the supported providers',
      'assistantOverrides.transcriber.provider must be one of the supported providers',
    ]);
    expect(vapi.placed()).toHaveLength(0);
  });

  it('refuses a stopSpeakingPlan out of Vapi\'s ranges and unknown override properties', async () => {
    const answer = await post({ stopSpeakingPlan: { numWords: 0, voiceSeconds: 0.6 }, interruptionSensitivity: 0.5 });
    expect(answer.status).toBe(400);
    expect(((await answer.json()) as { message: string[] }).message).toEqual([
      'assistantOverrides.property interruptionSensitivity should not exist',
      'assistantOverrides.stopSpeakingPlan.voiceSeconds must not be greater than 0.5',
    ]);
    expect(vapi.placed()).toHaveLength(0);
  });
});
