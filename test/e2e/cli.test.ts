import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '@switchyard/testing';
import { jobStatus, submitJob } from '../support/client.js';
import { startStack, type Stack } from '../support/stack.js';
import { REPO_ROOT, buildWorkspacePackages } from '../support/workspace-build.js';

const MODEL = 'qwen2.5:0.5b';
const CLI = join(REPO_ROOT, 'apps/cli/dist/main.js');

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface CliProcess extends Promise<CliRun> {
  /** Resolves once stdout (or stderr) matches. */
  waitFor(stream: 'stdout' | 'stderr', pattern: RegExp): Promise<void>;
  kill(signal: NodeJS.Signals): void;
  /** What the CLI printed so far. */
  output(): { stdout: string; stderr: string };
}

/** Runs the built CLI as a user would (`node apps/cli/dist/main.js …`), stdin a pipe. */
function cli(args: string[], options: { env?: Record<string, string>; stdin?: string; timeoutMs?: number } = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  const waiters: Array<{ stream: 'stdout' | 'stderr'; pattern: RegExp; resolve: () => void }> = [];
  const check = () => {
    for (const waiter of [...waiters]) {
      if (waiter.pattern.test(output[waiter.stream])) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output.stdout += chunk;
    check();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    output.stderr += chunk;
    check();
  });
  child.stdin.end(options.stdin ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  const done = new Promise<CliRun>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, ...output });
    });
  });
  return Object.assign(done, {
    waitFor: (stream: 'stdout' | 'stderr', pattern: RegExp) =>
      new Promise<void>((resolve, reject) => {
        waiters.push({ stream, pattern, resolve });
        check();
        void done.then(() => reject(new Error(`the CLI exited before ${stream} matched ${pattern}:\n${output[stream]}\n${output.stderr}`)));
      }),
    kill: (signal: NodeJS.Signals) => child.kill(signal),
    output: () => ({ ...output }),
  });
}

describe('switchyard CLI against a running stack', () => {
  let stack: Stack;
  let env: Record<string, string>;
  beforeAll(async () => {
    await buildWorkspacePackages('@switchyard/cli...');
    // Real-time tokens, loads at 1 GB/s (llama3.2:3b takes ~2 s), answers of 100+ tokens,
    // and one slot so a second job waits in the queue.
    stack = await startStack({
      nodes: [{ sim: { time_scale: 1, load_overhead_ms: 0, load_bytes_per_s: 1e9, response_tokens_min: 100, response_tokens_max: 200 }, agent: { slots: 1 } }],
    });
    env = { SWITCHYARD_URL: stack.apiUrl };
  }, 120_000);
  afterAll(() => stack?.close());

  async function direct(prompt: string, options: Record<string, unknown>): Promise<string> {
    const body = (await fetch(`${stack.sims[0]!.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: MODEL, prompt, stream: false, options }) }).then((r) =>
      r.json(),
    )) as { response: string };
    return body.response;
  }

  it('run streams the answer to stdout, with queue status on stderr, and exits 0', async () => {
    const result = await cli(['run', MODEL, 'Why', 'is the sky blue?', '--seed', '3', '--max-tokens', '20', '--verbose'], { env });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`${await direct('Why is the sky blue?', { seed: 3, num_predict: 20 })}\n`);
    expect(result.stderr).toMatch(/job [A-Za-z0-9_-]+: queued/);
    expect(result.stderr).toMatch(/eval count:\s+20 token\(s\)/);
  });

  it('run reads the prompt from stdin when none is given', async () => {
    const result = await cli(['run', MODEL, '--seed', '3', '--max-tokens', '20'], { env, stdin: 'Why is the sky blue?\n' });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`${await direct('Why is the sky blue?', { seed: 3, num_predict: 20 })}\n`);
  });

  it('run --json prints every event as one JSON line', async () => {
    const result = await cli(['run', MODEL, 'hi', '--max-tokens', '5', '--json', '--url', stack.apiUrl]);
    expect(result.code, result.stderr).toBe(0);
    const events = result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(events.map((event) => event.seq)).toEqual(events.map((_, index) => index + 1));
    expect(events[0].type).toBe('queued');
    expect(events.at(-1)).toMatchObject({ type: 'done', usage: { completion_tokens: 5 } });
  });

  it('shows queue position and model load while the job waits', async () => {
    // The blocker holds the only slot until the CLI has shown the job queued behind it (a
    // blocker that is merely long can end first while the CLI process starts).
    const hold = stack.hold({ prompt: 'occupy the only slot', afterTokens: 1 });
    const blocker = await submitJob(stack, { model: MODEL, prompt: 'occupy the only slot', options: { num_predict: 1_000 } });
    await expect.poll(() => jobStatus(stack, blocker.id), { timeout: 10_000 }).toBe('running');
    // A cold 2 GB model behind the running job: first queued, then loading, then tokens.
    const running = cli(['run', 'llama3.2:3b', 'hello', '--max-tokens', '3'], { env, timeoutMs: 60_000 });
    await running.waitFor('stderr', /queued/);
    expect(await jobStatus(stack, blocker.id)).toBe('running');
    hold.release();
    const result = await running;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/queued/);
    // Either the agent took the job and loads the model, or it warms the model first.
    expect(result.stderr).toMatch(/loading llama3\.2:3b on agent-0|llama3\.2:3b is loading on agent-0|waiting for llama3\.2:3b to load/);
    expect(result.stdout.trim().length).toBeGreaterThan(0);
  });

  it('Ctrl-C cancels the job (DELETE) and exits 130', async () => {
    // Held after a few words: the answer (at most 200 tokens, under a second) cannot end
    // before the SIGINT, however slowly the CLI process starts.
    stack.hold({ prompt: 'a very long story', afterTokens: 5 });
    const running = cli(['run', MODEL, 'a very long story', '--max-tokens', '5000'], { env });
    await running.waitFor('stdout', /\S+ \S+ \S+/);
    const jobId = /job ([A-Za-z0-9_-]+):/.exec(running.output().stderr)?.[1];
    expect(jobId).toBeTruthy();
    running.kill('SIGINT');
    const result = await running;
    expect(result.code, result.stderr).toBe(130);
    expect(result.stderr).toContain(`cancelled job ${jobId}`);
    expect(await jobStatus(stack, jobId!)).toBe('cancelled');
  });

  it('exits 1 when the job fails (cancelled from elsewhere)', async () => {
    stack.hold({ prompt: 'another long story', afterTokens: 1 });
    const running = cli(['run', MODEL, 'another long story', '--max-tokens', '5000'], { env });
    await running.waitFor('stdout', /\S/);
    const jobId = /job ([A-Za-z0-9_-]+):/.exec(running.output().stderr)?.[1];
    expect((await fetch(`${stack.apiUrl}/v1/jobs/${jobId}`, { method: 'DELETE' })).status).toBeLessThan(300);
    const result = await running;
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/was cancelled: cancelled/);
  });

  it('exits 3 when the API refuses or cannot be reached, 2 on usage errors', async () => {
    const missing = await cli(['run', 'nope:1b', 'hi'], { env });
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/model_not_found/);

    const dead = await cli(['ps', '--url', `http://127.0.0.1:${await freePort()}`]);
    expect(dead.code).toBe(3);
    expect(dead.stderr).toMatch(/connection_failed/);

    for (const args of [[], ['run'], ['bogus'], ['ps', '--nope'], ['run', MODEL, 'hi', '--seed', 'abc'], ['queues', 'extra']]) {
      const result = await cli(args, { env });
      expect(result.code, `switchyard ${args.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr.length).toBeGreaterThan(0);
    }
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/switchyard run <model>/);
  });

  it('ps shows agents, GPU VRAM bars, loaded models and in-flight counts; --json for scripts', async () => {
    await cli(['run', MODEL, 'warm', '--max-tokens', '2'], { env });
    await expect.poll(async () => (await cli(['ps'], { env })).stdout, { timeout: 10_000 }).toMatch(/qwen2\.5:0\.5b/);
    const text = await cli(['ps'], { env });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/AGENT\s+STATE\s+IN-FLIGHT\s+BACKEND/);
    expect(text.stdout).toMatch(/agent-0\s+ready\s+\d+\/1/);
    expect(text.stdout).toMatch(/GPU 0 .*\[[█░]{20}\]\s+[\d.]+ (GiB|MiB|B) \/ [\d.]+ GiB/);
    expect(text.stdout).toMatch(/LOADED\s+VRAM\s+IN-FLIGHT\s+LAST USED/);

    const json = await cli(['ps', '--json'], { env });
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout);
    expect(parsed.agents[0]).toMatchObject({ id: 'agent-0', slots: 1 });
    expect(parsed.agents[0].models_loaded.map((model: { name: string }) => model.name)).toContain(MODEL);
  });

  it('queues shows depth, oldest wait and drain rate per model; --json for scripts', async () => {
    const text = await cli(['queues'], { env });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/MODEL\s+WAITING\s+ACTIVE\s+OLDEST WAIT\s+DRAIN RATE\s+LOADED ON/);
    expect(text.stdout).toMatch(/qwen2\.5:0\.5b\s+\d+\s+\d+\s+(\S+)\s+(n\/a|[\d.]+\/s)/);

    const json = await cli(['queues', '--json'], { env });
    const rows = JSON.parse(json.stdout).queues as Array<Record<string, unknown>>;
    const qwen = rows.find((row) => row.model === MODEL)!;
    expect(qwen).toMatchObject({ servable: true, waiting: expect.any(Number), active: expect.any(Number) });
    expect(qwen).toHaveProperty('oldest_wait_s');
    expect(qwen).toHaveProperty('drain_rate_per_s');
  });
});
