import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import { access, declareAccessOfPluginRoutes, trackAccessDeclarations, type DeclaredRoute } from '@switchyard/api';
import { startStack, type Stack } from '../support/stack.js';

const KEYS = {
  a: 'tenant-a-key-0123456789',
  b: 'tenant-b-key-0123456789',
  admin: 'admin-key-0123456789abc',
};
type Caller = 'anonymous' | 'bad key' | 'tenant' | 'other tenant' | 'admin';
const CALLERS: Record<Caller, string | undefined> = {
  anonymous: undefined,
  'bad key': 'not-a-key-of-anyone-0000',
  tenant: KEYS.a,
  'other tenant': KEYS.b,
  admin: KEYS.admin,
};

/** One request on a raw socket, so every spelling of the target reaches the server as written. */
function rawStatus(port: number, method: string, target: string, key: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    // The status line is all this test reads: an event stream that stays open is not waited for.
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      const status = /^HTTP\/1\.1 (\d{3})/.exec(received);
      if (status) {
        resolve(Number(status[1]));
        socket.destroy();
      }
    });
    socket.on('error', reject);
    // A request that never gets an answer names itself instead of timing out the whole test.
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer within 10 s to ${method} ${target}`)));
    socket.on('close', () => reject(new Error(`no HTTP answer to ${method} ${target}: ${JSON.stringify(received.slice(0, 200))}`)));
    const auth = key === undefined ? '' : `Authorization: Bearer ${key}\r\n`;
    // write, not end: a half-closed client socket makes Node drop answers still pending.
    socket.write(`${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${auth}Content-Length: 0\r\nConnection: close\r\n\r\n`);
  });
}

/** A concrete path for a route pattern: the tenant's job for `:id`, a model for `/v1/models/*`, placeholders elsewhere. */
function concretePath(url: string, jobId: string): string {
  return url
    .replace(/:id\b/g, jobId)
    .replace(/:[A-Za-z]+/g, 'x')
    .replace(/\*$/, url.startsWith('/v1/models/') ? 'qwen2.5:0.5b' : 'x');
}

/** Spellings of one path that a router might resolve to the same route (or a lenient one would). */
function spellings(path: string, port: number): string[] {
  const segments = path.split('/');
  const encodeFirstLetter = (segment: string) => segment.replace(/[a-z]/i, (c) => `%${c.charCodeAt(0).toString(16)}`);
  const encodeAll = (segment: string) => segment.replace(/[a-z]/gi, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const last = segments.length - 1;
  return [
    path,
    segments.map(encodeFirstLetter).join('/'),
    segments.map(encodeAll).join('/'),
    segments.slice(0, last).join('/') + '%2F' + segments[last],
    segments.slice(0, last).join('/') + '%2f' + segments[last],
    path.toUpperCase(),
    `/${path}`,
    path.replace(/\/([^/]*)$/, '//$1'),
    path.replace(/\/([^/]*)$/, '/./$1'),
    path.replace(/\/([^/]*)$/, '/x/../$1'),
    path.replace(/\/([^/]*)$/, '/%2e%2e/$1'),
    `${path};x=1`,
    `${path}/`,
    `${path}#fragment`,
    `${path}?x=1#fragment`,
    `http://127.0.0.1:${port}${path}`,
    `HTTP://localhost${path}`,
    // Overlong UTF-8 for the first letter (`a` as C1 A1), the classic filter bypass.
    path.replace(/[a-z]/i, (c) => `%${(0xc0 | (c.charCodeAt(0) >> 6)).toString(16)}%${(0x80 | (c.charCodeAt(0) & 0x3f)).toString(16)}`),
  ];
}

/** What a caller must get on a route of a level: 'denied' statuses, or 'served' (anything but 401/403/405). */
function expectation(level: DeclaredRoute['access'], caller: Caller): 'unauthorized' | 'forbidden' | 'not allowed' | 'served' {
  if (level === 'none' || level === undefined) return 'not allowed';
  if (level === 'public') return 'served';
  if (caller === 'anonymous' || caller === 'bad key') return 'unauthorized';
  if (level === 'admin' && caller !== 'admin') return 'forbidden';
  return 'served';
}
const STATUS = { unauthorized: 401, forbidden: 403, 'not allowed': 405 } as const;

describe('authorization on the matched route, whatever the spelling of its path', () => {
  let stack: Stack;
  let port: number;
  let jobId: string;
  beforeAll(async () => {
    stack = await startStack({ api: { apiKeys: `a:${KEYS.a},b:${KEYS.b}`, adminApiKeys: KEYS.admin } });
    port = Number(new URL(stack.apiUrl).port);
    const submitted = await fetch(`${stack.apiUrl}/v1/jobs`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${KEYS.a}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'qwen2.5:0.5b', prompt: 'x', options: { num_predict: 1 }, detach: true }),
    });
    jobId = ((await submitted.json()) as { id: string }).id;
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('declares an access level on every route, Bull Board’s included', () => {
    const routes = stack.api.routes();
    expect(routes.length).toBeGreaterThan(20);
    expect(routes.filter((route) => route.access === undefined)).toEqual([]);
    expect(
      routes
        .filter((route) => route.access === 'public')
        .map((route) => `${route.method} ${route.url}`)
        .sort(),
    ).toEqual(['GET /admin/logout', 'GET /healthz', 'GET /readyz', 'HEAD /admin/logout', 'HEAD /healthz', 'HEAD /readyz', 'POST /admin/logout'].sort());
    const board = routes.filter((route) => route.url.startsWith('/admin/queues'));
    for (const route of board) expect(route.access, `${route.method} ${route.url}`).toBe(['GET', 'HEAD'].includes(route.method) ? 'admin' : 'none');
  });

  it('gives every route × caller × spelling the declared outcome, and never serves a route to a caller it denies', async () => {
    const failures: string[] = [];
    let checked = 0;
    // Cancelling or resubmitting on the way would change what later requests see; the
    // outcome for those is the same status either way (served), so order does not matter.
    const cases = stack.api.routes().flatMap((route) =>
      (Object.entries(CALLERS) as Array<[Caller, string | undefined]>).flatMap(([caller, key]) => {
        const path = concretePath(route.url, jobId);
        return spellings(path, port).map((target) => ({ route, caller, key, target, canonical: target === path }));
      }),
    );
    const check = async ({ route, caller, key, target, canonical }: (typeof cases)[number]) => {
      const expected = expectation(route.access, caller);
      const status = await rawStatus(port, route.method, target, key);
      checked++;
      const label = `${route.method} ${target} as ${caller}: ${status}`;
      if (status >= 500) failures.push(label);
      else if (expected !== 'served' && status < 400) failures.push(`${label}, expected ${expected}`);
      else if (expected !== 'served' && canonical && status !== STATUS[expected]) failures.push(`${label}, expected ${STATUS[expected]}`);
      else if (expected === 'served' && canonical && [401, 403, 405].includes(status)) failures.push(`${label}, expected it served`);
    };
    // A few connections at a time: the cases are independent.
    for (let i = 0; i < cases.length; i += 16) await Promise.all(cases.slice(i, i + 16).map(check));
    expect(failures).toEqual([]);
    expect(checked).toBeGreaterThan(1_000);
  }, 120_000);
});

describe('start-up refuses a route without a declared access level', () => {
  it('names the undeclared routes, and accepts routes a plugin scope declares for its dependency', async () => {
    const app = Fastify();
    const declarations = trackAccessDeclarations(app);
    app.get('/declared', access('tenant'), async () => 'ok');
    app.get('/forgotten', async () => 'open by omission');
    await app.register(async (scope) => {
      declareAccessOfPluginRoutes(scope, (route) => (route.method === 'GET' || route.method === 'HEAD' ? 'admin' : 'none'));
      scope.get('/dependency', async () => 'ok');
      scope.post('/dependency', async () => 'ok');
    });
    await app.ready();
    expect(() => declarations.assertDeclared()).toThrow(/GET \/forgotten, HEAD \/forgotten/);
    expect(
      declarations
        .routes()
        .filter((route) => route.url === '/dependency')
        .map((route) => `${route.method}:${route.access}`)
        .sort(),
    ).toEqual(['GET:admin', 'HEAD:admin', 'POST:none']);
    await app.close();
  });
});
