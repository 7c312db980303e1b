import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { SwitchyardClient } from '@switchyard/sdk';
import { submitJob } from '../support/client.js';
import { readSse } from '../support/sse.js';
import { startStack, type Stack } from '../support/stack.js';
import { REPO_ROOT, buildWorkspacePackages } from '../support/workspace-build.js';

const MODEL = 'qwen2.5:0.5b';
const CLI = join(REPO_ROOT, 'apps/cli/dist/main.js');

function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, ...output })));
}

/**
 * Digest-pinned queues (`model@<digest>`) are where jobs pinned to one build of a model
 * wait. Agents open one per model they serve, so they exist right after start; they were
 * listed by GET /v1/models as models of their own (`servable: false`, no agents) that 404
 * when used, and shown as such by the CLI and the metrics.
 */
describe('the model list shows usable models only, digest-pinned queues inside their model', () => {
  let stack: Stack;
  let digest: string;
  const openai = () => new OpenAI({ baseURL: `${stack.apiUrl}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 30_000 });

  beforeAll(async () => {
    await buildWorkspacePackages('@switchyard/cli...');
    stack = await startStack();
    const sdk = new SwitchyardClient({ baseUrl: stack.apiUrl });
    for (let tries = 0; !(await sdk.models()).some((model) => model.id === MODEL); tries++) {
      if (tries > 150) throw new Error(`${MODEL} never became servable`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    digest = (await sdk.models()).find((model) => model.id === MODEL)!.digests![0]!;
    // A pinned job: its queue is open in this API process whatever discovery has seen.
    const pinned = await submitJob(stack, { model: MODEL, digest: `sha256:${digest}`, prompt: 'pinned', options: { num_predict: 3 } });
    expect((await readSse(`${stack.apiUrl}${pinned.links.events}`)).events.at(-1)?.type).toBe('done');
  }, 120_000);
  afterAll(() => stack?.close());

  it('openai models.list(): no @ ids, every id retrievable, digests inside the entry', async () => {
    const client = openai();
    const ids: string[] = [];
    for await (const model of client.models.list()) {
      ids.push(model.id);
      expect(model.id).not.toContain('@');
      expect((model as unknown as { servable: boolean }).servable).toBe(true);
      expect((await client.models.retrieve(model.id)).id).toBe(model.id);
    }
    expect(ids).toContain(MODEL);
    expect(new Set(ids).size).toBe(ids.length);
    const entry = (await client.models.list()).data.find((model) => model.id === MODEL) as unknown as { digests: string[]; queue: { pinned: Array<{ digest: string }> } };
    expect(entry.digests).toContain(digest);
    expect(entry.queue.pinned.map((queue) => queue.digest)).toContain(digest);
  });

  it('switchyard queues: one row per model, the pinned queue under it with its digest', async () => {
    const env = { SWITCHYARD_URL: stack.apiUrl };
    const text = await cli(['queues', '--all'], env);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).not.toContain('@');
    expect(text.stdout).not.toContain('not servable');
    const lines = text.stdout.split('\n');
    const modelLine = lines.findIndex((line) => line.startsWith(`${MODEL} `));
    expect(modelLine).toBeGreaterThan(0);
    expect(lines[modelLine + 1]).toMatch(new RegExp(`^\\s+digest ${digest.slice(0, 12)}\\s`));

    const json = await cli(['queues', '--json', '--all'], env);
    const rows = JSON.parse(json.stdout).queues as Array<{ model: string; pinned: Array<{ digest: string }> }>;
    for (const row of rows) expect(row.model).not.toContain('@');
    expect(rows.find((row) => row.model === MODEL)!.pinned.map((queue) => queue.digest)).toContain(digest);
  });

  it('metrics label model with the model, never model@digest', async () => {
    const text = await fetch(`${stack.apiUrl}/metrics`).then((response) => response.text());
    expect(text.split('\n').filter((line) => /model="[^"]*@/.test(line))).toEqual([]);
    expect(text).toContain(`switchyard_queue_depth{model="${MODEL}",state="waiting"}`);
    expect(text).toMatch(new RegExp(`switchyard_pinned_queue_depth\\{model="${MODEL.replace('.', '\\.')}",digest="${digest}",state="waiting"\\} 0`));
    expect(text).toMatch(new RegExp(`switchyard_jobs_finished_total\\{model="${MODEL.replace('.', '\\.')}",outcome="completed"\\} 1`));
  });
});
