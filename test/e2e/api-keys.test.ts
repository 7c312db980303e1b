import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, parseConfig, type Api } from '@switchyard/api';
import { startStack, type Stack } from '../support/stack.js';

const MODEL = 'qwen2.5:0.5b';
const ADMIN_KEY = 'e2e-admin-key-0123456789';

interface Answer {
  status: number;
  json: any;
}

async function call(baseUrl: string, method: string, path: string, options: { key?: string; body?: unknown } = {}): Promise<Answer> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      ...(options.key !== undefined && { Authorization: `Bearer ${options.key}` }),
      ...(options.body !== undefined && { 'Content-Type': 'application/json' }),
    },
    ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  return { status: response.status, json: text === '' ? undefined : JSON.parse(text) };
}

/** A tiny job: one token, so nothing waits on it. */
const submit = (baseUrl: string, key: string | undefined, prompt = 'hi') =>
  call(baseUrl, 'POST', '/v1/jobs', { ...(key !== undefined && { key }), body: { model: MODEL, prompt, options: { num_predict: 1 } } });

describe('tenant keys managed at run time (/admin/keys), across two API replicas', () => {
  let stack: Stack;
  let second: Api;
  let secondUrl: string;
  const admin = (method: string, path: string, body?: unknown) => call(stack.apiUrl, method, path, { key: ADMIN_KEY, ...(body !== undefined && { body }) });

  beforeAll(async () => {
    stack = await startStack({ api: { adminApiKeys: ADMIN_KEY } });
    // Another replica of the same deployment: same Redis, same prefix, same configuration.
    second = await createApi(parseConfig({ redisUrl: stack.redisUrl, redisPrefix: stack.prefix, host: '127.0.0.1', port: 0, fleetCacheMs: 50, adminApiKeys: ADMIN_KEY }), {
      logger: stack.logger.child({ component: 'api-2' }),
    });
    secondUrl = await second.listen();
  }, 60_000);
  afterAll(async () => {
    await second?.close();
    await stack?.close();
  });

  it('a created key works at once for jobs, on both replicas; the listing never shows it', async () => {
    const created = await admin('POST', '/admin/keys', { tenant: 'acme', name: 'ci' });
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    const { key, id } = created.json;
    expect(key).toMatch(/^sy_[A-Za-z0-9_-]{43}$/);
    expect(created.json).toMatchObject({
      id,
      tenant: 'acme',
      admin: false,
      name: 'ci',
      source: 'redis',
      prefix: key.slice(0, 10),
      rotated_at: null,
      limits: { in_flight: null, model_in_flight: null },
    });
    expect(Date.parse(created.json.created_at)).toBeGreaterThan(Date.now() - 60_000);

    expect((await submit(stack.apiUrl, key)).status).toBe(202);
    await expect.poll(async () => (await submit(secondUrl, key)).status, { timeout: 1_000, interval: 50 }).toBe(202);

    const listed = await admin('GET', '/admin/keys');
    expect(listed.status).toBe(200);
    expect(listed.json.data).toContainEqual(expect.objectContaining({ id, tenant: 'acme', prefix: key.slice(0, 10), source: 'redis' }));
    expect(listed.json.data).toContainEqual(expect.objectContaining({ id: 'config-0', tenant: 'admin', admin: true, source: 'config', prefix: null }));
    const text = JSON.stringify(listed.json);
    expect(text).not.toContain(key);
    expect(text).not.toContain(ADMIN_KEY);
    for (const entry of listed.json.data) expect(entry).not.toHaveProperty('key');
  });

  it('a revoked key answers 401 at once on the replica that revoked it and within a second on the other', async () => {
    const { json } = await admin('POST', '/admin/keys', { tenant: 'revoked-tenant' });
    await expect.poll(async () => (await submit(secondUrl, json.key)).status, { timeout: 1_000, interval: 50 }).toBe(202);

    const revoked = await admin('DELETE', `/admin/keys/${json.id}`);
    const revokedAt = Date.now();
    expect(revoked.status).toBe(200);
    expect(revoked.json).toMatchObject({ id: json.id, tenant: 'revoked-tenant', revoked: true });
    const here = await submit(stack.apiUrl, json.key);
    expect(here.status).toBe(401);
    expect(here.json.error.code).toBe('unauthorized');
    await expect.poll(async () => (await submit(secondUrl, json.key)).status, { timeout: 1_000, interval: 25 }).toBe(401);
    expect(Date.now() - revokedAt).toBeLessThan(1_000);

    expect((await admin('DELETE', `/admin/keys/${json.id}`)).json.error.code).toBe('not_found');
    expect((await admin('GET', '/admin/keys')).json.data.map((entry: { id: string }) => entry.id)).not.toContain(json.id);
  });

  it('rotation: the old key answers 401, the new one works, id and metadata stay', async () => {
    const { json: first } = await admin('POST', '/admin/keys', { tenant: 'rotating', name: 'deploy' });
    const rotated = await admin('POST', `/admin/keys/${first.id}/rotate`);
    expect(rotated.status).toBe(200);
    expect(rotated.json).toMatchObject({ id: first.id, tenant: 'rotating', name: 'deploy', previous: null });
    expect(rotated.json.key).not.toBe(first.key);
    expect(rotated.json.rotated_at).not.toBeNull();
    expect((await submit(stack.apiUrl, first.key)).status).toBe(401);
    expect((await submit(stack.apiUrl, rotated.json.key)).status).toBe(202);
    // The other replica switches within a second (it may not even have seen the first key yet).
    await expect.poll(async () => (await submit(secondUrl, rotated.json.key)).status, { timeout: 1_000, interval: 50 }).toBe(202);
    expect((await submit(secondUrl, first.key)).status).toBe(401);

    // With a grace period both work until it ends.
    const graced = await admin('POST', `/admin/keys/${first.id}/rotate`, { grace_s: 60 });
    expect(graced.json.previous).toMatchObject({ prefix: rotated.json.key.slice(0, 10) });
    expect(Date.parse(graced.json.previous.expires_at)).toBeGreaterThan(Date.now() + 50_000);
    expect((await submit(stack.apiUrl, rotated.json.key)).status).toBe(202);
    expect((await submit(stack.apiUrl, graced.json.key)).status).toBe(202);
  });

  it('tenant keys are refused on /admin/keys (403), no key at all with 401', async () => {
    const { json } = await admin('POST', '/admin/keys', { tenant: 'plain' });
    for (const [method, path, body] of [
      ['GET', '/admin/keys', undefined],
      ['POST', '/admin/keys', { tenant: 'plain', admin: true }],
      ['POST', `/admin/keys/${json.id}/rotate`, {}],
      ['DELETE', `/admin/keys/${json.id}`, undefined],
    ] as const) {
      const refused = await call(stack.apiUrl, method, path, { key: json.key, ...(body !== undefined && { body }) });
      expect(refused.status, `${method} ${path}`).toBe(403);
      expect(refused.json.error.code).toBe('forbidden');
      expect((await call(stack.apiUrl, method, path, body !== undefined ? { body } : {})).status).toBe(401);
    }
    // Nothing happened: the key still works.
    expect((await submit(stack.apiUrl, json.key)).status).toBe(202);
  });

  it('an admin key created through the API manages keys too', async () => {
    const { json } = await admin('POST', '/admin/keys', { tenant: 'ops', admin: true });
    const listed = await call(stack.apiUrl, 'GET', '/admin/keys', { key: json.key });
    expect(listed.status).toBe(200);
    expect(listed.json.data).toContainEqual(expect.objectContaining({ id: json.id, admin: true }));
  });

  it('limits given at creation apply to the tenant, in the one limits hash', async () => {
    const closed = await admin('POST', '/admin/keys', { tenant: 'no-room', limits: { in_flight: 0 } });
    expect(closed.json.limits).toEqual({ in_flight: 0, model_in_flight: null });
    const refused = await submit(stack.apiUrl, closed.json.key);
    expect(refused.status).toBe(429);
    expect(refused.json.error.code).toBe('tenant_limit');
    expect((await admin('GET', '/admin/limits')).json.overrides).toMatchObject({ 'tenant_in_flight:no-room': 0 });

    const one = await admin('POST', '/admin/keys', { tenant: 'one-slot', limits: { in_flight: 1, model_in_flight: 5 } });
    // Held on the simulator: the job stays in flight until the test cancels it.
    stack.hold({ prompt: 'long', afterTokens: 1 });
    const long = await call(stack.apiUrl, 'POST', '/v1/jobs', { key: one.json.key, body: { model: MODEL, prompt: 'long', options: { num_predict: 20_000 }, detach: true } });
    expect(long.status, JSON.stringify(long.json)).toBe(202);
    const second = await submit(stack.apiUrl, one.json.key);
    expect(second.status).toBe(429);
    expect(second.json.error.code).toBe('tenant_limit');
    await call(stack.apiUrl, 'DELETE', `/v1/jobs/${long.json.id}`, { key: one.json.key });

    const listed = (await admin('GET', '/admin/keys')).json.data.find((entry: { id: string }) => entry.id === one.json.id);
    expect(listed.limits).toEqual({ in_flight: 1, model_in_flight: 5 });
  });

  it('validates requests: 400 naming the field, 404 for unknown ids, 409 for configured keys', async () => {
    const cases: Array<[string, string, unknown, RegExp]> = [
      ['POST', '/admin/keys', { tenant: 'a b' }, /tenant: tenant names are 1-64 characters/],
      ['POST', '/admin/keys', {}, /tenant/],
      ['POST', '/admin/keys', { tenant: 'acme', admin: 'yes' }, /admin/],
      ['POST', '/admin/keys', { tenant: 'acme', limits: { in_flight: -1 } }, /limits\.in_flight/],
      ['POST', '/admin/keys', { tenant: 'acme', limits: { queue_depth: 1 } }, /unknown field\(s\) "queue_depth" in limits/],
      ['POST', '/admin/keys', { tenant: 'acme', key: 'sy_chosen-by-me-0123456789' }, /unknown field\(s\) "key"/],
      ['POST', '/admin/keys', { tenant: 'acme', name: '' }, /name/],
      ['POST', '/admin/keys/config-0/rotate', { grace_s: 86_401 }, /grace_s/],
      ['POST', '/admin/keys/config-0/rotate', { grace_s: 1.5 }, /grace_s/],
    ];
    for (const [method, path, body, message] of cases) {
      const answer = await admin(method, path, body);
      expect(answer.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(400);
      expect(answer.json.error.code).toBe('invalid_request');
      expect(answer.json.error.message).toMatch(message);
    }
    for (const [method, path] of [
      ['DELETE', '/admin/keys/k_nope'],
      ['POST', '/admin/keys/k_nope/rotate'],
    ] as const) {
      const missing = await admin(method, path, method === 'POST' ? {} : undefined);
      expect(missing.status).toBe(404);
      expect(missing.json.error).toMatchObject({ code: 'not_found', message: 'no API key k_nope' });
    }
    for (const [method, path] of [
      ['DELETE', '/admin/keys/config-0'],
      ['POST', '/admin/keys/config-0/rotate'],
    ] as const) {
      const configured = await admin(method, path, method === 'POST' ? {} : undefined);
      expect(configured.status).toBe(409);
      expect(configured.json.error.code).toBe('key_not_revocable');
      expect(configured.json.error.message).toMatch(/comes from the configuration \(ADMIN_API_KEYS\)/);
    }
    // The configured admin key still works after all that.
    expect((await admin('GET', '/admin/keys')).status).toBe(200);
  });
});

describe('an API started without keys', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  }, 60_000);
  afterAll(() => stack?.close());

  it('runs open until the first admin key is created through it, then needs keys', async () => {
    expect((await submit(stack.apiUrl, undefined)).status).toBe(202);
    const tenantFirst = await call(stack.apiUrl, 'POST', '/admin/keys', { body: { tenant: 'acme', limits: { in_flight: 7 } } });
    expect(tenantFirst.status).toBe(400);
    expect(tenantFirst.json.error.message).toMatch(/admin: the first key must be an admin key/);
    // A refused request wrote nothing, its limits included.
    expect((await call(stack.apiUrl, 'GET', '/admin/limits')).json.overrides).not.toHaveProperty('tenant_in_flight:acme');

    const bootstrap = await call(stack.apiUrl, 'POST', '/admin/keys', { body: { tenant: 'ops', admin: true, name: 'bootstrap' } });
    expect(bootstrap.status).toBe(201);
    const anonymous = await submit(stack.apiUrl, undefined);
    expect(anonymous.status).toBe(401);
    expect((await call(stack.apiUrl, 'GET', '/admin/keys')).status).toBe(401);
    expect((await submit(stack.apiUrl, bootstrap.json.key)).status).toBe(202);

    // The last admin key cannot go: nobody could manage keys any more.
    const last = await call(stack.apiUrl, 'DELETE', `/admin/keys/${bootstrap.json.id}`, { key: bootstrap.json.key });
    expect(last.status).toBe(409);
    expect(last.json.error).toMatchObject({ code: 'key_not_revocable', message: expect.stringMatching(/last admin key/) });
  });
});
