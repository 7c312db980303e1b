import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, SwitchyardClient, SwitchyardError } from '@switchyard/sdk';
import { getJob } from '../support/client.js';
import { startStack, type Stack } from '../support/stack.js';
import { REPO_ROOT, buildWorkspacePackages } from '../support/workspace-build.js';

const CHAT_MODEL = 'qwen2.5:0.5b';
const EMBED_MODEL = 'nomic-embed-text:latest';
const CLI = join(REPO_ROOT, 'apps/cli/dist/main.js');
const WEATHER = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'The current weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

function cli(args: string[], env: Record<string, string>, stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk));
  child.stdin.end(stdin);
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, ...output })));
}

/** The SDK and the CLI on the new job kinds, against the simulator's tool and embedding models. */
describe('SDK and CLI: tool calls and embed jobs end to end', () => {
  let stack: Stack;
  let sdk: SwitchyardClient;
  /** What the simulator itself answers for these inputs (its vectors are deterministic). */
  const direct = async (input: string[]) => {
    const response = await fetch(`${stack.sims[0]!.url}/api/embed`, { method: 'POST', body: JSON.stringify({ model: EMBED_MODEL, input }) });
    return ((await response.json()) as { embeddings: number[][] }).embeddings;
  };

  beforeAll(async () => {
    await buildWorkspacePackages('@switchyard/cli...');
    stack = await startStack();
    sdk = new SwitchyardClient({ baseUrl: stack.apiUrl });
    for (let tries = 0; ; tries++) {
      const ids = (await sdk.models()).map((model) => model.id);
      if (ids.includes(CHAT_MODEL) && ids.includes(EMBED_MODEL)) break;
      if (tries > 150) throw new Error('the models never became servable');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }, 120_000);
  afterAll(() => stack?.close());

  it('SDK run() with tools resolves with the calls the job record shows', async () => {
    const outcome = await sdk.run({ model: CHAT_MODEL, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: [WEATHER], tool_choice: 'required' });
    expect(outcome.done.finish_reason).toBe('tool_calls');
    expect(outcome.tool_calls).toHaveLength(1);
    expect(outcome.tool_calls![0]).toMatchObject({ index: 0, id: `call_${outcome.id}_0`, name: 'get_weather' });
    expect(typeof outcome.tool_calls![0]!.arguments['city']).toBe('string');
    await expect.poll(async () => (await sdk.get(outcome.id)).status).toBe('completed');
    const record = await sdk.get(outcome.id);
    expect(record.result?.tool_calls).toEqual(outcome.tool_calls!.map(({ id, name, arguments: args }) => ({ id, name, arguments: args })));
  });

  it('SDK embed() resolves with the vectors the model gives, in input order; a chat model is model_unsupported', async () => {
    const input = ['first text', 'second text', 'third text'];
    expect(await sdk.embed(EMBED_MODEL, input)).toEqual(await direct(input));
    expect(await sdk.embed(EMBED_MODEL, 'one')).toEqual(await direct(['one']));
    const error = (await sdk.embed(CHAT_MODEL, 'x').catch((caught: unknown) => caught)) as SwitchyardError;
    expect(error).toBeInstanceOf(SwitchyardError);
    expect(error.code).toBe(ErrorCode.modelUnsupported);
  });

  it('switchyard run --tools prints the call; --json prints the tool_call event', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-tools-'));
    const tools = join(dir, 'tools.json');
    writeFileSync(tools, JSON.stringify([WEATHER]));
    const env = { SWITCHYARD_URL: stack.apiUrl };
    const text = await cli(['run', CHAT_MODEL, 'Weather in Paris?', '--tools', tools, '--tool-choice', 'get_weather'], env);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^\[tool call\] get_weather \{"city":"[^"]*"\} \(id call_\S+_0\)\n$/);

    const json = await cli(['run', CHAT_MODEL, 'Weather in Paris?', '--tools', tools, '--tool-choice', 'required', '--json'], env);
    expect(json.code, json.stderr).toBe(0);
    const events = json.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string; name?: string; finish_reason?: string });
    expect(events.find((event) => event.type === 'tool_call')).toMatchObject({ index: 0, name: 'get_weather' });
    expect(events.at(-1)).toMatchObject({ type: 'done', finish_reason: 'tool_calls' });
  });

  it('switchyard embed prints one vector per line, --dims a summary, --json the vectors with usage', async () => {
    const env = { SWITCHYARD_URL: stack.apiUrl };
    const expected = await direct(['first text', 'second text']);
    const lines = await cli(['embed', EMBED_MODEL, 'first text', 'second text'], env);
    expect(lines.code, lines.stderr).toBe(0);
    expect(
      lines.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as number[]),
    ).toEqual(expected);

    const stdin = await cli(['embed', EMBED_MODEL, '--dims'], env, 'first text\nsecond text\n');
    expect(stdin.code, stdin.stderr).toBe(0);
    expect(stdin.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(new RegExp(`^0  ${expected[0]!.length} dims  norm \\d+\\.\\d{4}  \\[.*\\]  "first text"$`)),
      expect.stringMatching(/^1 .* "second text"$/),
    ]);

    const json = await cli(['embed', EMBED_MODEL, 'first text', '--json'], env);
    expect(json.code, json.stderr).toBe(0);
    const answer = JSON.parse(json.stdout) as { id: string; embeddings: number[][]; usage: { prompt_tokens: number } };
    expect(answer.embeddings).toEqual([expected[0]]);
    expect(answer.usage.prompt_tokens).toBeGreaterThan(0);
    expect((await getJob(stack, answer.id)).result.embeddings).toEqual([expected[0]]);

    const refused = await cli(['embed', CHAT_MODEL, 'x'], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/model_unsupported/);
  });
});
