import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, type GenerateChunk } from '../backend.js';
import { OllamaBackend, type OllamaBackendOptions } from './ollama-backend.js';

// A real HTTP server speaking Ollama's wire format, so undici, chunked encoding and socket
// teardown are exercised for real. Each test installs its own handler.

interface SeenRequest {
  method: string;
  path: string;
  body: unknown;
  /** Resolves when the client drops the connection before the response finished. */
  disconnected: Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: unknown) => void | Promise<void>;

let server: Server;
let baseUrl: string;
let handler: Handler;
let seen: SeenRequest[];
let connections: number;
const backends: OllamaBackend[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let disconnect!: () => void;
    const disconnected = new Promise<void>((resolve) => (disconnect = resolve));
    res.on('close', () => {
      if (!res.writableFinished) disconnect();
    });
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      const raw = Buffer.concat(parts).toString('utf8');
      const body: unknown = raw === '' ? undefined : JSON.parse(raw);
      seen.push({ method: req.method ?? '', path: req.url ?? '', body, disconnected });
      void Promise.resolve(handler(req, res, body)).catch(() => {
        // The client went away mid-write; that is what several tests provoke.
      });
    });
  });
  server.on('connection', () => (connections += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

afterEach(async () => {
  // Drop whatever a test left hanging so close() (which waits for in-flight requests) returns.
  server.closeAllConnections();
  await Promise.all(backends.splice(0).map((created) => created.close()));
});

function resetServer(next: Handler): void {
  handler = next;
  seen = [];
  connections = 0;
}

function backend(options: Partial<OllamaBackendOptions> = {}): OllamaBackend {
  const created = new OllamaBackend({ url: baseUrl, ...options });
  backends.push(created);
  return created;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

/** Writes `text` as UTF-8 in pieces cut at the given byte offsets, pausing between pieces. */
async function writeAwkwardly(res: ServerResponse, text: string, cuts: number[], pauseMs = 5): Promise<void> {
  const bytes = Buffer.from(text, 'utf8');
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (res.destroyed) return;
    res.write(bytes.subarray(from, cut));
    from = cut;
    await sleep(pauseMs);
  }
}

function ndjsonHead(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
}

function lines(...values: unknown[]): string {
  return values.map((value) => `${JSON.stringify(value)}\n`).join('');
}

async function collect(iterable: AsyncIterable<GenerateChunk>): Promise<GenerateChunk[]> {
  const out: GenerateChunk[] = [];
  for await (const chunk of iterable) out.push(chunk);
  return out;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    sleep(ms).then(() => {
      throw new Error(`timed out waiting for ${what}`);
    }),
  ]);
}

const DONE_LINE = {
  model: 'llama3.1:8b',
  created_at: '2025-01-01T00:00:00Z',
  message: { role: 'assistant', content: '' },
  done: true,
  done_reason: 'stop',
  total_duration: 5_043_500_667,
  load_duration: 5_025_959,
  prompt_eval_count: 26,
  prompt_eval_duration: 325_953_000,
  eval_count: 3,
  eval_duration: 4_709_213_000,
};

/** Streams tokens forever, one every `everyMs`, until the client goes away. */
function endlessTokens(everyMs: number): Handler {
  return async (_req, res) => {
    ndjsonHead(res);
    while (!res.destroyed) {
      res.write(lines({ message: { role: 'assistant', content: 'tok' }, done: false }));
      await sleep(everyMs);
    }
  };
}

/**
 * One token, then silence until the client goes away: "aborted while waiting for the next
 * token" with no next token to race the abort (an endless stream can deliver one first on a
 * loaded machine, and a buffered token can answer next() before the abort is seen).
 */
function oneTokenThenSilence(): Handler {
  return (_req, res) => {
    ndjsonHead(res);
    res.write(lines({ message: { role: 'assistant', content: 'tok' }, done: false }));
  };
}

describe('OllamaBackend.generate', () => {
  it('streams chat tokens in order from awkwardly split chunks and converts the done line', async () => {
    const payload = lines(
      { message: { role: 'assistant', content: 'Bonjour' }, done: false },
      { message: { role: 'assistant', content: '' }, done: false },
      { message: { role: 'assistant', content: ' caf\u00e9 ' }, done: false },
      { message: { role: 'assistant', content: '\u{1F999}!' }, done: false },
      DONE_LINE,
    );
    const bytes = Buffer.from(payload);
    const cafe = bytes.indexOf(Buffer.from('\u00e9'));
    const llama = bytes.indexOf(Buffer.from('\u{1F999}'));
    // Mid-line, mid-2-byte char, mid-4-byte char, right before a newline.
    const cuts = [3, 40, cafe + 1, llama + 2, llama + 3, bytes.indexOf(0x0a, llama)];
    resetServer(async (_req, res) => {
      ndjsonHead(res);
      await writeAwkwardly(res, payload, cuts);
      res.end();
    });

    const chunks = await collect(
      backend({ keepAlive: -1 }).generate({
        model: 'llama3.1:8b',
        system: 'be brief',
        messages: [{ role: 'user', content: 'hi' }],
        options: { temperature: 0, num_ctx: 4096 },
        format: 'json',
      }),
    );

    expect(chunks).toEqual([
      { type: 'token', text: 'Bonjour' },
      { type: 'token', text: ' caf\u00e9 ' },
      { type: 'token', text: '\u{1F999}!' },
      {
        type: 'done',
        done_reason: 'stop',
        prompt_tokens: 26,
        completion_tokens: 3,
        total_ms: 5043.500667,
        load_ms: 5.025959,
        prompt_eval_ms: 325.953,
        eval_ms: 4709.213,
      },
    ]);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.method).toBe('POST');
    expect(seen[0]?.path).toBe('/api/chat');
    expect(seen[0]?.body).toEqual({
      model: 'llama3.1:8b',
      stream: true,
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hi' },
      ],
      options: { temperature: 0, num_ctx: 4096 },
      format: 'json',
      keep_alive: -1,
    });
  });

  it('uses /api/generate with prompt and system, and the request keep_alive wins over the default', async () => {
    resetServer(async (_req, res) => {
      ndjsonHead(res);
      await writeAwkwardly(
        res,
        lines({ response: 'The', done: false }, { response: ' sky', done: false }, { response: '', done: true, done_reason: 'length', eval_count: 2 }),
        [10, 11, 12, 50],
      );
      res.end();
    });

    const chunks = await collect(backend({ keepAlive: '30m' }).generate({ model: 'm', prompt: 'Why?', system: 'sys', keep_alive: '5m' }));

    expect(chunks.filter((c) => c.type === 'token').map((c) => (c.type === 'token' ? c.text : ''))).toEqual(['The', ' sky']);
    expect(chunks.at(-1)).toMatchObject({ type: 'done', done_reason: 'length', completion_tokens: 2 });
    expect(seen[0]?.path).toBe('/api/generate');
    expect(seen[0]?.body).toEqual({ model: 'm', stream: true, prompt: 'Why?', system: 'sys', keep_alive: '5m' });
  });

  it('defaults every omitted metric field to 0 (Go omitempty)', async () => {
    resetServer((_req, res) => {
      ndjsonHead(res);
      res.end(lines({ response: 'x', done: false }, { done: true }));
    });

    const chunks = await collect(backend().generate({ model: 'm', prompt: 'p' }));

    expect(chunks.at(-1)).toEqual({
      type: 'done',
      done_reason: 'stop',
      prompt_tokens: 0,
      completion_tokens: 0,
      total_ms: 0,
      load_ms: 0,
      prompt_eval_ms: 0,
      eval_ms: 0,
    });
  });

  it('rejects with BackendError backend_error on a mid-stream {"error"} line, after the tokens before it', async () => {
    resetServer(async (_req, res) => {
      ndjsonHead(res);
      await writeAwkwardly(res, lines({ response: 'partial', done: false }, { error: 'an error was encountered while running the model: CUDA error' }), [20, 45]);
      res.end();
    });

    const got: GenerateChunk[] = [];
    const error = await rejection(
      (async () => {
        for await (const chunk of backend().generate({ model: 'm', prompt: 'p' })) got.push(chunk);
      })(),
    );

    expect(got).toEqual([{ type: 'token', text: 'partial' }]);
    expect(error).toBeInstanceOf(BackendError);
    expect(error).toMatchObject({
      code: 'backend_error',
      status: undefined,
      message: 'an error was encountered while running the model: CUDA error',
    });
  });

  it('rejects with backend_error when the stream ends without a done line', async () => {
    resetServer((_req, res) => {
      ndjsonHead(res);
      res.end(lines({ response: 'x', done: false }));
    });
    const error = await rejection(collect(backend().generate({ model: 'm', prompt: 'p' })));
    expect(error).toMatchObject({ name: 'BackendError', code: 'backend_error' });
    expect((error as Error).message).toMatch(/without a done line/);
  });

  it('rejects with backend_error naming the line when the stream carries invalid JSON', async () => {
    resetServer((_req, res) => {
      ndjsonHead(res);
      res.end('{"response":"ok","done":false}\n<html>oops</html>\n');
    });
    const error = await rejection(collect(backend().generate({ model: 'm', prompt: 'p' })));
    expect(error).toMatchObject({ name: 'BackendError', code: 'backend_error' });
    expect((error as Error).message).toContain('<html>oops</html>');
  });

  it.each([
    [404, "model 'nope:latest' not found", 'model_not_found'],
    [503, 'server busy, please try again.  maximum pending requests exceeded', 'busy'],
    [400, 'invalid options: num_ctx', 'bad_request'],
    [500, 'llama runner process has terminated: exit status 2', 'backend_error'],
  ] as const)('maps HTTP %i to %s with the body message', async (status, message, code) => {
    resetServer((_req, res) => json(res, status, { error: message }));

    const error = await rejection(collect(backend().generate({ model: 'nope', prompt: 'p' })));

    expect(error).toBeInstanceOf(BackendError);
    expect(error).toMatchObject({ status, code, message });
  });

  it('maps a 404 without an Ollama error body (missing route) to backend_error, not model_not_found', async () => {
    resetServer((_req, res) => {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('404 page not found');
    });
    const error = await rejection(backend().listLoaded());
    expect(error).toMatchObject({ status: 404, code: 'backend_error' });
    expect((error as Error).message).toContain('404 page not found');
  });

  it('maps a refused connection to unavailable', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const dead = backend({ url: `http://127.0.0.1:${port}` });

    const streamError = await rejection(collect(dead.generate({ model: 'm', prompt: 'p' })));
    const versionError = await rejection(dead.version());

    for (const error of [streamError, versionError]) {
      expect(error).toBeInstanceOf(BackendError);
      expect(error).toMatchObject({ code: 'unavailable', status: undefined });
      expect((error as Error).message).toContain('ECONNREFUSED');
      expect((error as Error).cause).toBeDefined();
    }
  });

  it('closes the HTTP request when aborted while waiting for the next token, and rejects with AbortError', async () => {
    resetServer(oneTokenThenSilence());
    const controller = new AbortController();
    const iterator = backend().generate({ model: 'm', prompt: 'p' }, controller.signal)[Symbol.asyncIterator]();

    expect(await iterator.next()).toEqual({ done: false, value: { type: 'token', text: 'tok' } });
    const pending = iterator.next();
    setTimeout(() => controller.abort(), 10);
    const error = await rejection(pending);

    expect(error).toMatchObject({ name: 'AbortError' });
    await withTimeout(seen[0]!.disconnected, 2_000, 'the server to see the disconnect');
    // Finished for good afterwards.
    expect(await iterator.next()).toEqual({ done: true, value: undefined });
  });

  it('closes the request when aborted while the consumer is between tokens', async () => {
    resetServer(endlessTokens(5));
    const controller = new AbortController();
    const iterator = backend().generate({ model: 'm', prompt: 'p' }, controller.signal)[Symbol.asyncIterator]();

    await iterator.next();
    controller.abort();
    await withTimeout(seen[0]!.disconnected, 2_000, 'the server to see the disconnect');
    await sleep(20);
    const error = await rejection(iterator.next());
    expect(error).toMatchObject({ name: 'AbortError' });
  });

  it('closes the request when aborted before headers (model still loading)', async () => {
    // A load that never ends: only the abort can end the call.
    resetServer(() => undefined);
    const controller = new AbortController();
    const iterator = backend().generate({ model: 'm', prompt: 'p' }, controller.signal)[Symbol.asyncIterator]();

    const pending = iterator.next();
    while (seen.length === 0) await sleep(5);
    controller.abort();

    expect(await rejection(pending)).toMatchObject({ name: 'AbortError' });
    await withTimeout(seen[0]!.disconnected, 2_000, 'the server to see the disconnect');
  });

  it('rethrows an Error abort reason as is (a deadline stays distinguishable from a cancel)', async () => {
    resetServer(oneTokenThenSilence());
    const controller = new AbortController();
    const reason = new DOMException('deadline passed', 'TimeoutError');
    const iterator = backend().generate({ model: 'm', prompt: 'p' }, controller.signal)[Symbol.asyncIterator]();
    await iterator.next();
    const pending = iterator.next();
    controller.abort(reason);
    expect(await rejection(pending)).toBe(reason);
  });

  it('wraps a non-Error abort reason in an AbortError DOMException', async () => {
    resetServer(oneTokenThenSilence());
    const controller = new AbortController();
    const iterator = backend().generate({ model: 'm', prompt: 'p' }, controller.signal)[Symbol.asyncIterator]();
    await iterator.next();
    const pending = iterator.next();
    controller.abort('job cancelled');
    const error = await rejection(pending);
    expect(error).toBeInstanceOf(DOMException);
    expect(error).toMatchObject({ name: 'AbortError' });
    expect((error as Error).message).toContain('job cancelled');
  });

  it('does not send anything when the signal is already aborted', async () => {
    resetServer(endlessTokens(20));
    const error = await rejection(collect(backend().generate({ model: 'm', prompt: 'p' }, AbortSignal.abort())));
    expect(error).toMatchObject({ name: 'AbortError' });
    await sleep(20);
    expect(seen).toHaveLength(0);
  });

  it('closes the request when the consumer breaks out early, and the backend stays usable', async () => {
    resetServer(async (req, res, body) => {
      if (req.url === '/api/version') return json(res, 200, { version: '0.9.0' });
      return endlessTokens(10)(req, res, body);
    });
    const ollama = backend();

    let tokens = 0;
    for await (const chunk of ollama.generate({ model: 'm', prompt: 'p' })) {
      expect(chunk).toEqual({ type: 'token', text: 'tok' });
      tokens += 1;
      if (tokens === 2) break;
    }

    await withTimeout(seen[0]!.disconnected, 2_000, 'the server to see the disconnect');
    expect(await ollama.version()).toBe('0.9.0');
  });

  it('keeps serving quick calls while a stream holds a connection (no pipelining behind it)', async () => {
    resetServer(async (req, res, body) => {
      if (req.url === '/api/version') return json(res, 200, { version: '0.9.0' });
      return endlessTokens(20)(req, res, body);
    });
    const ollama = backend();
    const iterator = ollama.generate({ model: 'm', prompt: 'p' })[Symbol.asyncIterator]();
    await iterator.next();

    expect(await withTimeout(ollama.version(), 2_000, 'version during a stream')).toBe('0.9.0');
    await iterator.return?.();
  });

  // The daemons below really never answer (afterEach drops their connections): one that
  // answers after a few seconds would race the timeout under test on a loaded machine. If
  // the short timeout were not applied, the test would hang until vitest's own timeout.
  it('maps a daemon that never answers to unavailable after headersMs', async () => {
    resetServer(() => undefined);
    const error = await rejection(collect(backend({ timeouts: { headersMs: 150 } }).generate({ model: 'm', prompt: 'p' })));
    expect(error).toMatchObject({ code: 'unavailable' });
    expect((error as Error).message).toMatch(/UND_ERR_HEADERS_TIMEOUT|Headers Timeout/i);
  });

  it('maps a stream that goes silent to unavailable after bodyMs', async () => {
    resetServer((_req, res) => {
      ndjsonHead(res);
      res.write(lines({ response: 'a', done: false }));
    });
    const got: GenerateChunk[] = [];
    const error = await rejection(
      (async () => {
        for await (const chunk of backend({ timeouts: { bodyMs: 150 } }).generate({ model: 'm', prompt: 'p' })) got.push(chunk);
      })(),
    );
    expect(got).toEqual([{ type: 'token', text: 'a' }]);
    expect(error).toMatchObject({ code: 'unavailable' });
    await withTimeout(seen[0]!.disconnected, 2_000, 'the server to see the disconnect');
  });
});

describe('OllamaBackend metadata', () => {
  it('reads the version and reuses one keep-alive connection for sequential calls', async () => {
    resetServer((_req, res) => json(res, 200, { version: '0.12.3' }));
    const ollama = backend();
    for (let i = 0; i < 8; i++) expect(await ollama.version()).toBe('0.12.3');
    // undici's Pool may open a second socket when the next request is dispatched in the same
    // tick the previous body ended (the first client still counts as busy); what matters is
    // that sockets are reused rather than opened per request.
    expect(connections).toBeLessThanOrEqual(2);
    expect(seen).toHaveLength(8);
    expect(seen.every((r) => r.method === 'GET' && r.path === '/api/version')).toBe(true);
  });

  it('keeps a path prefix of the base URL', async () => {
    resetServer((_req, res) => json(res, 200, { version: '1' }));
    await backend({ url: `${baseUrl}/ollama/` }).version();
    expect(seen[0]?.path).toBe('/ollama/api/version');
  });

  it('maps /api/tags to BackendModel[]', async () => {
    const details = { format: 'gguf', family: 'llama', parameter_size: '8.0B', quantization_level: 'Q4_K_M' };
    resetServer((_req, res) =>
      json(res, 200, {
        models: [
          { name: 'llama3.1:8b', model: 'llama3.1:8b', modified_at: '2025-01-01T00:00:00Z', size: 4_920_753_328, digest: 'abc', details },
          { name: 'tiny:latest', model: 'tiny:latest', digest: 'def' },
        ],
      }),
    );

    expect(await backend().listModels()).toEqual([
      { name: 'llama3.1:8b', digest: 'abc', size_bytes: 4_920_753_328, details },
      { name: 'tiny:latest', digest: 'def', size_bytes: 0 },
    ]);
    expect(seen[0]?.path).toBe('/api/tags');
  });

  it('maps /api/ps to BackendLoadedModel[], keeping the far-future "forever" expiry', async () => {
    resetServer((_req, res) =>
      json(res, 200, {
        models: [
          {
            name: 'llama3.1:8b',
            model: 'llama3.1:8b',
            size: 6_200_000_000,
            size_vram: 5_000_000_000,
            digest: 'abc',
            details: { family: 'llama' },
            expires_at: '2025-06-04T14:38:31.83753-07:00',
            context_length: 8192,
          },
          { name: 'pinned:latest', model: 'pinned:latest', size: 100, size_vram: 100, digest: 'd', expires_at: '2318-12-08T10:22:52.123456789Z' },
        ],
      }),
    );

    const loaded = await backend().listLoaded();

    expect(loaded).toEqual([
      {
        name: 'llama3.1:8b',
        digest: 'abc',
        size_bytes: 6_200_000_000,
        vram_bytes: 5_000_000_000,
        details: { family: 'llama' },
        expires_at: Date.parse('2025-06-04T21:38:31.837Z'),
        context_length: 8192,
      },
      {
        name: 'pinned:latest',
        digest: 'd',
        size_bytes: 100,
        vram_bytes: 100,
        expires_at: Date.parse('2318-12-08T10:22:52.123Z'),
      },
    ]);
    expect(seen[0]?.path).toBe('/api/ps');
  });

  it('maps an empty /api/ps', async () => {
    resetServer((_req, res) => json(res, 200, { models: [] }));
    expect(await backend().listLoaded()).toEqual([]);
  });

  it('maps /api/show model_info to parameter_count, architecture and context_length', async () => {
    const answer = {
      details: { family: 'llama', parameter_size: '8.0B' },
      model_info: {
        'general.architecture': 'llama',
        'general.parameter_count': 8_030_261_248,
        'llama.attention.head_count_kv': 8,
        'llama.block_count': 32,
        'llama.context_length': 131_072,
      },
    };
    resetServer((_req, res) => json(res, 200, answer));

    expect(await backend().show('llama3.1:8b')).toEqual({
      raw: answer,
      architecture: 'llama',
      parameter_count: 8_030_261_248,
      context_length: 131_072,
    });
    expect(seen[0]).toMatchObject({ method: 'POST', path: '/api/show', body: { model: 'llama3.1:8b' } });
  });

  it('maps a 404 from /api/show to model_not_found', async () => {
    resetServer((_req, res) => json(res, 404, { error: "model 'x' not found" }));
    expect(await rejection(backend().show('x'))).toMatchObject({ code: 'model_not_found', status: 404, message: "model 'x' not found" });
  });

  it('rejects a malformed answer with backend_error', async () => {
    resetServer((_req, res) => json(res, 200, { models: 'nope' }));
    expect(await rejection(backend().listModels())).toMatchObject({ code: 'backend_error' });
  });

  it('aborts a metadata call with AbortError', async () => {
    // Never answers, so only the abort can end the call.
    resetServer(() => undefined);
    const controller = new AbortController();
    const pending = backend().version(controller.signal);
    setTimeout(() => controller.abort(), 20);
    expect(await rejection(pending)).toMatchObject({ name: 'AbortError' });
  });
});

describe('OllamaBackend lifecycle', () => {
  it('loads with an empty generate and the given keep_alive, falling back to the default', async () => {
    resetServer((_req, res) => json(res, 200, { model: 'm', response: '', done: true, done_reason: 'load' }));
    const ollama = backend({ keepAlive: -1 });

    await ollama.load('llama3.1:8b', '10m');
    await ollama.load('llama3.1:8b');

    expect(seen.map((r) => [r.path, r.body])).toEqual([
      ['/api/generate', { model: 'llama3.1:8b', stream: false, keep_alive: '10m' }],
      ['/api/generate', { model: 'llama3.1:8b', stream: false, keep_alive: -1 }],
    ]);
  });

  it('loads an embedding model, which refuses generate, with an /api/embed without input', async () => {
    resetServer((req, res) =>
      req.url === '/api/generate'
        ? json(res, 400, { error: '"nomic-embed-text:latest" does not support generate' })
        : json(res, 200, { model: 'nomic-embed-text:latest', embeddings: [] }),
    );
    await backend({ keepAlive: -1 }).load('nomic-embed-text:latest');
    expect(seen.map((r) => [r.path, r.body])).toEqual([
      ['/api/generate', { model: 'nomic-embed-text:latest', stream: false, keep_alive: -1 }],
      ['/api/embed', { model: 'nomic-embed-text:latest', input: [], keep_alive: -1 }],
    ]);
  });

  it('unloads with keep_alive 0', async () => {
    resetServer((_req, res) => json(res, 200, { model: 'm', response: '', done: true, done_reason: 'unload' }));
    await backend().unload('llama3.1:8b');
    expect(seen[0]).toMatchObject({ path: '/api/generate', body: { model: 'llama3.1:8b', stream: false, keep_alive: 0 } });
  });

  it('maps a failed load to a BackendError with the body message', async () => {
    resetServer((_req, res) => json(res, 500, { error: 'model requires more system memory (12.0 GiB) than is available (8.0 GiB)' }));
    expect(await rejection(backend().load('big'))).toMatchObject({
      code: 'backend_error',
      status: 500,
      message: 'model requires more system memory (12.0 GiB) than is available (8.0 GiB)',
    });
  });

  it('tells a refusal for lack of memory from other failures', async () => {
    resetServer((_req, res) => json(res, 500, { error: 'model requires more system memory (12.0 GiB) than is available (8.0 GiB)' }));
    expect(((await rejection(backend().load('big'))) as BackendError).outOfMemory).toBe(true);
    resetServer((_req, res) => json(res, 500, { error: 'llama runner process has terminated: exit status 2' }));
    expect(((await rejection(backend().load('big'))) as BackendError).outOfMemory).toBe(false);
  });

  it('close() is idempotent and leaves an injected dispatcher open', async () => {
    const { Agent } = await import('undici');
    const shared = new Agent();
    try {
      resetServer((_req, res) => json(res, 200, { version: 'v' }));
      const ollama = new OllamaBackend({ url: baseUrl, dispatcher: shared });
      await ollama.close();
      await ollama.close();
      expect(await ollama.version()).toBe('v');

      const owned = new OllamaBackend({ url: baseUrl });
      await owned.version();
      await Promise.all([owned.close(), owned.close()]);
      expect(await rejection(owned.version())).toMatchObject({ code: 'unavailable' });
    } finally {
      await shared.close();
    }
  });
});

describe('OllamaBackend tools', () => {
  const TOOLS = [
    { type: 'function' as const, function: { name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
  ];

  it('sends tools, tool_choice and parallel_tool_calls, and history tool_calls/tool_name; yields a line’s tool calls', async () => {
    resetServer(async (_req, res) => {
      ndjsonHead(res);
      res.write(
        lines(
          {
            message: {
              role: 'assistant',
              content: '',
              tool_calls: [{ function: { index: 0, name: 'get_weather', arguments: { city: 'Paris' } } }, { function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }],
            },
            done: false,
          },
          { message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', eval_count: 7 },
        ),
      );
      res.end();
    });
    const chunks = await collect(
      backend().generate({
        model: 'qwen3:8b',
        messages: [
          { role: 'user', content: 'weather?' },
          { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Rome' } } }] },
          { role: 'tool', content: 'sunny', tool_name: 'get_weather' },
        ],
        tools: TOOLS,
        tool_choice: 'required',
        parallel_tool_calls: true,
      }),
    );
    expect(chunks[0]).toEqual({
      type: 'tool_calls',
      calls: [
        { name: 'get_weather', arguments: { city: 'Paris' } },
        { name: 'get_weather', arguments: { city: 'Oslo' } },
      ],
    });
    expect(chunks.at(-1)).toMatchObject({ type: 'done', completion_tokens: 7 });
    expect(seen[0]?.body).toMatchObject({
      tools: TOOLS,
      tool_choice: 'required',
      parallel_tool_calls: true,
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Rome' } } }] },
        { role: 'tool', content: 'sunny', tool_name: 'get_weather' },
      ],
    });
  });

  it('yields tool calls carried by the done line before done', async () => {
    resetServer((_req, res) => {
      ndjsonHead(res);
      res.end(lines({ message: { role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: {} } }] }, done: true, done_reason: 'stop' }));
    });
    const chunks = await collect(backend().generate({ model: 'm', messages: [{ role: 'user', content: 'x' }], tools: TOOLS }));
    expect(chunks.map((c) => c.type)).toEqual(['tool_calls', 'done']);
  });

  it('sends no tool fields without tools', async () => {
    resetServer((_req, res) => {
      ndjsonHead(res);
      res.end(lines(DONE_LINE));
    });
    await collect(backend().generate({ model: 'm', messages: [{ role: 'user', content: 'x' }], tools: [], tool_choice: 'auto' }));
    expect(seen[0]?.body).not.toHaveProperty('tools');
    expect(seen[0]?.body).not.toHaveProperty('tool_choice');
  });

  it.each([
    ['a string that is not JSON', 'city=Paris'],
    ['an array', [1, 2]],
    ['a JSON string that is not an object', '[1]'],
  ])('rejects a tool call whose arguments are %s', async (_what, args) => {
    resetServer((_req, res) => {
      ndjsonHead(res);
      res.end(lines({ message: { role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: args } }] }, done: false }, DONE_LINE));
    });
    const error = await rejection(collect(backend().generate({ model: 'm', messages: [{ role: 'user', content: 'x' }], tools: TOOLS })));
    expect(error).toBeInstanceOf(BackendError);
    expect(error).toMatchObject({ code: 'backend_error' });
  });

  it('keeps a 400 "does not support tools" as bad_request with its message', async () => {
    resetServer((_req, res) => json(res, 400, { error: 'registry.ollama.ai/library/gemma:2b does not support tools' }));
    const error = await rejection(collect(backend().generate({ model: 'gemma:2b', messages: [{ role: 'user', content: 'x' }], tools: TOOLS })));
    expect(error).toMatchObject({ status: 400, code: 'bad_request', message: 'registry.ollama.ai/library/gemma:2b does not support tools' });
  });
});

describe('OllamaBackend.embed', () => {
  it('posts /api/embed and converts the answer', async () => {
    resetServer((_req, res) =>
      json(res, 200, {
        model: 'nomic-embed-text',
        embeddings: [
          [0.1, 0.2],
          [0.3, 0.4],
        ],
        total_duration: 14_000_000,
        load_duration: 1_000_000,
        prompt_eval_count: 8,
      }),
    );
    const answer = await backend({ keepAlive: -1 }).embed({ model: 'nomic-embed-text:latest', input: ['a', 'b'], truncate: false, dimensions: 2, options: { num_ctx: 512 } });
    expect(answer).toEqual({
      embeddings: [
        [0.1, 0.2],
        [0.3, 0.4],
      ],
      prompt_tokens: 8,
      total_ms: 14,
      load_ms: 1,
    });
    expect(seen[0]?.path).toBe('/api/embed');
    expect(seen[0]?.body).toEqual({ model: 'nomic-embed-text:latest', input: ['a', 'b'], truncate: false, dimensions: 2, options: { num_ctx: 512 }, keep_alive: -1 });
  });

  it('defaults omitted counts to 0', async () => {
    resetServer((_req, res) => json(res, 200, { embeddings: [[1]] }));
    expect(await backend().embed({ model: 'm', input: ['a'] })).toEqual({ embeddings: [[1]], prompt_tokens: 0, total_ms: 0, load_ms: 0 });
  });

  it('rejects a vector count that differs from the input count', async () => {
    resetServer((_req, res) => json(res, 200, { embeddings: [[1]] }));
    const error = await rejection(backend().embed({ model: 'm', input: ['a', 'b'] }));
    expect(error).toBeInstanceOf(BackendError);
    expect(error).toMatchObject({ code: 'backend_error' });
    expect((error as Error).message).toContain('1 vectors for 2 inputs');
  });

  it('rejects a malformed answer', async () => {
    resetServer((_req, res) => json(res, 200, { embeddings: 'no' }));
    expect(await rejection(backend().embed({ model: 'm', input: ['a'] }))).toMatchObject({ code: 'backend_error' });
  });

  it.each([
    [404, { error: 'model "x" not found, try pulling it first' }, 'model_not_found'],
    [400, { error: '"llama3.1:8b" does not support embeddings' }, 'bad_request'],
    [500, { error: 'boom' }, 'backend_error'],
    [503, { error: 'server busy' }, 'busy'],
  ] as const)('maps HTTP %i to %s', async (status, body, code) => {
    resetServer((_req, res) => json(res, status, body));
    const error = await rejection(backend().embed({ model: 'x', input: ['a'] }));
    expect(error).toMatchObject({ status, code, message: body.error });
  });

  it('maps a daemon that never answers to unavailable after headersMs', async () => {
    resetServer(() => undefined);
    const error = await rejection(backend({ timeouts: { headersMs: 150 } }).embed({ model: 'm', input: ['a'] }));
    expect(error).toMatchObject({ code: 'unavailable' });
  });

  it('closes the request when aborted, with AbortError', async () => {
    resetServer(() => undefined);
    const controller = new AbortController();
    const pending = rejection(backend().embed({ model: 'm', input: ['a'] }, controller.signal));
    await sleep(30);
    controller.abort();
    const error = await pending;
    expect((error as Error).name).toBe('AbortError');
    await withTimeout(seen[0]!.disconnected, 2_000, 'the server to see the disconnect');
  });
});
