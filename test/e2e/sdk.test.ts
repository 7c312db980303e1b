import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SwitchyardClient, SwitchyardError, type ReconnectInfo, type StreamEvent } from '@switchyard/sdk';
import { startStack, type Stack } from '../support/stack.js';
import { REPO_ROOT, buildWorkspacePackages } from '../support/workspace-build.js';

const run = promisify(execFile);
const MODEL = 'qwen2.5:0.5b';

function textOf(events: StreamEvent[]): string {
  return events.map((event) => (event.type === 'token' ? event.text : '')).join('');
}

/**
 * A TCP proxy in front of the API that, once armed, kills the connection carrying the
 * n-th token event: it forwards the response up to the middle of that event, then destroys
 * both sockets — the server-side drop a load balancer or a restarted proxy causes.
 */
async function startDroppingProxy(target: URL): Promise<{ url: string; armAfterTokens(n: number): void; drops: number; close(): Promise<void> }> {
  let armedAt: number | undefined;
  const sockets = new Set<Socket>();
  const state = {
    drops: 0,
    url: '',
    armAfterTokens: (n: number) => {
      armedAt = n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    let tokens = 0;
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      if (armedAt !== undefined) {
        const text = chunk.toString('latin1');
        let index = -1;
        for (let at = text.indexOf('event: token'); at !== -1; at = text.indexOf('event: token', at + 1)) {
          tokens++;
          if (tokens === armedAt) {
            index = at;
            break;
          }
        }
        if (index !== -1) {
          armedAt = undefined;
          state.drops++;
          client.write(chunk.subarray(0, index + 'event: token\ndata: {"se'.length));
          client.destroy();
          upstream.destroy();
          return;
        }
      }
      client.write(chunk);
    });
    upstream.on('end', () => client.end());
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => {
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  state.url = `http://127.0.0.1:${address.port}`;
  return state;
}

describe('@switchyard/sdk against a running stack', () => {
  let stack: Stack;
  let client: SwitchyardClient;
  beforeAll(async () => {
    // Real-time tokens and answers of 150+ tokens: a stream is long enough to be cut.
    stack = await startStack({ nodes: [{ sim: { time_scale: 1, load_overhead_ms: 0, load_bytes_per_s: 1e12, response_tokens_min: 150, response_tokens_max: 300 } }] });
    client = new SwitchyardClient({ baseUrl: stack.apiUrl });
  });
  afterAll(() => stack?.close());

  it('resumes after the server side drops the connection mid-stream: same events, contiguous seqs', async () => {
    const proxy = await startDroppingProxy(new URL(stack.apiUrl));
    try {
      const viaProxy = new SwitchyardClient({ baseUrl: proxy.url });
      const job = await viaProxy.submit({ model: MODEL, prompt: 'tell me a long story', options: { seed: 21 } });
      expect(job.queue).toMatchObject({ position: expect.any(Number), depth: expect.any(Number) });
      proxy.armAfterTokens(8);
      const reconnects: ReconnectInfo[] = [];
      const stream = viaProxy.stream(job, { onReconnect: (info) => reconnects.push(info) });
      const events: StreamEvent[] = [];
      for await (const event of stream) events.push(event);

      expect(proxy.drops).toBe(1);
      expect(reconnects.length).toBeGreaterThanOrEqual(1);
      expect(reconnects[0]!.lastEventId).toBeGreaterThan(0);
      expect(stream.reconnects).toBe(reconnects.length);
      expect(events.map((event) => event.seq)).toEqual(events.map((_, index) => index + 1));
      expect(events.at(-1)!.type).toBe('done');
      expect(stream.lastEventId).toBe(events.at(-1)!.seq);

      // The same job read without interruption gives the same events, and the same text
      // the node generates for this prompt and seed.
      const uninterrupted: StreamEvent[] = [];
      for await (const event of client.stream(job.id)) uninterrupted.push(event);
      expect(events).toEqual(uninterrupted);
      const record = await client.get(job.id);
      expect(record.status).toBe('completed');
      expect(textOf(events)).toBe(record.result!.text);
      const direct = (await fetch(`${stack.sims[0]!.url}/api/generate`, {
        method: 'POST',
        body: JSON.stringify({ model: MODEL, prompt: 'tell me a long story', stream: false, options: { seed: 21 } }),
      }).then((response) => response.json())) as { response: string };
      expect(textOf(events)).toBe(direct.response);
    } finally {
      await proxy.close();
    }
  });

  it('resumes from a saved lastEventId in a new stream() call, and stops at once for a finished job', async () => {
    const job = await client.submit({ model: MODEL, prompt: 'resume me later', options: { num_predict: 40 } });
    const first: StreamEvent[] = [];
    const stream = client.stream(job);
    for await (const event of stream) {
      first.push(event);
      if (event.type === 'token' && first.length >= 4) break;
    }
    const saved = stream.lastEventId;
    const rest: StreamEvent[] = [];
    for await (const event of client.stream(job.id, { lastEventId: saved })) rest.push(event);
    expect(rest[0]!.seq).toBe(saved + 1);
    const all = [...first, ...rest];
    expect(all.map((event) => event.seq)).toEqual(all.map((_, index) => index + 1));
    // Everything delivered: the server answers 204 and the iteration ends empty.
    const after: StreamEvent[] = [];
    for await (const event of client.stream(job.id, { lastEventId: all.at(-1)!.seq })) after.push(event);
    expect(after).toEqual([]);
  });

  it('runs a job to its text, validates records, and reports job failures as SwitchyardError', async () => {
    const seen: string[] = [];
    const outcome = await client.run(
      { model: MODEL, messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 12 } },
      { onEvent: (event) => seen.push(event.type) },
    );
    expect(outcome.done.finish_reason).toBe('length');
    expect(outcome.done.usage.completion_tokens).toBe(12);
    expect(outcome.restarts).toBe(0);
    expect(seen[0]).toBe('queued');
    expect((await client.get(outcome.id)).result?.text).toBe(outcome.text);

    const missing = await client.submit({ model: 'nope:1b', prompt: 'x' }).catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(SwitchyardError);
    expect(missing).toMatchObject({ code: 'model_not_found', status: 404 });
  });

  it('cancels a running job; the stream ends with the cancellation and a second cancel is job_finished', async () => {
    // Held in the simulator after its first token: the sim ends answers after 300 tokens
    // whatever num_predict says, little more than a second, which a loaded machine can spend
    // before the cancel arrives.
    stack.hold({ prompt: 'go on forever', afterTokens: 1 });
    const job = await client.submit({ model: MODEL, prompt: 'go on forever', options: { num_predict: 5_000 } });
    const events: StreamEvent[] = [];
    const reading = (async () => {
      for await (const event of client.stream(job)) events.push(event);
    })();
    await expect.poll(async () => (await client.get(job.id)).status, { timeout: 10_000 }).toBe('running');
    const record = await client.cancel(job.id);
    expect(record.status).toBe('cancelled');
    await reading;
    expect(events.at(-1)).toMatchObject({ type: 'error', code: 'cancelled' });
    await expect.poll(async () => (await client.get(job.id)).status).toBe('cancelled');
    const again = await client.cancel(job.id).catch((error: unknown) => error);
    expect(again).toMatchObject({ code: 'job_finished', status: 409 });
  });

  it('ends a stream with the AbortSignal’s reason', async () => {
    const job = await client.submit({ model: MODEL, prompt: 'abort me', options: { num_predict: 2_000 } });
    const controller = new AbortController();
    const error = await (async () => {
      for await (const event of client.stream(job, { signal: controller.signal })) {
        if (event.type === 'token') controller.abort(new Error('enough'));
      }
    })().catch((caught: unknown) => caught);
    expect((error as Error).message).toBe('enough');
    await client.cancel(job.id).catch(() => undefined);
  });

  it('lists models and agents with typed, validated answers', async () => {
    const models = await client.models();
    const qwen = models.find((model) => model.id === MODEL);
    expect(qwen).toMatchObject({ servable: true, agents: ['agent-0'] });
    const agents = await client.agents();
    expect(agents.map((agent) => agent.id)).toEqual(['agent-0']);
    expect(agents[0]!.gpus[0]!.vram_total_bytes).toBeGreaterThan(0);
  });
});

describe('@switchyard/sdk honours Retry-After on refusals', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
    await stack.agents[0]!.close();
    for (const deadline = Date.now() + 10_000; ;) {
      const live = ((await fetch(`${stack.apiUrl}/v1/agents`).then((r) => r.json())) as any).data.length;
      if (live === 0) break;
      if (Date.now() > deadline) throw new Error('the closed agent is still listed');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });
  afterAll(() => stack?.close());

  it('throws at once when Retry-After exceeds the wait budget', async () => {
    const client = new SwitchyardClient({ baseUrl: stack.apiUrl, retry: { maxRetries: 3, maxWaitMs: 500 } });
    const started = Date.now();
    const error = (await client.submit({ model: MODEL, prompt: 'x' }).catch((caught: unknown) => caught)) as SwitchyardError;
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(error).toBeInstanceOf(SwitchyardError);
    expect(error).toMatchObject({ code: 'no_capacity', status: 503, isRefusal: true });
    expect(error.retryAfterS).toBeGreaterThan(0.5);
  });

  it('waits Retry-After and retries, succeeding once the fleet is back', async () => {
    const attempts: Array<{ at: number; status: number; retryAfter: string | null }> = [];
    const countingFetch: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      attempts.push({ at: Date.now(), status: response.status, retryAfter: response.headers.get('retry-after') });
      if (response.status === 503 && attempts.length === 1) void stack.addAgent(0);
      return response;
    };
    const client = new SwitchyardClient({ baseUrl: stack.apiUrl, fetch: countingFetch, retry: { maxRetries: 2, maxWaitMs: 30_000 } });
    const job = await client.submit({ model: MODEL, prompt: 'x', options: { num_predict: 2 } });
    expect(job.status).toBe('queued');
    expect(attempts.map((attempt) => attempt.status)).toEqual([503, 202]);
    expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(Number(attempts[0]!.retryAfter) * 1000 - 50);
  }, 40_000);
});

describe('@switchyard/sdk as a package', () => {
  it('builds, and its dist imports cleanly from a separate project (runtime and types)', async () => {
    await buildWorkspacePackages('@switchyard/sdk...');
    const sdkDir = join(REPO_ROOT, 'packages/sdk');
    const protocolDir = join(REPO_ROOT, 'packages/protocol');

    // The browser path: no Node built-ins and no Node globals in what ships.
    for (const dir of [join(sdkDir, 'dist'), join(protocolDir, 'dist')]) {
      for (const file of (await readdir(dir)).filter((name) => name.endsWith('.js'))) {
        // Code only: the TSDoc examples may well mention process.stdout.
        const source = (await readFile(join(dir, file), 'utf8')).replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
        expect(source, file).not.toMatch(/from ['"]node:|require\(|\bprocess\.|\bBuffer\b/);
      }
    }

    const project = await mkdtemp(join(tmpdir(), 'switchyard-sdk-consumer-'));
    try {
      const modules = join(project, 'node_modules');
      await mkdir(join(modules, '@switchyard'), { recursive: true });
      // The packages as they would be installed: package.json and dist only.
      for (const [name, dir] of [
        ['sdk', sdkDir],
        ['protocol', protocolDir],
      ] as const) {
        await mkdir(join(modules, '@switchyard', name));
        await cp(join(dir, 'package.json'), join(modules, '@switchyard', name, 'package.json'));
        await cp(join(dir, 'dist'), join(modules, '@switchyard', name, 'dist'), { recursive: true });
      }
      await symlink(await realpath(join(sdkDir, 'node_modules/eventsource-parser')), join(modules, 'eventsource-parser'));
      await symlink(await realpath(join(protocolDir, 'node_modules/zod')), join(modules, 'zod'));
      await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));

      const script = [
        "import { SwitchyardClient, SwitchyardError } from '@switchyard/sdk';",
        "const client = new SwitchyardClient({ baseUrl: 'http://127.0.0.1:9' });",
        "const error = await client.get('x').catch((e) => e);",
        'console.log(JSON.stringify({ client: typeof client.stream, error: error instanceof SwitchyardError, code: error.code }));',
      ].join('\n');
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: project, timeout: 30_000 });
      expect(JSON.parse(stdout)).toEqual({ client: 'function', error: true, code: 'connection_failed' });

      // Types resolve through the exports map too (TypeScript with NodeNext resolution).
      await writeFile(
        join(project, 'consumer.ts'),
        [
          "import { SwitchyardClient, type StreamEvent } from '@switchyard/sdk';",
          "const client = new SwitchyardClient({ baseUrl: 'http://localhost:8080' });",
          'export async function text(id: string): Promise<string> {',
          "  let out = '';",
          '  for await (const event of client.stream(id)) {',
          '    const typed: StreamEvent = event;',
          "    if (typed.type === 'token') out += typed.text;",
          '  }',
          '  return out;',
          '}',
        ].join('\n'),
      );
      await writeFile(
        join(project, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, lib: ['ES2022', 'DOM'], types: [] },
          files: ['consumer.ts'],
        }),
      );
      await run(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-p', project], { cwd: project, timeout: 60_000 }).catch((error: { stdout?: string; message: string }) => {
        throw new Error(`the consumer project does not type-check:\n${error.stdout ?? error.message}`);
      });
    } finally {
      await rm(project, { recursive: true, force: true });
    }
  }, 120_000);
});
