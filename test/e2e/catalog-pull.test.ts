/**
 * Ollama's model verbs on the broker, fleet-wide: the official `ollama` client's `pull`
 * streams the fleet's progress to `success` and leaves the model on every node; `delete`
 * removes it from them; admin only, bad input a 400 in Ollama's shape.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ollama } from 'ollama';
import { SAMPLE_CATALOG } from '@switchyard/gpu-sim';
import { startStack, type Stack } from '../support/stack.js';

const ADMIN_KEY = 'pull-admin-key-0123456789';
const TENANT_KEY = 'pull-tenant-key-0123456789';
/** On no node's disk at start: in the sims' default registry only. */
const PULLED = 'gemma2:2b';
const CATALOG_AGENT = { catalogReconcileMs: 200, pullRetryBaseMs: 100, pullRetryMaxMs: 400 };

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    // About 3 s per pull at the fast sims' time scale: long enough for the progress lines to show.
    nodes: [0, 1].map(() => ({ sim: { models: [...SAMPLE_CATALOG], pull_bytes_per_s: 1e7 }, agent: CATALOG_AGENT })),
    api: { adminApiKeys: ADMIN_KEY, apiKeys: `team:${TENANT_KEY}` },
  });
}, 60_000);
afterAll(() => stack?.close());

const client = (key = ADMIN_KEY) => new Ollama({ host: stack.apiUrl, headers: { authorization: `Bearer ${key}` } });
const onDisk = async (simIndex: number) =>
  ((await fetch(`${stack.sims[simIndex]!.url}/api/tags`).then((r) => r.json())) as { models: Array<{ name: string }> }).models.map((m) => m.name);

async function call(method: string, path: string, body: unknown, key = ADMIN_KEY) {
  const response = await fetch(`${stack.apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, text };
}

describe('Ollama pull and delete on the broker', () => {
  it('ollama-js pull streams the fleet progress to success, and every node then holds and serves the model', async () => {
    const statuses: string[] = [];
    let completed = 0;
    let total = 0;
    for await (const progress of await client().pull({ model: PULLED, stream: true })) {
      statuses.push(progress.status);
      if (progress.completed !== undefined) {
        expect(progress.completed).toBeGreaterThanOrEqual(completed);
        completed = progress.completed;
        total = progress.total;
      }
    }
    // Summed over the two nodes pulling it.
    expect(total).toBeGreaterThan(0);
    expect(statuses).toContain(`pulling ${PULLED}`);
    expect(statuses[0]).toBe('pulling manifest');
    expect(statuses.at(-1)).toBe('success');
    expect(statuses).toContain('verifying sha256 digest');
    expect(await onDisk(0)).toContain(PULLED);
    expect(await onDisk(1)).toContain(PULLED);

    const tags = await client().list();
    const entry = tags.models.find((model) => model.name === PULLED) as unknown as {
      digest: string;
      switchyard: { agents: string[]; agents_by_digest: Record<string, string[]> };
    };
    const ids = stack.agents.map((agent) => agent.id).sort();
    expect(entry.switchyard.agents.sort()).toEqual(ids);
    expect(Object.keys(entry.switchyard.agents_by_digest)).toEqual([entry.digest]);
    expect(entry.switchyard.agents_by_digest[entry.digest]!.sort()).toEqual(ids);
    const answer = await client(TENANT_KEY).chat({ model: PULLED, messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 3 } });
    expect(answer.done).toBe(true);

    // Pulled again, with stream false: already everywhere, so success at once; both answers point at the status.
    expect(await client().pull({ model: PULLED, stream: false })).toEqual({ status: 'success' });
    for (const stream of [true, false]) {
      const response = await fetch(`${stack.apiUrl}/api/pull`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_KEY}` },
        body: JSON.stringify({ name: PULLED, stream }),
      });
      expect(response.headers.get('x-switchyard-model-status')).toBe(`/admin/models/${encodeURIComponent(PULLED)}`);
      expect((await response.text()).trim().split('\n').at(-1)).toBe(JSON.stringify({ status: 'success' }));
    }
  });

  it('a pull no node can take (the entry places it nowhere) says why: an error line, or a 409', async () => {
    const model = 'placed-nowhere:1b';
    const put = await call('PUT', `/admin/models/${encodeURIComponent(model)}`, { on: { agents: ['no-such-agent'] } });
    expect(put.status).toBe(201);
    try {
      const streamed = await call('POST', '/api/pull', { model });
      expect(streamed.status).toBe(200);
      const lines = streamed.text
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { status?: string; error?: string });
      expect(lines[0]).toEqual({ status: 'pulling manifest' });
      expect(lines.at(-1)).toEqual({ error: expect.stringMatching(/no node can hold placed-nowhere:1b/) });
      const whole = await call('POST', '/api/pull', { model, stream: false });
      expect(whole.status).toBe(409);
      expect(JSON.parse(whole.text)).toEqual({ error: expect.stringMatching(/no node can hold/) });
      // The entry was there before: the pull leaves it as it was.
      const entry = JSON.parse((await call('GET', `/admin/models/${encodeURIComponent(model)}`, undefined)).text) as { entry: { on: unknown } };
      expect(entry.entry.on).toEqual({ agents: ['no-such-agent'] });
    } finally {
      await call('DELETE', `/admin/models/${encodeURIComponent(model)}`, undefined);
    }
  });

  it('a model the registry does not have ends with Ollama’s error, and leaves no catalog entry', async () => {
    const streamed = await call('POST', '/api/pull', { model: 'no-such-model:1b' });
    expect(streamed.status).toBe(200);
    expect(streamed.text.trim().split('\n').at(-1)).toBe(JSON.stringify({ error: 'pull model manifest: file does not exist' }));
    await expect(client().pull({ model: 'no-such-model:2b', stream: false })).rejects.toThrow(/file does not exist/);
    const entry = await call('GET', `/admin/models/${encodeURIComponent('no-such-model:1b')}`, undefined);
    expect(entry.status).toBe(404);
  });

  it('needs an admin key, and bad bodies get a 400 naming the problem', async () => {
    const tenant = await call('POST', '/api/pull', { model: PULLED }, TENANT_KEY);
    expect(tenant.status).toBe(403);
    expect(JSON.parse(tenant.text)).toEqual({ error: expect.stringMatching(/admin/) });
    expect((await call('DELETE', '/api/delete', { model: PULLED }, TENANT_KEY)).status).toBe(403);
    for (const body of [{}, { model: 7 }, { model: 'a b' }, { model: PULLED, stream: 'yes' }, '[]', '{"model":']) {
      const bad = await call('POST', '/api/pull', body);
      expect(bad.status, JSON.stringify(body)).toBe(400);
      expect(JSON.parse(bad.text)).toEqual({ error: expect.any(String) });
    }
    expect(JSON.parse((await call('POST', '/api/pull', { model: 7 })).text).error).toMatch(/model/);
    expect(JSON.parse((await call('POST', '/api/pull', { model: PULLED, stream: 'yes' })).text).error).toMatch(/stream/);
    for (const body of [{}, { name: '' }, { model: 'a b' }, '[]']) {
      const bad = await call('DELETE', '/api/delete', body);
      expect(bad.status, JSON.stringify(body)).toBe(400);
      expect(JSON.parse(bad.text)).toEqual({ error: expect.stringMatching(/model|name|body/) });
    }
  });

  it('a pull of a model being removed puts it back in the catalog', async () => {
    expect(await client().pull({ model: PULLED, stream: false })).toEqual({ status: 'success' });
    await client().delete({ model: PULLED });
    const removing = JSON.parse((await call('GET', `/admin/models/${encodeURIComponent(PULLED)}`, undefined)).text) as { state: string };
    expect(removing.state).toBe('removing');
    // Whether or not a node deleted it meanwhile, the pull ends with every node holding it.
    expect(await client().pull({ model: PULLED, stream: false })).toEqual({ status: 'success' });
    const back = JSON.parse((await call('GET', `/admin/models/${encodeURIComponent(PULLED)}`, undefined)).text) as { state: string; entry: { removing?: boolean } };
    expect(back.state).toBe('ready');
    expect(back.entry.removing).toBeUndefined();
    expect(await onDisk(0)).toContain(PULLED);
    expect(await onDisk(1)).toContain(PULLED);
  });

  it('delete removes the model from every node, and a model nobody has is a 404', async () => {
    await client().pull({ model: PULLED, stream: false });
    await client().delete({ model: PULLED });
    const deadline = Date.now() + 15_000;
    while ((await onDisk(0)).includes(PULLED) || (await onDisk(1)).includes(PULLED)) {
      if (Date.now() > deadline) throw new Error('the model stayed on a node after DELETE /api/delete');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Maintenance drops the entry once no node holds it; then the model is unknown.
    const gone = Date.now() + 15_000;
    while ((await call('DELETE', '/api/delete', { model: PULLED })).status !== 404) {
      if (Date.now() > gone) throw new Error('DELETE of a removed model never answered 404');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const missing = await call('DELETE', '/api/delete', { model: 'never-there:1b' });
    expect(missing).toEqual({ status: 404, text: JSON.stringify({ error: "model 'never-there:1b' not found" }) });
  });
});
