/**
 * The `webhooks` admin function over HTTP: gateway + real Deno (the function verifies the JWT itself),
 * against the run's shared database, as each org role and an outsider.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JwtClaims } from '../../functions/_shared/auth.ts';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { createWebhooksHandler } from '../../functions/webhooks/handler.ts';
import { FORBIDDEN_MESSAGE, OWNER_ONLY_REPLAY_MESSAGE } from '../../functions/webhooks/operations.ts';
import { signUserToken } from '../../scripts/local/keys.ts';
import { startTestStack, type TestStack } from './support.ts';

const ORG = randomUUID();
const OTHER_ORG = randomUUID();
const users = {
  owner: randomUUID(),
  admin: randomUUID(),
  member: randomUUID(),
  outsider: randomUUID(), // the owner of OTHER_ORG
};
type Who = keyof typeof users;

// IP literals: inside Deno the resolver cannot be stubbed, and these tests must not depend on DNS.
const PUBLIC_URL = 'https://93.184.215.14/hooks/orders';
const OTHER_PUBLIC_URL = 'https://8.8.8.8/incoming';

interface EndpointJson {
  id: string;
  url: string;
  enabled: boolean;
  disabled_at: string | null;
}

/** Every field any answer of this API carries; each test asserts which ones it got. */
interface AnswerBody {
  endpoint: EndpointJson;
  secret: string;
  previous_secret_valid_until: string;
  delivery_id: string;
  error: { code: string; message: string; request_id?: string };
}

interface Answer {
  status: number;
  headers: Headers;
  body: AnswerBody;
}

describe('webhooks function', () => {
  let stack: TestStack;
  let loopbackStack: TestStack;
  let sql: Sql;
  const tokens = {} as Record<Who, string>;

  beforeAll(async () => {
    [stack, loopbackStack] = await Promise.all([
      startTestStack({ env: { WEBHOOK_ALLOW_LOOPBACK: 'false' } }),
      startTestStack({ env: { WEBHOOK_ALLOW_LOOPBACK: 'true' } }),
    ]);
    sql = createSql(stack.dbUrl, { max: 1 });
    await sql.begin(async (tx) => {
      for (const [who, id] of Object.entries(users)) {
        await tx`insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data)
                 values (${id}, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
                         ${`${who}-${id.slice(0, 8)}@webhooks-fn.test`}, '{}', '{}')`;
      }
      const suffix = ORG.slice(0, 8);
      await tx`insert into public.organizations (id, name, slug) values
                 (${ORG}, 'Hooks', ${`fn-webhooks-${suffix}`}), (${OTHER_ORG}, 'Other', ${`fn-webhooks-other-${suffix}`})`;
      await tx`insert into public.memberships (org_id, user_id, role) values
                 (${ORG}, ${users.owner}, 'owner'), (${ORG}, ${users.admin}, 'admin'),
                 (${ORG}, ${users.member}, 'member'), (${OTHER_ORG}, ${users.outsider}, 'owner')`;
    });
    for (const [who, id] of Object.entries(users) as [Who, string][]) {
      tokens[who] = await signUserToken({ id, email: `${who}@webhooks-fn.test` });
    }
  });

  afterAll(async () => {
    if (sql) {
      // Endpoints, deliveries and secrets go with the orgs (on delete cascade); memberships too, then the users.
      await sql`delete from public.organizations where id in (${ORG}, ${OTHER_ORG})`;
      await sql`delete from auth.users where id in ${sql(Object.values(users))}`;
      await sql.end({ timeout: 1 });
    }
    await stack?.stop();
    await loopbackStack?.stop();
  });

  async function call(
    method: string,
    path: string,
    options: { as?: Who | null; body?: unknown; raw?: string; on?: TestStack } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    const who = options.as === undefined ? 'admin' : options.as;
    if (who !== null) headers.authorization = `Bearer ${tokens[who]}`;
    const body = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    const response = await fetch(`${(options.on ?? stack).functionsUrl}/webhooks${path}`, { method, headers, body });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text === '' ? {} : JSON.parse(text) };
  }

  function expectError(answer: Answer, status: number, code: string): void {
    expect(answer.status, JSON.stringify(answer.body)).toBe(status);
    expect(answer.headers.get('content-type')).toBe('application/json');
    expect(answer.body).toEqual({ error: { code, message: expect.any(String), request_id: expect.any(String) } });
  }

  async function createEndpoint(body: Record<string, unknown> = {}): Promise<{ id: string; secret: string }> {
    const answer = await call('POST', '/endpoints', { body: { org_id: ORG, url: PUBLIC_URL, ...body } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    return { id: answer.body.endpoint.id, secret: answer.body.secret };
  }

  /** A snapshot of the org's endpoints, to show a refused request changed nothing. */
  const endpointsOfOrg = () =>
    sql`select id, url, description, event_types, enabled, disabled_reason, updated_at
        from public.webhook_endpoints where org_id = ${ORG} order by id`;

  const activeSecrets = (endpointId: string) =>
    sql<{ secret: string; expires_at: Date | null }[]>`
      select secret, expires_at from private.webhook_endpoint_secrets
      where endpoint_id = ${endpointId} and (expires_at is null or expires_at > clock_timestamp())
      order by id`;

  const deliveriesOf = (endpointId: string) =>
    sql<{ id: string }[]>`select id from public.webhook_deliveries where endpoint_id = ${endpointId} order by id`;

  /** What a user sees of the table through RLS, as PostgREST would show it. */
  const visibleEndpoints = (who: Who) => {
    const claims: JwtClaims = { role: 'authenticated', aud: 'authenticated', sub: users[who], exp: 4102444800 };
    return withUserScope(sql, claims, (tx) => tx<{ id: string }[]>`select id from public.webhook_endpoints`);
  };

  describe('creating an endpoint', () => {
    it('lets an admin create one: 201 with the row and a whsec_ secret of 32 random bytes, stored apart', async () => {
      const answer = await call('POST', '/endpoints', {
        body: {
          org_id: ORG,
          url: PUBLIC_URL,
          description: 'Orders',
          event_types: ['document.ready', 'call.ended', 'document.ready'],
        },
      });
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      expect(answer.headers.get('cache-control')).toBe('no-store');
      const { endpoint, secret } = answer.body;
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
      expect(Buffer.from(secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
      expect(endpoint).toMatchObject({
        org_id: ORG,
        url: PUBLIC_URL,
        description: 'Orders',
        event_types: ['call.ended', 'document.ready'],
        enabled: true,
        disabled_reason: null,
        created_by: users.admin,
      });
      expect(Object.keys(endpoint).sort()).toEqual([
        'created_at', 'created_by', 'description', 'disabled_at', 'disabled_reason', 'enabled', 'event_types',
        'failing_since', 'id', 'org_id', 'updated_at', 'url',
      ]);

      const [stored] = await sql`select e.*, row_to_json(e)::text as json from public.webhook_endpoints e
                                 where id = ${endpoint.id}`;
      expect(stored).toMatchObject({ org_id: ORG, url: PUBLIC_URL, event_types: ['call.ended', 'document.ready'] });
      expect(stored.json).not.toContain(secret.slice('whsec_'.length));
      expect(await activeSecrets(endpoint.id)).toEqual([{ secret, expires_at: null }]);
      // Members read it through RLS (never the secret: it is not in the table).
      expect((await visibleEndpoints('member')).map((row) => row.id)).toContain(endpoint.id);
    });

    it('refuses a member with 403 forbidden, before looking at the URL, and stores nothing', async () => {
      const before = await endpointsOfOrg();
      expectError(await call('POST', '/endpoints', { as: 'member', body: { org_id: ORG, url: PUBLIC_URL } }), 403, 'forbidden');
      // Permission comes first: an unsafe URL from a member is still a 403, not a verdict on the URL.
      const unsafe = { org_id: ORG, url: 'https://10.0.0.1/' };
      expectError(await call('POST', '/endpoints', { as: 'member', body: unsafe }), 403, 'forbidden');
      expect(await endpointsOfOrg()).toEqual(before);
    });

    it("refuses another org's owner: 403 creating in the org, 404 for its endpoints, exactly as for a missing id", async () => {
      const { id } = await createEndpoint({ description: 'hidden from outsiders' });
      const [secretsBefore, deliveriesBefore] = [await activeSecrets(id), await deliveriesOf(id)];
      expectError(await call('POST', '/endpoints', { as: 'outsider', body: { org_id: ORG, url: PUBLIC_URL } }), 403, 'forbidden');
      expect((await visibleEndpoints('outsider')).map((row) => row.id)).not.toContain(id);
      const missing = randomUUID();
      const attempts: [string, (target: string) => string, unknown][] = [
        ['PATCH', (target) => `/endpoints/${target}`, { enabled: false }],
        ['PATCH', (target) => `/endpoints/${target}`, { url: OTHER_PUBLIC_URL }],
        ['POST', (target) => `/endpoints/${target}/rotate-secret`, undefined],
        ['POST', (target) => `/endpoints/${target}/test`, undefined],
        ['DELETE', (target) => `/endpoints/${target}`, undefined],
      ];
      for (const [method, path, body] of attempts) {
        const theirs = await call(method, path(id), { as: 'outsider', body });
        expectError(theirs, 404, 'not_found');
        // Word for word what an id that does not exist gets, so the answer tells nothing.
        const unknown = await call(method, path(missing), { as: 'outsider', body });
        expectError(unknown, 404, 'not_found');
        expect(theirs.body.error.message).toBe(unknown.body.error.message);
      }
      const [row] = await sql`select description, enabled from public.webhook_endpoints where id = ${id}`;
      expect(row).toEqual({ description: 'hidden from outsiders', enabled: true });
      expect(await activeSecrets(id)).toEqual(secretsBefore);
      expect(await deliveriesOf(id)).toEqual(deliveriesBefore);
    });

    it('holds an org to 20 endpoints (422 with the database\'s reason)', async () => {
      const create = () => call('POST', '/endpoints', { as: 'outsider', body: { org_id: OTHER_ORG, url: PUBLIC_URL } });
      for (let i = 0; i < 20; i += 1) expect((await create()).status).toBe(201);
      const refused = await create();
      expectError(refused, 422, 'invalid_request');
      expect(refused.body.error.message).toBe('an organization has at most 20 webhook endpoints');
      expect(await sql`select 1 from public.webhook_endpoints where org_id = ${OTHER_ORG}`).toHaveLength(20);
    });

    it.each([
      'https://127.0.0.1/',
      'https://10.0.0.1/',
      'http://example.com/',
      'https://169.254.169.254/latest/meta-data/',
      'https://localhost/',
      'https://[::1]/',
      'https://[fd00:ec2::254]/',
      'https://192.168.1.10:8443/hook',
    ])('refuses %s with 422 unsafe_url and stores nothing', async (url) => {
      const before = await endpointsOfOrg();
      expectError(await call('POST', '/endpoints', { body: { org_id: ORG, url } }), 422, 'unsafe_url');
      expect(await endpointsOfOrg()).toEqual(before);
    });

    it('accepts an http loopback receiver only where WEBHOOK_ALLOW_LOOPBACK=true (the local stack)', async () => {
      const url = 'http://127.0.0.1:9/receiver';
      expectError(await call('POST', '/endpoints', { body: { org_id: ORG, url } }), 422, 'unsafe_url');
      const answer = await call('POST', '/endpoints', { body: { org_id: ORG, url }, on: loopbackStack });
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      expect(answer.body.endpoint.url).toBe(url);
      // Still no private network, even there.
      const privateUrl = { org_id: ORG, url: 'http://10.0.0.1/' };
      expectError(await call('POST', '/endpoints', { body: privateUrl, on: loopbackStack }), 422, 'unsafe_url');
    });

    it('refuses an unknown event type with 422 invalid_request from the catalogue check, storing nothing', async () => {
      const before = await endpointsOfOrg();
      const answer = await call('POST', '/endpoints', {
        body: { org_id: ORG, url: PUBLIC_URL, event_types: ['document.ready', 'document.exploded'] },
      });
      expectError(answer, 422, 'invalid_request');
      expect(answer.body.error.message).toContain('unknown event type(s): document.exploded');
      expect(await endpointsOfOrg()).toEqual(before);
    });

    it.each<[string, string | object, number, string]>([
      ['not JSON', '{"org_id":', 400, 'invalid_json'],
      ['an empty body', '', 400, 'invalid_json'],
      ['a missing url', { org_id: ORG }, 422, 'invalid_request'],
      ['an org_id that is not a uuid', { org_id: 'acme', url: PUBLIC_URL }, 422, 'invalid_request'],
      ['a url over 2048 characters', { org_id: ORG, url: `https://8.8.8.8/${'a'.repeat(2040)}` }, 422, 'invalid_request'],
      ['a description over 500 characters', { org_id: ORG, url: PUBLIC_URL, description: 'x'.repeat(501) }, 422, 'invalid_request'],
      ['51 event types', { org_id: ORG, url: PUBLIC_URL, event_types: Array(51).fill('document.ready') }, 422, 'invalid_request'],
      ['a malformed event type', { org_id: ORG, url: PUBLIC_URL, event_types: ['Document.Ready'] }, 422, 'invalid_request'],
      ['event_types that is not a list', { org_id: ORG, url: PUBLIC_URL, event_types: 'document.ready' }, 422, 'invalid_request'],
      ['an unknown field', { org_id: ORG, url: PUBLIC_URL, eventTypes: ['document.ready'] }, 422, 'invalid_request'],
      ['a JSON array', [ORG], 422, 'invalid_request'],
    ])('answers %s with %i %s and stores nothing', async (_, body, status, code) => {
      const before = await endpointsOfOrg();
      const answer = await call('POST', '/endpoints', typeof body === 'string' ? { raw: body } : { body });
      expectError(answer, status, code);
      expect(await endpointsOfOrg()).toEqual(before);
    });
  });

  describe('changing an endpoint', () => {
    it('disables (reason and time set, pending deliveries canceled) and re-enables (cleared)', async () => {
      const { id } = await createEndpoint();
      const test = await call('POST', `/endpoints/${id}/test`);
      expect(test.status).toBe(202);

      const disabled = await call('PATCH', `/endpoints/${id}`, { body: { enabled: false } });
      expect(disabled.status, JSON.stringify(disabled.body)).toBe(200);
      expect(disabled.body.endpoint).toMatchObject({ id, enabled: false, disabled_reason: 'disabled by an admin' });
      expect(Date.parse(disabled.body.endpoint.disabled_at ?? '')).not.toBeNaN();
      const [delivery] = await sql`select status from public.webhook_deliveries where id = ${test.body.delivery_id}`;
      expect(delivery.status).toBe('canceled');

      const enabled = await call('PATCH', `/endpoints/${id}`, { body: { enabled: true } });
      expect(enabled.status).toBe(200);
      expect(enabled.body.endpoint).toMatchObject({ id, enabled: true, disabled_reason: null, disabled_at: null });
      const [stored] = await sql`select enabled, disabled_reason, disabled_at from public.webhook_endpoints where id = ${id}`;
      expect(stored).toEqual({ enabled: true, disabled_reason: null, disabled_at: null });
    });

    it('changes url, description and filter; an empty filter means every type; omitted fields stay', async () => {
      const { id } = await createEndpoint({ description: 'before', event_types: ['call.ended'] });
      const changed = await call('PATCH', `/endpoints/${id}`, {
        body: { url: OTHER_PUBLIC_URL, event_types: ['member.joined', 'call.started'] },
      });
      expect(changed.status, JSON.stringify(changed.body)).toBe(200);
      expect(changed.body.endpoint).toMatchObject({
        url: OTHER_PUBLIC_URL,
        description: 'before',
        event_types: ['call.started', 'member.joined'],
      });
      const cleared = await call('PATCH', `/endpoints/${id}`, { body: { event_types: [], description: '' } });
      expect(cleared.body.endpoint).toMatchObject({ url: OTHER_PUBLIC_URL, description: '', event_types: [] });
    });

    it('a narrower filter cancels the queued deliveries of the types it leaves out, not replays or test sends', async () => {
      const { id } = await createEndpoint();
      const test = await call('POST', `/endpoints/${id}/test`);
      expect(test.status).toBe(202);
      const emit = async (type: string, payload: Record<string, string>) => {
        const [{ event_id: eventId }] = await sql<{ event_id: string }[]>`
          select private.emit_event(${ORG}, ${type}, ${sql.json(payload)}) as event_id`;
        const [{ id: deliveryId }] = await sql<{ id: string }[]>`
          select id from public.webhook_deliveries where endpoint_id = ${id} and event_id = ${eventId}`;
        return deliveryId;
      };
      const joined = await emit('member.joined', { user_id: users.member, role: 'member' });
      const failed = await emit('document.failed', { document_id: randomUUID(), name: 'narrowed.pdf', reason: 'x' });
      // A delivery that failed once and waits for its retry.
      await sql`update public.webhook_deliveries set attempt_count = 1, last_status_code = 500 where id = ${failed}`;
      const replay = await call('POST', `/deliveries/${failed}/replay`);
      expect(replay.status, JSON.stringify(replay.body)).toBe(202);

      const narrowed = await call('PATCH', `/endpoints/${id}`, { body: { event_types: ['member.joined'] } });
      expect(narrowed.status, JSON.stringify(narrowed.body)).toBe(200);
      const rows = await sql<{ id: string; status: string; next_attempt_at: Date | null }[]>`
        select id, status, next_attempt_at from public.webhook_deliveries where endpoint_id = ${id}`;
      const statusOf = Object.fromEntries(rows.map((row) => [row.id, row.status]));
      expect(statusOf).toEqual({
        [test.body.delivery_id]: 'pending',
        [joined]: 'pending',
        [failed]: 'canceled',
        [replay.body.delivery_id]: 'pending',
      });
      expect(rows.find((row) => row.id === failed)?.next_attempt_at).toBeNull();
      expect((await call('DELETE', `/endpoints/${id}`, { as: 'owner' })).status).toBe(204);
    });

    it('refuses an unsafe new URL, bad bodies, an unknown type and a member, changing nothing', async () => {
      const { id } = await createEndpoint({ description: 'stays' });
      const before = await endpointsOfOrg();
      expectError(await call('PATCH', `/endpoints/${id}`, { body: { url: 'https://10.0.0.1/' } }), 422, 'unsafe_url');
      expectError(await call('PATCH', `/endpoints/${id}`, { body: { url: 'http://example.com/' } }), 422, 'unsafe_url');
      expectError(await call('PATCH', `/endpoints/${id}`, { body: {} }), 422, 'invalid_request');
      expectError(await call('PATCH', `/endpoints/${id}`, { body: { enabled: 'no' } }), 422, 'invalid_request');
      expectError(await call('PATCH', `/endpoints/${id}`, { body: { org_id: OTHER_ORG } }), 422, 'invalid_request');
      expectError(await call('PATCH', `/endpoints/${id}`, { raw: 'nope' }), 400, 'invalid_json');
      const unknownType = await call('PATCH', `/endpoints/${id}`, { body: { event_types: ['call.dropped'] } });
      expectError(unknownType, 422, 'invalid_request');
      expect(unknownType.body.error.message).toContain('call.dropped');
      expectError(await call('PATCH', `/endpoints/${id}`, { as: 'member', body: { description: 'x' } }), 403, 'forbidden');
      expectError(await call('PATCH', `/endpoints/${id}`, { as: 'member', body: { url: OTHER_PUBLIC_URL } }), 403, 'forbidden');
      expect(await endpointsOfOrg()).toEqual(before);
    });

    it('answers 404 for an endpoint that does not exist and 422 for an id that is not a uuid', async () => {
      expectError(await call('PATCH', `/endpoints/${randomUUID()}`, { body: { enabled: false } }), 404, 'not_found');
      expectError(await call('PATCH', `/endpoints/${randomUUID()}`, { body: { url: OTHER_PUBLIC_URL } }), 404, 'not_found');
      expectError(await call('PATCH', '/endpoints/not-a-uuid', { body: { enabled: false } }), 422, 'invalid_request');
    });
  });

  describe('rotating the secret', () => {
    it('returns a new secret; old and new both sign during the overlap', async () => {
      const { id, secret: first } = await createEndpoint();
      const started = Date.now();
      const answer = await call('POST', `/endpoints/${id}/rotate-secret`, { body: { overlap_hours: 2 } });
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect(answer.headers.get('cache-control')).toBe('no-store');
      const { secret: second, previous_secret_valid_until: validUntil } = answer.body;
      expect(second).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
      expect(Buffer.from(second.slice('whsec_'.length), 'base64')).toHaveLength(32);
      expect(second).not.toBe(first);
      const twoHours = 2 * 3600_000;
      expect(Date.parse(validUntil)).toBeGreaterThanOrEqual(started + twoHours - 5000);
      expect(Date.parse(validUntil)).toBeLessThanOrEqual(Date.now() + twoHours);

      const secrets = await activeSecrets(id);
      expect(secrets.map((row) => row.secret)).toEqual([first, second]);
      expect(secrets[1].expires_at).toBeNull();
      // The reported time is exactly how long the old secret keeps signing.
      expect(secrets[0].expires_at!.getTime()).toBe(Date.parse(validUntil));
    });

    it('defaults to a 24-hour overlap for an empty body, and overlap 0 retires the old secrets at once', async () => {
      const { id, secret: first } = await createEndpoint();
      const byDefault = await call('POST', `/endpoints/${id}/rotate-secret`);
      expect(byDefault.status, JSON.stringify(byDefault.body)).toBe(200);
      expect(Date.parse(byDefault.body.previous_secret_valid_until) - Date.now()).toBeGreaterThan(24 * 3600_000 - 60_000);
      expect((await activeSecrets(id)).map((row) => row.secret)).toEqual([first, byDefault.body.secret]);

      const immediate = await call('POST', `/endpoints/${id}/rotate-secret`, { body: { overlap_hours: 0 } });
      expect(immediate.status).toBe(200);
      expect((await activeSecrets(id)).map((row) => row.secret)).toEqual([immediate.body.secret]);
    });

    it('refuses an overlap outside 0 to 168 whole hours and a member, keeping the secrets', async () => {
      const { id, secret } = await createEndpoint();
      for (const overlap_hours of [-1, 169, 1.5, '24']) {
        expectError(await call('POST', `/endpoints/${id}/rotate-secret`, { body: { overlap_hours } }), 422, 'invalid_request');
      }
      expectError(await call('POST', `/endpoints/${id}/rotate-secret`, { as: 'member' }), 403, 'forbidden');
      expectError(await call('POST', `/endpoints/${randomUUID()}/rotate-secret`), 404, 'not_found');
      expect(await activeSecrets(id)).toEqual([{ secret, expires_at: null }]);
    });
  });

  describe('deleting an endpoint', () => {
    it('answers 204, then 404; the secrets go with it; a member cannot', async () => {
      const { id } = await createEndpoint();
      expectError(await call('DELETE', `/endpoints/${id}`, { as: 'member' }), 403, 'forbidden');
      const deleted = await call('DELETE', `/endpoints/${id}`, { as: 'owner' });
      expect(deleted.status).toBe(204);
      expect(deleted.body).toEqual({});
      expectError(await call('DELETE', `/endpoints/${id}`), 404, 'not_found');
      expectError(await call('PATCH', `/endpoints/${id}`, { body: { enabled: true } }), 404, 'not_found');
      expect(await sql`select 1 from public.webhook_endpoints where id = ${id}`).toHaveLength(0);
      expect(await sql`select 1 from private.webhook_endpoint_secrets where endpoint_id = ${id}`).toHaveLength(0);
    });
  });

  describe('test events and replays', () => {
    it('queues a test event for that endpoint only: 202 and one pending delivery', async () => {
      const { id } = await createEndpoint();
      // Subscribed to everything, yet a test event must not reach it.
      const { id: bystander } = await createEndpoint({ url: OTHER_PUBLIC_URL });
      const answer = await call('POST', `/endpoints/${id}/test`);
      expect(answer.status, JSON.stringify(answer.body)).toBe(202);
      const [delivery] = await sql`
        select d.endpoint_id, d.status, d.event_id, ev.type, ev.payload
        from public.webhook_deliveries d join public.events ev on ev.id = d.event_id
        where d.id = ${answer.body.delivery_id}`;
      expect(delivery).toMatchObject({ endpoint_id: id, status: 'pending', type: 'webhook.test' });
      expect(delivery.payload.endpoint_id).toBe(id);
      const all = await sql`select endpoint_id from public.webhook_deliveries where event_id = ${delivery.event_id}`;
      expect(all).toEqual([{ endpoint_id: id }]);
      expect(await sql`select 1 from public.webhook_deliveries where endpoint_id = ${bystander}`).toHaveLength(0);
      expectError(await call('POST', `/endpoints/${id}/test`, { as: 'member' }), 403, 'forbidden');
    });

    it('replays a delivery as a new one pointing back at it; refused while the endpoint is disabled', async () => {
      const { id } = await createEndpoint();
      const original = (await call('POST', `/endpoints/${id}/test`)).body.delivery_id;
      const replay = await call('POST', `/deliveries/${original}/replay`);
      expect(replay.status, JSON.stringify(replay.body)).toBe(202);
      expect(replay.body.delivery_id).not.toBe(original);
      const [row] = await sql`
        select r.endpoint_id, r.replay_of, r.status, r.event_id = o.event_id as same_event
        from public.webhook_deliveries r join public.webhook_deliveries o on o.id = r.replay_of
        where r.id = ${replay.body.delivery_id}`;
      expect(row).toEqual({ endpoint_id: id, replay_of: original, status: 'pending', same_event: true });

      expectError(await call('POST', `/deliveries/${original}/replay`, { as: 'member' }), 403, 'forbidden');
      // Another org's delivery is as unknown to its owner as a missing one (20261123008500).
      const theirs = await call('POST', `/deliveries/${original}/replay`, { as: 'outsider' });
      expectError(theirs, 404, 'not_found');
      const unknown = await call('POST', `/deliveries/${randomUUID()}/replay`, { as: 'outsider' });
      expectError(unknown, 404, 'not_found');
      expect(theirs.body.error.message).toBe(unknown.body.error.message);
      expectError(await call('POST', `/deliveries/${randomUUID()}/replay`), 404, 'not_found');

      expect((await call('PATCH', `/endpoints/${id}`, { body: { enabled: false } })).status).toBe(200);
      const count = async () => (await sql`select 1 from public.webhook_deliveries where endpoint_id = ${id}`).length;
      const before = await count();
      const refused = await call('POST', `/deliveries/${original}/replay`);
      expectError(refused, 422, 'invalid_request');
      expect(refused.body.error.message).toContain('disabled');
      expectError(await call('POST', `/endpoints/${id}/test`), 422, 'invalid_request');
      expect(await count()).toBe(before);
    });

    it('sends export.ready only where an owner set the URL and filter; only owners replay it (403 for an admin)', async () => {
      const ownerAnswer = await call('POST', '/endpoints', { as: 'owner', body: { org_id: ORG, url: PUBLIC_URL } });
      expect(ownerAnswer.status, JSON.stringify(ownerAnswer.body)).toBe(201);
      const ownerEndpoint = ownerAnswer.body.endpoint.id;
      const { id: adminEndpoint } = await createEndpoint({ url: OTHER_PUBLIC_URL, event_types: ['export.ready'] });
      const [{ event_id: eventId }] = await sql<{ event_id: string }[]>`
        select private.emit_event(${ORG}, 'export.ready', jsonb_build_object(
          'export_id', gen_random_uuid(), 'storage_prefix', 'x/', 'expires_at', '2030-01-01T00:00:00Z')) as event_id`;
      const deliveries = await sql<{ id: string; endpoint_id: string }[]>`
        select id, endpoint_id from public.webhook_deliveries where event_id = ${eventId}`;
      const endpoints = deliveries.map((d) => d.endpoint_id);
      expect(endpoints).toContain(ownerEndpoint);
      expect(endpoints).not.toContain(adminEndpoint);
      const original = deliveries.find((d) => d.endpoint_id === ownerEndpoint)!.id;

      // The admin may manage the endpoint, but not send the owners' export link again (wherever it points).
      // Told apart from a missing webhooks.manage (the same 42501) by the refusal's marker, not its wording.
      const refused = await call('POST', `/deliveries/${original}/replay`, { as: 'admin' });
      expectError(refused, 403, 'forbidden');
      expect(refused.body.error.message).toBe(OWNER_ONLY_REPLAY_MESSAGE);
      const byMember = await call('POST', `/deliveries/${original}/replay`, { as: 'member' });
      expectError(byMember, 403, 'forbidden');
      expect(byMember.body.error.message).toBe(FORBIDDEN_MESSAGE);
      const replay = await call('POST', `/deliveries/${original}/replay`, { as: 'owner' });
      expect(replay.status, JSON.stringify(replay.body)).toBe(202);

      // Repointed by the admin: not even an owner's replay goes there.
      expect((await call('PATCH', `/endpoints/${ownerEndpoint}`, { body: { url: OTHER_PUBLIC_URL } })).status).toBe(200);
      const toAdminUrl = await call('POST', `/deliveries/${original}/replay`, { as: 'owner' });
      expectError(toAdminUrl, 422, 'invalid_request');
      expect(toAdminUrl.body.error.message).toContain('not an owner');

      // As the refusal advises, an owner saving it (the same URL) makes it qualify again; an admin doing so does not.
      expect((await call('PATCH', `/endpoints/${ownerEndpoint}`, { body: { url: OTHER_PUBLIC_URL } })).status).toBe(200);
      expectError(await call('POST', `/deliveries/${original}/replay`, { as: 'owner' }), 422, 'invalid_request');
      const saved = await call('PATCH', `/endpoints/${ownerEndpoint}`, { as: 'owner', body: { url: OTHER_PUBLIC_URL } });
      expect(saved.status, JSON.stringify(saved.body)).toBe(200);
      const afterSave = await call('POST', `/deliveries/${original}/replay`, { as: 'owner' });
      expect(afterSave.status, JSON.stringify(afterSave.body)).toBe(202);
    });

    it('shows members no delivery or attempt of export.ready or invoice.created, whose answers may echo the event', async () => {
      const answer = await call('POST', '/endpoints', { as: 'owner', body: { org_id: ORG, url: PUBLIC_URL } });
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      const endpointId = answer.body.endpoint.id;
      const events = await sql<{ type: string; id: string }[]>`
        select 'export.ready' as type, private.emit_event(${ORG}, 'export.ready', jsonb_build_object(
          'export_id', gen_random_uuid(), 'storage_prefix', 'x/', 'expires_at', '2030-01-01T00:00:00Z')) as id
        union all
        select 'invoice.created', private.emit_event(${ORG}, 'invoice.created', jsonb_build_object(
          'invoice_id', gen_random_uuid(), 'period_start', '2026-10-01', 'period_end', '2026-11-01',
          'total_cents', 4900, 'currency', 'usd'))
        union all
        select 'document.ready', private.emit_event(${ORG}, 'document.ready', jsonb_build_object(
          'document_id', gen_random_uuid(), 'name', 'echo.pdf'))`;
      // A receiver that echoes the body: the response holds the event.
      await sql`
        insert into public.webhook_attempts (org_id, delivery_id, endpoint_id, attempt_number, url, started_at,
                                             duration_ms, status_code, outcome, response_body)
        select d.org_id, d.id, d.endpoint_id, 1, ${PUBLIC_URL}, now(), 5, 200, 'succeeded', ev.payload::text
        from public.webhook_deliveries d join public.events ev on ev.id = d.event_id
        where d.endpoint_id = ${endpointId}`;
      const typeOf = new Map(events.map((e) => [e.id, e.type]));
      const readable = async (who: Who) => {
        const claims: JwtClaims = { role: 'authenticated', aud: 'authenticated', sub: users[who], exp: 4102444800 };
        const rows = await withUserScope(sql, claims, (tx) =>
          tx<{ event_id: string; attempts: number }[]>`
            select d.event_id, (select count(*)::int from public.webhook_attempts a where a.delivery_id = d.id) as attempts
            from public.webhook_deliveries d where d.endpoint_id = ${endpointId}`);
        return rows.map((r) => `${typeOf.get(r.event_id)} ${r.attempts}`).sort();
      };
      expect(await readable('member')).toEqual(['document.ready 1']);
      // Admins see deliveries they manage and replay, but no export.ready answer.
      expect(await readable('admin')).toEqual(['document.ready 1', 'export.ready 0', 'invoice.created 1']);
      expect(await readable('owner')).toEqual(['document.ready 1', 'export.ready 1', 'invoice.created 1']);
    });
  });

  describe('authentication and routing', () => {
    it('answers 401 without a token and for the anon key (not a user)', async () => {
      expectError(await call('POST', '/endpoints', { as: null, body: { org_id: ORG, url: PUBLIC_URL } }), 401, 'missing_authorization');
      const response = await fetch(`${stack.functionsUrl}/webhooks/endpoints`, {
        method: 'POST',
        headers: { authorization: `Bearer ${stack.keys.anonKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ org_id: ORG, url: PUBLIC_URL }),
      });
      expect(response.status).toBe(401);
      expect((await response.json()).error.code).toBe('user_required');
    });

    it('answers unknown routes with 404 and other methods with 405 and Allow', async () => {
      expectError(await call('GET', '/nope'), 404, 'not_found');
      expectError(await call('POST', `/endpoints/${randomUUID()}/unknown`), 404, 'not_found');
      const list = await call('GET', '/endpoints');
      expectError(list, 405, 'method_not_allowed');
      expect(list.headers.get('allow')).toBe('POST');
      const put = await call('PUT', `/endpoints/${randomUUID()}`, { body: { enabled: true } });
      expectError(put, 405, 'method_not_allowed');
      expect(put.headers.get('allow')).toBe('GET, HEAD, PATCH, DELETE');
    });
  });

  describe('in process, with a stubbed resolver (names, which Deno resolves itself)', () => {
    it('refuses a name that resolves to a private address and stores one that resolves publicly', async () => {
      const resolved: Record<string, string[]> = {
        'internal.example.com': ['93.184.215.14', '10.0.0.7'],
        'hooks.example.com': ['93.184.215.14'],
      };
      const handler = createWebhooksHandler({
        sql: () => sql,
        env: (name) => (name === 'SUPABASE_JWT_SECRET' ? stack.keys.jwtSecret : undefined),
        resolve: async (hostname) => resolved[hostname] ?? [],
      });
      const post = (url: string) =>
        handler(
          new Request('http://local/webhooks/endpoints', {
            method: 'POST',
            headers: { authorization: `Bearer ${tokens.admin}` },
            body: JSON.stringify({ org_id: ORG, url }),
          }),
        );
      const refused = await post('https://internal.example.com/hook');
      expect(refused.status).toBe(422);
      expect((await refused.json()).error.code).toBe('unsafe_url');
      const accepted = await post('https://Hooks.Example.com/hook');
      expect(accepted.status).toBe(201);
      // Stored as parsed, i.e. exactly what was checked.
      expect((await accepted.json()).endpoint.url).toBe('https://hooks.example.com/hook');
    });
  });

  describe('creating an endpoint with an Idempotency-Key', () => {
    // An org of its own, so these creations do not count against the 20 endpoints of the org above.
    const IDEM_ORG = randomUUID();

    beforeAll(async () => {
      await sql`insert into public.organizations (id, name, slug)
                values (${IDEM_ORG}, 'Hooks idem', ${`fn-webhooks-idem-${IDEM_ORG.slice(0, 8)}`})`;
      await sql`insert into public.memberships (org_id, user_id, role) values
                  (${IDEM_ORG}, ${users.owner}, 'owner'), (${IDEM_ORG}, ${users.admin}, 'admin')`;
    });

    afterAll(async () => {
      await sql`delete from public.organizations where id = ${IDEM_ORG}`;
    });

    const send = async (key: string, body: unknown, as: Who = 'admin'): Promise<Answer> => {
      const response = await fetch(`${stack.functionsUrl}/webhooks/endpoints`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens[as]}`, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify(body),
      });
      return { status: response.status, headers: response.headers, body: await response.json() };
    };

    const endpointIds = async (): Promise<string[]> =>
      (await sql<{ id: string }[]>`select id from public.webhook_endpoints where org_id = ${IDEM_ORG} order by id`)
        .map((row) => row.id);

    const keptAnswers = (key: string) =>
      sql<{ api_key_id: string | null; user_id: string; response_status: number }[]>`
        select api_key_id, user_id, response_status from private.idempotency_keys
        where org_id = ${IDEM_ORG} and idempotency_key = ${key}`;

    it('replays a retried create: 201 with the same endpoint and secret, Idempotent-Replayed, one endpoint', async () => {
      const before = await endpointIds();
      const key = `webhooks-test-idem-retry-${randomUUID()}`;
      const body = { org_id: IDEM_ORG, url: PUBLIC_URL, description: 'Idem retry', event_types: ['call.ended'] };
      const first = await send(key, body);
      expect(first.status, JSON.stringify(first.body)).toBe(201);
      expect(first.headers.get('idempotent-replayed')).toBeNull();
      // The same request with its fields in another order is the same request.
      const retry = await send(key, { event_types: ['call.ended'], description: 'Idem retry', url: PUBLIC_URL, org_id: IDEM_ORG });
      expect(retry.status, JSON.stringify(retry.body)).toBe(201);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect(retry.headers.get('cache-control')).toBe('no-store');
      expect(retry.body).toEqual(first.body);
      expect(retry.body.secret).toMatch(/^whsec_/);

      const after = await endpointIds();
      expect(after.filter((id) => !before.includes(id))).toEqual([first.body.endpoint.id]);
      expect(await activeSecrets(first.body.endpoint.id)).toEqual([{ secret: first.body.secret, expires_at: null }]);
      expect(await keptAnswers(key)).toEqual([{ api_key_id: null, user_id: users.admin, response_status: 201 }]);
    });

    it('keeps a key per user: another admin sending the same key and body creates their own endpoint', async () => {
      const key = `webhooks-test-idem-per-user-${randomUUID()}`;
      const body = { org_id: IDEM_ORG, url: PUBLIC_URL, description: 'Idem per user' };
      const admins = await send(key, body, 'admin');
      const owners = await send(key, body, 'owner');
      expect([admins.status, owners.status]).toEqual([201, 201]);
      expect(owners.headers.get('idempotent-replayed')).toBeNull();
      expect(owners.body.endpoint.id).not.toBe(admins.body.endpoint.id);
      expect(owners.body.secret).not.toBe(admins.body.secret);
      expect((await keptAnswers(key)).map((row) => row.user_id).sort()).toEqual([users.admin, users.owner].sort());
      const retry = await send(key, body, 'admin');
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect(retry.body).toEqual(admins.body);
    });

    it('replays nothing to a user who may no longer manage webhooks in the org: 403', async () => {
      const key = `webhooks-test-idem-demoted-${randomUUID()}`;
      const body = { org_id: IDEM_ORG, url: PUBLIC_URL, description: 'Idem demoted' };
      expect((await send(key, body)).status).toBe(201);
      expect(await keptAnswers(key)).toHaveLength(1);
      await sql`update public.memberships set role = 'member' where org_id = ${IDEM_ORG} and user_id = ${users.admin}`;
      try {
        expectError(await send(key, body), 403, 'forbidden');
      } finally {
        await sql`update public.memberships set role = 'admin' where org_id = ${IDEM_ORG} and user_id = ${users.admin}`;
      }
    });

    it('refuses the key with another body: 422 idempotency_key_reused, creating nothing', async () => {
      const key = `webhooks-test-idem-reused-${randomUUID()}`;
      expect((await send(key, { org_id: IDEM_ORG, url: PUBLIC_URL, description: 'Idem first' })).status).toBe(201);
      const before = await endpointIds();
      expectError(await send(key, { org_id: IDEM_ORG, url: OTHER_PUBLIC_URL, description: 'Idem first' }), 422, 'idempotency_key_reused');
      expect(await endpointIds()).toEqual(before);
    });

    it('refuses a key that is not 1 to 255 visible ASCII characters, as the other routes do, creating nothing', async () => {
      const before = await endpointIds();
      const body = { org_id: IDEM_ORG, url: PUBLIC_URL, description: 'Idem malformed' };
      for (const malformed of ['a key with spaces', 'x'.repeat(256), '']) {
        expectError(await send(malformed, body), 422, 'invalid_request');
      }
      expect(await endpointIds()).toEqual(before);
    });

    it('frees the key of a refused create, so the request may be sent again with it', async () => {
      const before = await endpointIds();
      const key = `webhooks-test-idem-refused-${randomUUID()}`;
      // Refused before the transaction (an unsafe URL) and inside it (an event type the database does not know).
      expectError(await send(key, { org_id: IDEM_ORG, url: 'https://10.0.0.1/hook' }), 422, 'unsafe_url');
      const unknownType = await send(key, { org_id: IDEM_ORG, url: PUBLIC_URL, event_types: ['nothing.happened'] });
      expectError(unknownType, 422, 'invalid_request');
      expect(await keptAnswers(key)).toEqual([]);
      expect(await endpointIds()).toEqual(before);

      const fixed = await send(key, { org_id: IDEM_ORG, url: PUBLIC_URL, description: 'Idem fixed' });
      expect(fixed.status, JSON.stringify(fixed.body)).toBe(201);
      expect(fixed.headers.get('idempotent-replayed')).toBeNull();
      expect(await keptAnswers(key)).toEqual([{ api_key_id: null, user_id: users.admin, response_status: 201 }]);
      expect((await endpointIds()).filter((id) => !before.includes(id))).toEqual([fixed.body.endpoint.id]);
    });

    it('creates one endpoint from concurrent sends of one request, each answered with it', async () => {
      const before = await endpointIds();
      const key = `webhooks-test-idem-concurrent-${randomUUID()}`;
      const body = { org_id: IDEM_ORG, url: PUBLIC_URL, description: 'Idem concurrent' };
      const answers = await Promise.all([send(key, body), send(key, body), send(key, body)]);
      expect(answers.map((answer) => answer.status)).toEqual([201, 201, 201]);
      expect(new Set(answers.map((answer) => answer.body.endpoint.id)).size).toBe(1);
      expect(new Set(answers.map((answer) => answer.body.secret)).size).toBe(1);
      expect(answers.filter((answer) => answer.headers.get('idempotent-replayed') === 'true')).toHaveLength(2);
      expect((await endpointIds()).filter((id) => !before.includes(id))).toEqual([answers[0].body.endpoint.id]);
    });
  });

  describe('test sends and replays are limited (20261123009200)', () => {
    // Orgs of their own, so these sends spend no bucket of the org above and its sends none of theirs.
    const LIMIT_ORG = randomUUID();
    const BACKLOG_ORG = randomUUID();

    beforeAll(async () => {
      await sql`insert into public.organizations (id, name, slug) values
                  (${LIMIT_ORG}, 'Hooks limits', ${`fn-webhooks-limits-${LIMIT_ORG.slice(0, 8)}`}),
                  (${BACKLOG_ORG}, 'Hooks backlog', ${`fn-webhooks-backlog-${BACKLOG_ORG.slice(0, 8)}`})`;
      await sql`insert into public.memberships (org_id, user_id, role) values
                  (${LIMIT_ORG}, ${users.owner}, 'owner'), (${LIMIT_ORG}, ${users.admin}, 'admin'),
                  (${LIMIT_ORG}, ${users.member}, 'member'), (${BACKLOG_ORG}, ${users.owner}, 'owner'), (${BACKLOG_ORG}, ${users.admin}, 'admin')`;
    });

    afterAll(async () => {
      await sql`delete from public.organizations where id in (${LIMIT_ORG}, ${BACKLOG_ORG})`;
    });

    const endpointIn = async (orgId: string): Promise<string> => {
      const answer = await call('POST', '/endpoints', { body: { org_id: orgId, url: PUBLIC_URL } });
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      return answer.body.endpoint.id;
    };

    const countsOf = async (orgId: string) => {
      const [row] = await sql<{ events: number; deliveries: number }[]>`
        select (select count(*)::int from public.events where org_id = ${orgId} and type = 'webhook.test') as events,
               (select count(*)::int from public.webhook_deliveries where org_id = ${orgId}) as deliveries`;
      return row;
    };

    /**
     * The buckets are 60 s windows on the minute (the previous one weighs in as it slides out): a run crossing a
     * minute would be let through more than the limit, so it starts with at least 20 s of its minute left.
     */
    const startOfFreshMinute = async (): Promise<void> => {
      const left = 60_000 - (Date.now() % 60_000);
      if (left < 20_000) await new Promise((resolve) => setTimeout(resolve, left + 100));
    };

    /** At most the rest of the minute plus the share of the next one it takes the full window's hits to weigh one fewer. */
    function expectRateLimited(answer: Answer, perMinute: number): void {
      expectError(answer, 429, 'rate_limited');
      const wait = Number(answer.headers.get('retry-after'));
      expect(Number.isInteger(wait) && wait >= 1 && wait <= 60 + Math.ceil(60 / perMinute), `retry-after ${wait}`).toBe(true);
      expect(answer.body.error.message).toContain(`try again in ${wait} seconds`);
    }

    it('takes 10 test sends a minute per org, then 429 rate_limited with Retry-After, queuing nothing', async () => {
      const [first, second] = [await endpointIn(LIMIT_ORG), await endpointIn(LIMIT_ORG)];
      await startOfFreshMinute();
      for (let i = 0; i < 10; i += 1) {
        const answer = await call('POST', `/endpoints/${i % 2 === 0 ? first : second}/test`);
        expect(answer.status, JSON.stringify(answer.body)).toBe(202);
      }
      const before = await countsOf(LIMIT_ORG);
      expect(before).toEqual({ events: 10, deliveries: 10 });
      // The limit is the org's, over all its endpoints and admins.
      expectRateLimited(await call('POST', `/endpoints/${first}/test`), 10);
      expectRateLimited(await call('POST', `/endpoints/${second}/test`, { as: 'owner' }), 10);
      expect(await countsOf(LIMIT_ORG)).toEqual(before);
      // Still a 403 for a member: permission comes before the limit.
      expectError(await call('POST', `/endpoints/${first}/test`, { as: 'member' }), 403, 'forbidden');
      // Another org's sends are not held back by this one's.
      const elsewhere = await call('POST', `/endpoints/${await endpointIn(BACKLOG_ORG)}/test`);
      expect(elsewhere.status, JSON.stringify(elsewhere.body)).toBe(202);
    });

    it('takes 60 replays a minute per org, a bucket apart from test sends, then 429 rate_limited', async () => {
      // The first test left LIMIT_ORG's test bucket spent; its deliveries are what gets replayed.
      const [original] = await sql<{ id: string }[]>`
        select id from public.webhook_deliveries where org_id = ${LIMIT_ORG} order by id limit 1`;
      await startOfFreshMinute();
      const answers = await Promise.all(
        Array.from({ length: 60 }, () => call('POST', `/deliveries/${original.id}/replay`)),
      );
      expect(answers.map((answer) => answer.status)).toEqual(Array(60).fill(202));
      expectRateLimited(await call('POST', `/deliveries/${original.id}/replay`), 60);
      const [{ replays }] = await sql<{ replays: number }[]>`
        select count(*)::int as replays from public.webhook_deliveries where replay_of = ${original.id}`;
      expect(replays).toBe(60);
    });

    it('refuses a test send or replay to an endpoint with 100 deliveries queued: 409 endpoint_backlog', async () => {
      const id = await endpointIn(BACKLOG_ORG);
      const original = await call('POST', `/endpoints/${id}/test`);
      expect(original.status, JSON.stringify(original.body)).toBe(202);
      // 99 more of its event queued, as a receiver that stopped answering leaves them.
      await sql`insert into public.webhook_deliveries (org_id, endpoint_id, event_id)
                select d.org_id, d.endpoint_id, d.event_id from public.webhook_deliveries d, generate_series(1, 99)
                where d.id = ${original.body.delivery_id}`;
      const before = await countsOf(BACKLOG_ORG);

      const test = await call('POST', `/endpoints/${id}/test`);
      expectError(test, 409, 'endpoint_backlog');
      expect(test.body.error.message).toContain('100 or more deliveries queued');
      expectError(await call('POST', `/deliveries/${original.body.delivery_id}/replay`), 409, 'endpoint_backlog');
      expect(await countsOf(BACKLOG_ORG)).toEqual(before);

      // Once one is delivered the endpoint takes them again.
      await sql`update public.webhook_deliveries set status = 'succeeded', next_attempt_at = null
                where id = ${original.body.delivery_id}`;
      expect((await call('POST', `/endpoints/${id}/test`)).status).toBe(202);
    });
  });
});
