import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { CatalogModelStatus } from '@switchyard/sdk';
import { USAGE, main, modelsArgs } from './cli.js';
import { firstProblem, line, modelsTable, pullText, rolloutLine } from './commands/models.js';
import { EXIT } from './exit-codes.js';
import type { CliIo } from './io.js';

const DIGEST_A = 'a'.repeat(64);
const DIGEST_B = 'b'.repeat(64);

function status(overrides: Partial<CatalogModelStatus> = {}): CatalogModelStatus {
  return {
    name: 'qwen2.5:0.5b',
    entry: { name: 'qwen2.5:0.5b', created_at: 1, updated_at: 1 },
    state: 'ready',
    wanted: 2,
    holding: 2,
    digests: { [DIGEST_A]: ['agent-0', 'agent-1'] },
    drift: false,
    progress: { total_bytes: 0, completed_bytes: 0 },
    nodes: [
      { agent: 'agent-0', state: 'holds', digest: DIGEST_A },
      { agent: 'agent-1', state: 'holds', digest: DIGEST_A },
    ],
    problems: [],
    ...overrides,
  };
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** An API that answers each `METHOD path` from `answers` (else 404), and records what it was sent. */
async function fakeApi(answers: Record<string, { status: number; body: unknown }>) {
  const requests: Array<{ method: string; url: string; auth: string | undefined; body: unknown }> = [];
  const server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      requests.push({ method: request.method!, url: request.url!, auth: request.headers.authorization, body: body === '' ? undefined : JSON.parse(body) });
      const answer = answers[`${request.method} ${request.url}`] ?? { status: 404, body: { error: { code: 'not_found', message: `${request.url} is not faked` } } };
      response.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

async function runCli(argv: string[]) {
  const output = { stdout: '', stderr: '' };
  const io: CliIo = {
    stdout: { write: (text: string) => (output.stdout += text) },
    stderr: { write: (text: string) => (output.stderr += text) },
    readStdin: async () => '',
    readFile: async (path) => {
      throw new Error(`ENOENT: ${path}`);
    },
    stdinIsTTY: true,
    env: { SWITCHYARD_API_KEY: 'admin-key' },
    onInterrupt: () => () => undefined,
  };
  const code = await main(argv, io);
  return { code, ...output };
}

describe('switchyard models: the command line', () => {
  it('turns the flags of set into the entry it PUTs', () => {
    const { args } = modelsArgs([
      'models',
      'set',
      'llama3.1:8b',
      '--digest',
      `sha256:${DIGEST_A}`,
      '--copies',
      '1:3',
      '--on-agent',
      'gpu-1',
      '--on-agent',
      'gpu-2',
      '--label',
      'gpu=a100',
      '--label',
      'zone=b=c',
      '--pinned',
      '--keep-on-disk',
      '--json',
    ]);
    expect(args).toEqual({
      action: 'set',
      json: true,
      name: 'llama3.1:8b',
      entry: {
        digest: `sha256:${DIGEST_A}`,
        copies: { min: 1, max: 3 },
        on: { agents: ['gpu-1', 'gpu-2'], labels: { gpu: 'a100', zone: 'b=c' } },
        pinned: true,
        keep_on_disk: true,
      },
    });
    // No flags: the empty entry, every default (and the entry replaced whole).
    expect(modelsArgs(['models', 'set', 'm']).args).toEqual({ action: 'set', json: false, name: 'm', entry: {} });
    expect(modelsArgs(['models', 'set', 'm', '--copies', '2']).args).toMatchObject({ entry: { copies: { min: 2 } } });
    expect(modelsArgs(['models', 'show', 'hf.co/org/repo:Q4_K_M']).args).toEqual({ action: 'show', json: false, name: 'hf.co/org/repo:Q4_K_M' });
    expect(modelsArgs(['models', 'list', '--json']).args).toEqual({ action: 'list', json: true });
    expect(modelsArgs(['models', 'set', 'm', '--digest', 'abc', '--canary', '0.1', '--required-share', '0.5']).args).toMatchObject({
      entry: { digest: 'abc', canary: { share: 0.1 }, required_share: 0.5 },
    });
    expect(modelsArgs(['models', 'rollout', 'm']).args).toEqual({ action: 'rollout', json: false, name: 'm' });
    expect(modelsArgs(['models', 'rollout', 'm', '--promote']).args).toEqual({ action: 'rollout', json: false, name: 'm', step: 'promote' });
    expect(modelsArgs(['models', 'rollout', 'm', '--abort', '--json']).args).toEqual({ action: 'rollout', json: true, name: 'm', step: 'abort' });
  });

  it('refuses a command line it cannot send, with exit 2, before any request', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['models'], /models needs an action: list, show, set, rm, rollout/],
      [['models', 'rollout', 'm', '--promote', '--abort'], /--promote or --abort, not both/],
      [['models', 'rollout'], /models rollout needs a model name/],
      [['models', 'set', 'm', '--canary', '1'], /--canary takes a share between 0 and 1/],
      [['models', 'set', 'm', '--canary', 'x'], /--canary takes a share/],
      [['models', 'set', 'm', '--required-share', '0'], /--required-share takes a share above 0 and at most 1/],
      [['models', 'rollout', 'm', '--canary', '0.1'], /Unknown option '--canary'/],
      [['models', 'frob'], /unknown models action "frob"/],
      [['models', 'show'], /models show needs a model name/],
      [['models', 'rm', 'a', 'b'], /models rm takes one model/],
      [['models', 'list', 'extra'], /models list takes no arguments/],
      [['models', 'set', 'm', '--copies', 'two'], /--copies takes <min> or <min>:<max>, e.g. 2 or 1:3, got "two"/],
      [['models', 'set', 'm', '--copies', '2:'], /--copies takes <min> or <min>:<max>/],
      [['models', 'set', 'm', '--label', 'gpu'], /--label takes key=value, e.g. gpu=a100, got "gpu"/],
      [['models', 'set', 'm', '--label', '=a100'], /--label takes key=value/],
      [['models', 'set', 'm', '--label', 'gpu=a100', '--label', 'gpu=h100'], /--label gpu is given more than once/],
      [['models', 'set', 'm', '--digest'], /Option '--digest' argument/],
      [['models', 'show', 'm', '--pinned'], /Unknown option '--pinned'/],
      [['models', 'rm', 'm', '--copies', '1'], /Unknown option '--copies'/],
    ];
    const api = await fakeApi({});
    for (const [argv, message] of cases) {
      const result = await runCli([...argv, '--url', api.url]);
      expect(result.code, argv.join(' ')).toBe(EXIT.usage);
      expect(result.stderr, argv.join(' ')).toMatch(message);
    }
    expect(api.requests).toEqual([]);
  });

  it('sends the name URL-encoded with the admin key, and reports the API’s 400 (exit 2) and 404 (exit 3) as it said them', async () => {
    const name = 'hf.co/org/repo:Q4_K_M';
    const path = `/admin/models/${encodeURIComponent(name)}`;
    const api = await fakeApi({
      [`PUT ${path}`]: { status: 201, body: status({ name, state: 'pulling', holding: 0, wanted: 1, digests: {}, progress: { total_bytes: 400, completed_bytes: 100 } }) },
      [`PUT /admin/models/bad`]: {
        status: 400,
        body: { error: { code: 'invalid_request', message: 'invalid request body: digest: digest must be a sha256: 64 hex digits, with or without "sha256:"' } },
      },
      [`DELETE /admin/models/nope%3A1b`]: {
        status: 404,
        body: { error: { code: 'catalog_entry_not_found', message: 'the fleet catalog has no entry for "nope:1b" (GET /admin/models lists them)' } },
      },
    });
    const set = await runCli(['models', 'set', name, '--copies', '1', '--url', api.url]);
    expect(set.code, set.stderr).toBe(EXIT.ok);
    expect(api.requests[0]).toEqual({ method: 'PUT', url: path, auth: 'Bearer admin-key', body: { copies: { min: 1 } } });
    expect(set.stdout).toMatch(/^hf\.co\/org\/repo:Q4_K_M: pulling, 0\/1 copies/);

    const bad = await runCli(['models', 'set', 'bad', '--digest', 'xyz', '--url', api.url]);
    expect(bad.code).toBe(EXIT.usage);
    expect(bad.stderr).toBe('switchyard: invalid_request: invalid request body: digest: digest must be a sha256: 64 hex digits, with or without "sha256:"\n');
    expect(api.requests[1]).toMatchObject({ body: { digest: 'xyz' } });

    const missing = await runCli(['models', 'rm', 'nope:1b', '--url', api.url]);
    expect(missing.code).toBe(EXIT.refused);
    expect(missing.stderr).toMatch(/catalog_entry_not_found: the fleet catalog has no entry for "nope:1b"/);
  });

  it('is in the help, rm saying the model stays on disk', async () => {
    expect((await runCli(['--help'])).stdout).toBe(USAGE);
    for (const action of ['list', 'show <model>', 'set <model>', 'rm <model>']) expect(USAGE).toContain(`switchyard models ${action}`);
    expect(USAGE).toMatch(/models rm <model> {9}drop its entry: the model is unmanaged and stays on the disks/);
    for (const flag of ['--digest <sha256>', '--copies <min>[:<max>]', '--on-agent <id>', '--label <key=value>', '--pinned', '--keep-on-disk']) expect(USAGE).toContain(flag);
  });
});

describe('switchyard models: output', () => {
  it('lists each model: state, holding/wanted, short digests with drift marked, pull percent, the first problem cut short', () => {
    const long = `agent-3: pull failed (disk_full): ${'x'.repeat(80)}`;
    const text = modelsTable([
      status(),
      status({
        name: 'llama3.1:8b',
        state: 'pulling',
        holding: 1,
        wanted: 2,
        digests: { [DIGEST_A]: ['agent-0'], [DIGEST_B]: ['agent-1'] },
        drift: true,
        progress: { total_bytes: 1000, completed_bytes: 425 },
        problems: [long, 'drift: …'],
      }),
      status({ name: 'all-minilm:latest', entry: null, state: 'unmanaged', wanted: 0, holding: 1 }),
    ]);
    const rows = text.split('\n');
    expect(rows[0]).toMatch(/^MODEL\s+STATE\s+COPIES\s+DIGESTS\s+PROGRESS\s+PROBLEMS$/);
    expect(rows[1]).toMatch(/^qwen2\.5:0\.5b\s+ready\s+2\/2\s+a{12}\s+-\s+-$/);
    expect(rows[2]).toMatch(/^llama3\.1:8b\s+pulling\s+1\/2\s+a{12}, b{12} \(drift\)\s+42% of 1000 B\s+agent-3: pull failed \(disk_full\): x+… \(\+1 more\)$/);
    expect(rows[3]).toMatch(/^all-minilm:latest\s+unmanaged\s+1\s+a{12}\s+-\s+-$/);
    expect(firstProblem([long])).toHaveLength(60);
  });

  it('describes a node’s pull and the status line', () => {
    expect(pullText({ model: 'm', state: 'pulling', total_bytes: 200, completed_bytes: 50, attempts: 1, started_at: 1 })).toBe('pulling 25%');
    expect(pullText({ model: 'm', state: 'failed', cause: 'not_found', error: 'pull model manifest: file does not exist', attempts: 3, started_at: 1 })).toBe(
      'failed (not_found, attempt 3): pull model manifest: file does not exist',
    );
    expect(line(status())).toBe('qwen2.5:0.5b: ready, 2/2 copies');
    expect(line(status({ state: 'short', holding: 0, wanted: 0, problems: ['asks for 3 copies; 2 eligible node(s) can hold it (1 short)'] }))).toBe(
      'qwen2.5:0.5b: short, 0/0 copies; asks for 3 copies; 2 eligible node(s) can hold it (1 short)',
    );
  });
});

describe('models rollout line', () => {
  it('says the state, the builds, the gate and the canary share', () => {
    const view = {
      model: 'llama3.2:3b',
      state: 'canary' as const,
      from: 'a'.repeat(64),
      to: 'b'.repeat(64),
      wanted: 4,
      required: 4,
      on_to: ['gpu-1'],
      on_from: ['gpu-1', 'gpu-2', 'gpu-3', 'gpu-4'],
      to_share: 0.1,
      started_at: 1,
      nodes: [],
      progress: { total_bytes: 0, completed_bytes: 0 },
      builds: {},
    };
    expect(rolloutLine(view)).toBe(
      'llama3.2:3b: rollout canary, aaaaaaaaaaaa → bbbbbbbbbbbb; 1 node(s) on the new build (4 needed of 4), 10% of unpinned jobs to the new build',
    );
    expect(rolloutLine({ ...view, state: 'pulling', to_share: 0, progress: { total_bytes: 200, completed_bytes: 50 } })).toContain(
      'rollout pulling, aaaaaaaaaaaa → bbbbbbbbbbbb; 1 node(s) on the new build (4 needed of 4), 25% pulled',
    );
  });
});
