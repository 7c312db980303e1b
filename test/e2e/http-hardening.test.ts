import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startStack, type Stack } from '../support/stack.js';

const MODEL = 'qwen2.5:0.5b';
const KEYS = { a: 'tenant-a-key-0123456789', admin: 'admin-key-0123456789abc' };
const A = { Authorization: `Bearer ${KEYS.a}` };

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Sends bytes as written on a socket and reads one whole answer (the server closes the connection). */
function raw(port: number, request: string | Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      if (split === -1) return reject(new Error(`no complete answer: ${JSON.stringify(text.slice(0, 200))}`));
      const [statusLine, ...lines] = text.slice(0, split).split('\r\n');
      const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, body: text.slice(split + 4) });
    });
    socket.write(request);
  });
}

/** The documented error shape of each wire, with the message (so a test can check it names the problem). */
function errorMessage(wire: 'native' | 'openai' | 'ollama', body: string): string {
  const json = JSON.parse(body) as any;
  if (wire === 'ollama') {
    expect(Object.keys(json)).toEqual(['error']);
    expect(typeof json.error).toBe('string');
    return json.error;
  }
  if (wire === 'openai') {
    expect(json.error).toEqual({
      message: expect.any(String),
      type: expect.any(String),
      param: expect.toSatisfy((p: unknown) => p === null || typeof p === 'string'),
      code: expect.any(String),
    });
    return json.error.message;
  }
  expect(json.error).toEqual(expect.objectContaining({ code: expect.any(String), message: expect.any(String) }));
  return json.error.message;
}

const WIRES = [
  ['native', '/v1/jobs', '/v1/jobs/%E0%A4%A'],
  ['openai', '/v1/chat/completions', '/v1/models/%E0%A4%A'],
  ['ollama', '/api/chat', '/api/chat%E0%A4%A'],
] as const;

describe('HTTP hardening: no 5xx from input, every error in its wire’s shape', () => {
  let stack: Stack;
  let port: number;
  let redis: Redis;
  beforeAll(async () => {
    stack = await startStack({
      api: { apiKeys: `a:${KEYS.a}`, adminApiKeys: KEYS.admin, bodyLimitBytes: 256 * 1024, corsOrigins: 'https://app.example', trustedProxies: '127.0.0.1' },
    });
    port = Number(new URL(stack.apiUrl).port);
    redis = new Redis(stack.redisUrl);
  });
  afterAll(async () => {
    redis?.disconnect();
    await stack?.close();
  });

  it.each(WIRES)('answers errors raised before any handler in the %s shape', async (wire, path, undecodable) => {
    const head = (extra: string) => `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.a}\r\nConnection: close\r\n${extra}`;
    const cases: Array<[string, string, number, RegExp]> = [
      ['bad chunking', head('Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n'), 400, /chunked/],
      ['headers too large', head(`X-Big: ${'a'.repeat(20_000)}\r\n\r\n`), 431, /headers/],
      ['undecodable URL', `GET ${undecodable} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 400, /not valid/],
      ['no Host header', `POST ${path} HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`, 400, /Host/],
      ['an Expect the server does not meet', head('Expect: teapot\r\nContent-Length: 2\r\n\r\n{}'), 417, /Expect/],
    ];
    for (const [label, request, status, message] of cases) {
      const answer = await raw(port, request);
      expect(answer.status, label).toBe(status);
      expect(answer.headers['content-type'], label).toMatch(/^application\/json/);
      expect(answer.headers['x-content-type-options'], label).toBe('nosniff');
      expect(errorMessage(wire, answer.body), label).toMatch(message);
    }
  });

  it('answers a malformed request line and an overlong path parameter in the documented shape', async () => {
    const garbage = await raw(port, 'GARBAGE\r\n\r\n');
    expect(garbage.status).toBe(400);
    expect(errorMessage('native', garbage.body)).toMatch(/malformed HTTP request/);
    const long = await raw(port, `GET /v1/jobs/${'a'.repeat(5_000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(long.status).toBe(414);
    const message = errorMessage('native', long.body);
    expect(message.length).toBeLessThan(300); // the 5,000 characters are not echoed back
  });

  it.each(WIRES)('refuses JSON nested 5,000 deep on the %s wire with a 400 naming where, creating nothing', async (wire, path) => {
    const deep = '{"a":'.repeat(5_000) + '1' + '}'.repeat(5_000);
    const body =
      wire === 'openai'
        ? `{"model":"${MODEL}","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":${deep}}}}`
        : `{"model":"${MODEL}",${wire === 'native' ? '"prompt":"x"' : '"messages":[{"role":"user","content":"x"}]'},"format":${deep}}`;
    const before = await redis.keys(`${stack.prefix}:job:*`);
    const response = await fetch(`${stack.apiUrl}${path}`, { method: 'POST', headers: { ...A, 'Content-Type': 'application/json' }, body });
    expect(response.status).toBe(400);
    expect(errorMessage(wire, await response.text())).toMatch(
      wire === 'openai' ? /response_format\.json_schema\.schema\.a\.a.*nested deeper than 64 levels/ : /format\.a\.a.*nested deeper than 64 levels/,
    );
    expect(await redis.keys(`${stack.prefix}:job:*`)).toEqual(before);
  });

  it('bounds a format schema in size, and refuses prototype keys, naming them', async () => {
    const big = await fetch(`${stack.apiUrl}/v1/jobs`, {
      method: 'POST',
      headers: { ...A, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt: 'x', format: { description: 'x'.repeat(60_000), extra: 'y'.repeat(10_000) } }),
    });
    expect(big.status).toBe(400);
    expect(errorMessage('native', await big.text())).toMatch(/format.*at most 64 KiB/);
    const proto = await fetch(`${stack.apiUrl}/v1/jobs`, {
      method: 'POST',
      headers: { ...A, 'Content-Type': 'application/json' },
      body: `{"model":"${MODEL}","prompt":"x","__proto__":{"admin":true}}`,
    });
    expect(proto.status).toBe(400);
    expect(errorMessage('native', await proto.text())).toMatch(/__proto__/);
  });

  it('refuses a repeated query parameter with a 400 naming it, without a key too', async () => {
    for (const headers of [{}, A]) {
      const response = await fetch(`${stack.apiUrl}/v1/jobs/abc/events?last_event_id=1&last_event_id=2`, { headers });
      expect(response.status).toBe(400);
      expect(errorMessage('native', await response.text())).toMatch(/"last_event_id" is given 2 times/);
    }
  });

  it('takes an empty body on GET and DELETE whatever Content-Type says', async () => {
    const submitted = await fetch(`${stack.apiUrl}/v1/jobs`, {
      method: 'POST',
      headers: { ...A, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt: 'x', options: { num_predict: 1 }, detach: true }),
    });
    const { id } = (await submitted.json()) as { id: string };
    for (const type of ['application/json', 'text/plain', 'application/x-www-form-urlencoded']) {
      const read = await fetch(`${stack.apiUrl}/v1/jobs/${id}`, { headers: { ...A, 'Content-Type': type } });
      expect(read.status, type).toBe(200);
      const cancel = await fetch(`${stack.apiUrl}/v1/jobs/${id}`, { method: 'DELETE', headers: { ...A, 'Content-Type': type } });
      expect([200, 202, 409], type).toContain(cancel.status);
    }
  });

  it('delivers a 413 to a client still uploading, instead of a reset', async () => {
    const response = await fetch(`${stack.apiUrl}/v1/jobs`, {
      method: 'POST',
      headers: { ...A, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt: 'x'.repeat(8 * 1024 * 1024) }),
    });
    expect(response.status).toBe(413);
    expect(errorMessage('native', await response.text())).toMatch(/limit of 262144 bytes/);
  });

  it('quotes input only truncated: a 3 MB model name is not echoed back', async () => {
    const stackWithRoom = await fetch(`${stack.apiUrl}/api/show`, { method: 'POST', headers: A, body: JSON.stringify({ model: 'm'.repeat(60_000) }) });
    expect(stackWithRoom.status).toBeLessThan(500);
    expect((await stackWithRoom.text()).length).toBeLessThan(500);
    const openai = await fetch(`${stack.apiUrl}/v1/models/${'m'.repeat(5_000)}`, { headers: A });
    expect((await openai.text()).length).toBeLessThan(500);
  });

  it('sends nosniff on every answer (JSON, errors, event streams) and frame-ancestors none on HTML', async () => {
    for (const [path, headers] of [
      ['/healthz', {}],
      ['/v1/nothing', {}],
      ['/v1/models', A],
      ['/v1/models', {}],
    ] as const) {
      const response = await fetch(`${stack.apiUrl}${path}`, { headers });
      expect(response.headers.get('x-content-type-options'), path).toBe('nosniff');
    }
    const submitted = await fetch(`${stack.apiUrl}/v1/jobs`, {
      method: 'POST',
      headers: { ...A, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt: 'x', options: { num_predict: 2 } }),
    });
    const { id } = (await submitted.json()) as { id: string };
    const events = await fetch(`${stack.apiUrl}/v1/jobs/${id}/events`, { headers: A });
    expect(events.headers.get('content-type')).toMatch(/text\/event-stream/);
    expect(events.headers.get('x-content-type-options')).toBe('nosniff');
    await events.text();
    const board = await fetch(`${stack.apiUrl}/admin/queues`, { headers: { Authorization: `Bearer ${KEYS.admin}` } });
    expect(board.headers.get('content-type')).toMatch(/text\/html/);
    expect(board.headers.get('content-security-policy')).toBe("frame-ancestors 'none'");
    expect(board.headers.get('x-frame-options')).toBe('DENY');
  });

  it('allows only the configured origins (CORS), never with credentials', async () => {
    const allowed = await fetch(`${stack.apiUrl}/v1/models`, { headers: { ...A, Origin: 'https://app.example' } });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(allowed.headers.get('access-control-allow-credentials')).toBeNull();
    expect(allowed.headers.get('access-control-expose-headers')).toMatch(/Retry-After/);
    const other = await fetch(`${stack.apiUrl}/v1/models`, { headers: { ...A, Origin: 'https://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const preflight = await fetch(`${stack.apiUrl}/v1/jobs`, {
      method: 'OPTIONS',
      headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/Authorization/i);
  });

  describe('admin browser sessions', () => {
    it('checks ?key= first, and sets nothing for a wrong or a tenant key', async () => {
      for (const [key, status] of [
        ['not-a-key-of-anyone-0000', 401],
        [KEYS.a, 403],
      ] as const) {
        const response = await fetch(`${stack.apiUrl}/admin/queues?key=${key}`, { redirect: 'manual' });
        expect(response.status).toBe(status);
        expect(response.headers.get('set-cookie')).toBeNull();
      }
    });

    it('trades the key for an opaque token stored hashed with an expiry, only for reads under /admin, until logout', async () => {
      const visit = await fetch(`${stack.apiUrl}/admin/queues/?key=${KEYS.admin}`, { redirect: 'manual' });
      expect(visit.status).toBe(303);
      expect(visit.headers.get('location')).toBe('/admin/queues/');
      const setCookie = visit.headers.get('set-cookie')!;
      expect(setCookie).toMatch(/^switchyard_session=[A-Za-z0-9_-]{43}; Path=\/admin; Max-Age=28800; HttpOnly; SameSite=Strict$/);
      const token = /=([^;]+)/.exec(setCookie)![1]!;
      expect(setCookie).not.toContain(KEYS.admin);
      const sessions = await redis.keys(`${stack.prefix}:session:*`);
      expect(sessions.some((key) => key.includes(token))).toBe(false); // only its hash is stored
      const stored = await Promise.all(sessions.map((key) => redis.ttl(key)));
      expect(stored.every((ttl) => ttl > 0 && ttl <= 28_800)).toBe(true);

      const cookie = { Cookie: `switchyard_session=${token}` };
      expect((await fetch(`${stack.apiUrl}/admin/queues/api/queues`, { headers: cookie })).status).toBe(200);
      expect((await fetch(`${stack.apiUrl}/admin/limits`, { headers: cookie })).status).toBe(200);
      // Not a credential for writes (no CSRF surface), nor outside the admin routes.
      expect((await fetch(`${stack.apiUrl}/admin/limits`, { method: 'PUT', headers: { ...cookie, 'Content-Type': 'application/json' }, body: '{}' })).status).toBe(401);
      expect((await fetch(`${stack.apiUrl}/v1/models`, { headers: cookie })).status).toBe(401);

      const logout = await fetch(`${stack.apiUrl}/admin/logout`, { method: 'POST', headers: cookie });
      expect(logout.status).toBe(200);
      expect(logout.headers.get('set-cookie')).toMatch(/Max-Age=0/);
      expect((await fetch(`${stack.apiUrl}/admin/queues/api/queues`, { headers: cookie })).status).toBe(401);
    });

    it('ends a session when the key it was made from is revoked', async () => {
      const created = await fetch(`${stack.apiUrl}/admin/keys`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${KEYS.admin}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ tenant: 'ops', admin: true }),
      });
      const { key, id } = (await created.json()) as { key: string; id: string };
      const visit = await fetch(`${stack.apiUrl}/admin/queues?key=${key}`, { redirect: 'manual' });
      const cookie = { Cookie: visit.headers.get('set-cookie')!.split(';')[0]! };
      expect((await fetch(`${stack.apiUrl}/admin/queues/api/queues`, { headers: cookie })).status).toBe(200);
      expect((await fetch(`${stack.apiUrl}/admin/keys/${id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${KEYS.admin}` } })).status).toBe(200);
      expect((await fetch(`${stack.apiUrl}/admin/queues/api/queues`, { headers: cookie })).status).toBe(401);
    });

    it('marks the cookie Secure when a trusted proxy says the request came over TLS', async () => {
      const visit = await fetch(`${stack.apiUrl}/admin/queues?key=${KEYS.admin}`, { redirect: 'manual', headers: { 'X-Forwarded-Proto': 'https' } });
      expect(visit.headers.get('set-cookie')).toMatch(/; Secure$/);
    });
  });
});

describe('X-Forwarded-Proto from an untrusted client', () => {
  it('is ignored: no Secure flag claimed by the client itself', async () => {
    const stack = await startStack({ nodes: [], api: { adminApiKeys: KEYS.admin } });
    try {
      const visit = await fetch(`${stack.apiUrl}/admin/queues?key=${KEYS.admin}`, { redirect: 'manual', headers: { 'X-Forwarded-Proto': 'https' } });
      expect(visit.status).toBe(303);
      expect(visit.headers.get('set-cookie')).not.toMatch(/Secure/);
      // CORS is off by default.
      const response = await fetch(`${stack.apiUrl}/healthz`, { headers: { Origin: 'https://app.example' } });
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await stack.close();
    }
  });
});
