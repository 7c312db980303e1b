import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { USAGE, main } from './cli.js';
import { toolCallLine } from './commands/run.js';
import { vectorSummary } from './commands/embed.js';
import { EXIT } from './exit-codes.js';
import type { CliIo } from './io.js';

/** A job as recorded from a test stack (see the fixture's `note`). */
interface JobFixture {
  request: Record<string, unknown>;
  accepted: { body: { id: string; links: { self: string; events: string } } };
  events: { body: string };
  record: { result: { embeddings?: number[][] } };
}

const fixture = <T = JobFixture>(name: string) => JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), 'utf8')) as T;
const TOOL_CALL = fixture('tool-call');
const PARALLEL = fixture('parallel-tool-calls');
const EMBED = fixture('embed');
const EMBED_UNSUPPORTED = fixture<{ status: number; body: unknown }>('embed-unsupported');
const VECTORS = EMBED.record.result.embeddings!;

const WEATHER = { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };
const TIME = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } } } } };

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/**
 * An API that answers as the test stack did when the fixture was recorded: POST /v1/jobs
 * with its 202 (or `submit`), the job's events with the recorded SSE. Records each body.
 */
async function replayApi(job: JobFixture, submit?: { status: number; body: unknown }): Promise<{ url: string; posted: Array<Record<string, unknown>> }> {
  const posted: Array<Record<string, unknown>> = [];
  const server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      const json = (status: number, value: unknown) => response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
      if (request.method === 'POST' && request.url === '/v1/jobs') {
        posted.push(JSON.parse(body) as Record<string, unknown>);
        return submit ? json(submit.status, submit.body) : json(202, job.accepted.body);
      }
      if (request.url === job.accepted.body.links.events) {
        return response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' }).end(job.events.body);
      }
      if (request.url === job.accepted.body.links.self) return json(200, job.record);
      if (request.url === '/v1/models') return json(200, { object: 'list', data: [] });
      return json(404, { error: { code: 'not_found', message: `${request.url} is not in the fixture` } });
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, posted };
}

/** Runs the CLI in-process with captured output, files and stdin of the test's choosing. */
async function runCli(argv: string[], options: { stdin?: string; files?: Record<string, string> } = {}) {
  const output = { stdout: '', stderr: '' };
  const io: CliIo = {
    stdout: { write: (text: string) => (output.stdout += text) },
    stderr: { write: (text: string) => (output.stderr += text) },
    readStdin: async () => options.stdin ?? '',
    readFile: async (path) => {
      const text = options.files?.[path];
      if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
      return text;
    },
    stdinIsTTY: options.stdin === undefined,
    env: {},
    onInterrupt: () => () => undefined,
  };
  const code = await main(argv, io);
  return { code, ...output };
}

describe('switchyard run with tools', () => {
  it('sends the prompt as a chat with the tools, and prints each call on a line of its own', async () => {
    const api = await replayApi(TOOL_CALL);
    const files = { 'tools.json': JSON.stringify([WEATHER]) };
    const result = await runCli(
      ['run', 'qwen2.5:0.5b', 'Weather', 'in', 'Paris?', '--tools', 'tools.json', '--tool-choice', 'get_weather', '--system', 'Be brief', '--url', api.url],
      { files },
    );
    expect(result.code, result.stderr).toBe(EXIT.ok);
    expect(api.posted).toEqual([
      {
        model: 'qwen2.5:0.5b',
        messages: [
          { role: 'system', content: 'Be brief' },
          { role: 'user', content: 'Weather in Paris?' },
        ],
        tools: [WEATHER],
        tool_choice: { type: 'function', function: { name: 'get_weather' } },
      },
    ]);
    const id = TOOL_CALL.accepted.body.id;
    expect(result.stdout).toBe(`[tool call] get_weather {"city":"Santiago"} (id call_${id}_0)\n`);
  });

  it('prints parallel calls in their order, and --verbose names the finish reason', async () => {
    const api = await replayApi(PARALLEL);
    const files = { '/tmp/tools.json': JSON.stringify([WEATHER, TIME]) };
    const result = await runCli(['run', 'qwen2.5:0.5b', 'Weather and time?', '--tools', '/tmp/tools.json', '--tool-choice', 'required', '--verbose', '--url', api.url], {
      files,
    });
    expect(result.code, result.stderr).toBe(EXIT.ok);
    expect(api.posted[0]).toMatchObject({ tool_choice: 'required', tools: [WEATHER, TIME] });
    expect(result.stdout.split('\n')).toEqual([
      expect.stringMatching(/^\[tool call\] get_weather \{"city":"Hanoi"\} \(id call_\S+_0\)$/),
      expect.stringMatching(/^\[tool call\] get_time /),
      '',
    ]);
    expect(result.stderr).toMatch(/finish reason:\s+tool_calls/);
  });

  it('--json prints the tool_call events as they came, one JSON line each', async () => {
    const api = await replayApi(PARALLEL);
    const result = await runCli(['run', 'qwen2.5:0.5b', 'hi', '--tools', 't.json', '--json', '--url', api.url], { files: { 't.json': JSON.stringify([WEATHER, TIME]) } });
    expect(result.code, result.stderr).toBe(EXIT.ok);
    const events = result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string });
    expect(events.map((event) => event.type)).toEqual(['queued', 'started', 'tool_call', 'tool_call', 'done']);
    expect(events[2]).toEqual({ seq: 3, type: 'tool_call', index: 0, id: `call_${PARALLEL.accepted.body.id}_0`, name: 'get_weather', arguments: { city: 'Hanoi' } });
    expect(events[4]).toMatchObject({ type: 'done', finish_reason: 'tool_calls' });
  });

  it('refuses a tools file that cannot be read or is not an array of tools, and a tool choice it cannot send', async () => {
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['--tools', 'missing.json'], {}, /--tools: cannot read missing\.json/],
      [['--tools', 'bad.json'], { 'bad.json': '{not json' }, /--tools: bad\.json is not JSON/],
      [['--tools', 'object.json'], { 'object.json': JSON.stringify(WEATHER) }, /must hold a non-empty JSON array of tools/],
      [['--tools', 'empty.json'], { 'empty.json': '[]' }, /must hold a non-empty JSON array of tools/],
      [['--tool-choice', 'required'], {}, /--tool-choice required needs --tools/],
      [['--tools', 't.json', '--tool-choice', 'get_time'], { 't.json': JSON.stringify([WEATHER]) }, /the name of one of the tools \(get_weather\), got "get_time"/],
    ];
    for (const [flags, files, message] of cases) {
      const result = await runCli(['run', 'm', 'hi', ...flags, '--url', 'http://127.0.0.1:9'], { files });
      expect(result.code, flags.join(' ')).toBe(EXIT.usage);
      expect(result.stderr).toMatch(message);
    }
  });

  it('formats a call with its arguments and id', () => {
    expect(toolCallLine({ id: 'call_1', name: 'f', arguments: { a: [1, 'x'] } })).toBe('[tool call] f {"a":[1,"x"]} (id call_1)');
  });
});

describe('switchyard embed', () => {
  it('submits one embed job for every text and prints each vector as a JSON line, in order', async () => {
    const api = await replayApi(EMBED);
    const result = await runCli([
      'embed',
      'nomic-embed-text:latest',
      'first text',
      'second text',
      '--dimensions',
      '8',
      '--no-truncate',
      '--priority',
      'batch',
      '--url',
      api.url,
    ]);
    expect(result.code, result.stderr).toBe(EXIT.ok);
    expect(api.posted).toEqual([{ kind: 'embed', model: 'nomic-embed-text:latest', input: ['first text', 'second text'], dimensions: 8, truncate: false, priority: 'batch' }]);
    expect(
      result.stdout
        .split('\n')
        .slice(0, -1)
        .map((line) => JSON.parse(line) as number[]),
    ).toEqual(VECTORS);
    // Where the job stands goes to stderr, never among the vectors.
    expect(result.stderr).toMatch(/queued/);
  });

  it('reads one text per non-empty line from stdin', async () => {
    const api = await replayApi(EMBED);
    const result = await runCli(['embed', 'nomic-embed-text:latest', '--url', api.url], { stdin: 'first text\r\n\nsecond text\n' });
    expect(result.code, result.stderr).toBe(EXIT.ok);
    expect(api.posted[0]).toMatchObject({ input: ['first text', 'second text'] });
  });

  it('--dims prints a summary per vector; --json one object with the vectors and usage', async () => {
    const summary = await runCli(['embed', 'nomic-embed-text:latest', 'first text', 'second text', '--dims', '--url', (await replayApi(EMBED)).url]);
    expect(summary.code, summary.stderr).toBe(EXIT.ok);
    const lines = summary.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^0 {2}8 dims {2}norm \d\.\d{4} {2}\[-0\.7536, 0\.2474, 0\.5342, 0\.2725, …\] {2}"first text"$/);
    expect(lines[1]).toMatch(/^1 {2}8 dims .* "second text"$/);

    const json = await runCli(['embed', 'nomic-embed-text:latest', 'first text', 'second text', '--json', '--url', (await replayApi(EMBED)).url]);
    expect(json.code, json.stderr).toBe(EXIT.ok);
    expect(JSON.parse(json.stdout)).toEqual({
      id: EMBED.accepted.body.id,
      model: 'nomic-embed-text:latest',
      embeddings: VECTORS,
      usage: { prompt_tokens: 6, completion_tokens: 0 },
      timings: expect.objectContaining({ total_ms: 92 }),
    });
    expect(json.stderr).toBe('');
  });

  it('summarises a vector: dimensions, norm, the first values and the text', () => {
    expect(vectorSummary(3, [3, 4], 'short')).toBe('3  2 dims  norm 5.0000  [3.0000, 4.0000]  "short"');
    expect(vectorSummary(0, [1, 0, 0, 0, 0], 'x'.repeat(50))).toBe(`0  5 dims  norm 1.0000  [1.0000, 0.0000, 0.0000, 0.0000, …]  "${'x'.repeat(39)}…"`);
  });

  it('a model that cannot embed is a 400 model_unsupported: exit 2 with its message', async () => {
    const api = await replayApi(EMBED, EMBED_UNSUPPORTED);
    const result = await runCli(['embed', 'qwen2.5:0.5b', 'x', '--url', api.url]);
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toMatch(/model_unsupported: model "qwen2\.5:0\.5b" does not support embeddings/);
    expect(result.stdout).toBe('');
  });

  it('refuses a command line it cannot run', async () => {
    const cases: Array<[string[], string | undefined, RegExp]> = [
      [['embed'], undefined, /embed needs a model/],
      [['embed', 'e'], undefined, /embed needs text/],
      [['embed', 'e'], '\n \n', /no text read from stdin/],
      [['embed', 'e', 'x', '--dimensions', '0'], undefined, /--dimensions must be at least 1/],
      [['embed', 'e', 'x', '--dimensions', 'many'], undefined, /--dimensions must be an integer/],
      [['embed', 'e', 'x', '--dims', '--json'], undefined, /--dims and --json/],
      [['embed', 'e', 'x', '--seed', '1'], undefined, /Unknown option '--seed'/],
    ];
    for (const [argv, stdin, message] of cases) {
      const result = await runCli([...argv, '--url', 'http://127.0.0.1:9'], stdin === undefined ? {} : { stdin });
      expect(result.code, argv.join(' ')).toBe(EXIT.usage);
      expect(result.stderr).toMatch(message);
    }
  });

  it('is in the help', async () => {
    const help = await runCli(['--help']);
    expect(help.stdout).toBe(USAGE);
    expect(USAGE).toMatch(/switchyard embed <model> \[text\.\.\.\]/);
    expect(USAGE).toMatch(/--tools <file>/);
    expect(USAGE).toMatch(/--dims/);
  });
});
