/**
 * The fleet catalog on a real stack: agents pull what the catalog places on them through
 * the simulator's `/api/pull`, within their disk budget, retry failed pulls, delete the
 * copies the catalog no longer wants, and never block traffic for other models meanwhile.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SAMPLE_CATALOG } from '@switchyard/gpu-sim';
import { startStack, type Stack } from '../support/stack.js';
import { apiCall, submitOnceServed, until } from '../support/client.js';

const PULLED = 'qwen2.5:0.5b';
const OTHER = 'llama3.2:3b';
/** Every sample model but the one the tests pull: on disk at start. */
const ON_DISK = SAMPLE_CATALOG.filter((model) => model.name !== PULLED);
const CATALOG_AGENT = { catalogReconcileMs: 200, pullRetryBaseMs: 100, pullRetryMaxMs: 400 };

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

const admin = (method: string, path: string, body?: unknown) => apiCall(stack!.apiUrl, method, path, body);

/** The model's names on a simulator's disk, as its `/api/tags` lists them. */
async function onDisk(simIndex: number): Promise<string[]> {
  const tags = (await fetch(`${stack!.sims[simIndex]!.url}/api/tags`).then((r) => r.json())) as { models: Array<{ name: string }> };
  return tags.models.map((model) => model.name);
}

const statusOf = async (model: string) => (await admin('GET', `/admin/models/${encodeURIComponent(model)}`)).body;

describe('fleet catalog: agents reconcile their disks', () => {
  it('pulls a model onto the two nodes the catalog asks for, while another model keeps serving', async () => {
    stack = await startStack({
      nodes: [0, 1, 2].map(() => ({ sim: { models: [...ON_DISK], pull_bytes_per_s: 2e8 }, agent: CATALOG_AGENT })),
    });
    const put = await admin('PUT', `/admin/models/${PULLED}`, { copies: { min: 2 } });
    expect(put.status).toBe(201);
    expect(put.body).toMatchObject({ name: PULLED, wanted: 2 });

    // Traffic for a model already on disk is served while the pulls run.
    const other = await submitOnceServed(stack.apiUrl, { model: OTHER, prompt: 'hi', options: { num_predict: 3 } });
    const ready = await until('the model on two nodes', async () => {
      const status = await statusOf(PULLED);
      return status.state === 'ready' ? status : undefined;
    });
    expect(ready.holding).toBe(2);
    const holders = (await Promise.all([0, 1, 2].map(onDisk))).filter((names) => names.includes(PULLED));
    expect(holders).toHaveLength(2);
    expect(await until('the other job done', async () => ((await admin('GET', `/v1/jobs/${other}`)).body.status === 'completed' ? true : undefined))).toBe(true);

    // And the pulled model serves.
    const job = await submitOnceServed(stack.apiUrl, { model: PULLED, prompt: 'hello', options: { num_predict: 3 } });
    expect(await until('the pulled model job done', async () => ((await admin('GET', `/v1/jobs/${job}`)).body.status === 'completed' ? true : undefined))).toBe(true);
  });

  it('keeps within the disk budget: a node without room says why, the copy goes elsewhere, other models are untouched', async () => {
    const used = ON_DISK.reduce((sum, model) => sum + Number(model.size_bytes), 0);
    stack = await startStack({
      nodes: [
        // Room for what it has and 100 MB more: the 400 MB model does not fit.
        { sim: { models: [...ON_DISK], disk_bytes: used + 100e6 }, agent: { ...CATALOG_AGENT, modelDiskBytes: used + 100e6 } },
        { sim: { models: [...ON_DISK] }, agent: CATALOG_AGENT },
      ],
    });
    const small = stack.agents[0]!.id;
    await admin('PUT', `/admin/models/${PULLED}`, { copies: { min: 1 }, on: { agents: [small] } });
    const refused = await until('the disk-full refusal', async () => {
      const status = await statusOf(PULLED);
      return status.problems.some((line: string) => line.includes(small) && /disk full|disk_full/.test(line)) ? status : undefined;
    });
    expect(refused.state).not.toBe('ready');
    expect(await onDisk(0)).not.toContain(PULLED);
    expect((await onDisk(0)).sort()).toEqual(ON_DISK.map((model) => model.name).sort());

    // Without the node restriction, the copy lands on the node with room.
    await admin('PUT', `/admin/models/${PULLED}`, { copies: { min: 1 } });
    await until('the copy on the other node', async () => ((await statusOf(PULLED)).state === 'ready' ? true : undefined));
    expect(await onDisk(1)).toContain(PULLED);
    expect(await onDisk(0)).not.toContain(PULLED);
  });

  it('retries a pull whose connection dropped, and reports a build the registry does not serve', async () => {
    stack = await startStack({ nodes: [{ sim: { models: [...ON_DISK], pull_bytes_per_s: 2e8 }, agent: CATALOG_AGENT }] });
    const sim = stack.sims[0]!.url;
    await fetch(`${sim}/sim/faults/pull`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: PULLED, kind: 'drop', after_fraction: 0.5 }),
    });
    await admin('PUT', `/admin/models/${PULLED}`, {});
    await until('the pull to succeed after the drop', async () => ((await statusOf(PULLED)).state === 'ready' ? true : undefined));
    const stats = (await fetch(`${sim}/sim/stats`).then((r) => r.json())) as { pull: { failed: number; completed: number } };
    expect(stats.pull.failed).toBeGreaterThanOrEqual(1);
    expect(stats.pull.completed).toBeGreaterThanOrEqual(1);

    // A digest nobody serves: the node keeps what it has and the status names the cause.
    const wanted = 'f'.repeat(64);
    await admin('PUT', `/admin/models/${OTHER}`, { digest: wanted });
    const failing = await until('the failed pull', async () => {
      const status = await statusOf(OTHER);
      return status.nodes.some((node: any) => node.pull?.state === 'failed') ? status : undefined;
    });
    expect(failing.state).toBe('failing');
    expect(failing.problems.join('\n')).toMatch(/pull failed \((not_found|digest_mismatch)\)/);
    expect(await onDisk(0)).toContain(OTHER);
  });

  it('deletes the copies beyond copies.max and where the entry does not place it, never a pinned one', async () => {
    stack = await startStack({
      nodes: [
        { sim: { models: [...SAMPLE_CATALOG] }, agent: CATALOG_AGENT },
        { sim: { models: [...SAMPLE_CATALOG] }, agent: CATALOG_AGENT },
        { sim: { models: [...SAMPLE_CATALOG] }, agent: { ...CATALOG_AGENT, pinnedModels: [PULLED] } },
      ],
    });
    const [first, second, pinned] = stack.agents.map((agent) => agent.id);
    // Only the first two nodes, and one copy between them: one of the two is deleted, and the
    // third node's copy is outside the placement but pinned (PINNED_MODELS), so it stays.
    await admin('PUT', `/admin/models/${PULLED}`, { copies: { min: 1, max: 1 }, on: { agents: [first, second] } });
    await until('one copy left on the first two nodes', async () => {
      const holders = (await Promise.all([0, 1].map(onDisk))).filter((names) => names.includes(PULLED));
      return holders.length === 1 ? true : undefined;
    });
    const status = await statusOf(PULLED);
    expect(status).toMatchObject({ state: 'ready', wanted: 1, holding: 1 });
    expect(status.nodes.find((node: any) => node.agent === pinned)).toMatchObject({ state: 'extra' });
    // Deleting is one pass of each agent; several more passes of the pinned node's agent leave its copy.
    await new Promise((resolve) => setTimeout(resolve, 5 * CATALOG_AGENT.catalogReconcileMs));
    expect(await onDisk(2)).toContain(PULLED);
  });

  it('an agent stopped mid-pull gets the model once it is back', async () => {
    stack = await startStack({ nodes: [{ sim: { models: [...ON_DISK], pull_bytes_per_s: 5e6 }, agent: CATALOG_AGENT }] });
    await admin('PUT', `/admin/models/${PULLED}`, {});
    await until('the pull under way', async () => {
      const status = await statusOf(PULLED);
      return status.nodes.some((node: any) => node.pull?.state === 'pulling' && (node.pull.completed_bytes ?? 0) > 0) ? true : undefined;
    });
    const first = stack.agents[0]!;
    await first.close();
    // Ollama finishes a download whose client went away; either way the agent that comes
    // back finds the model or pulls the rest, and reports it.
    await stack.addAgent(0, CATALOG_AGENT);
    await until('the model pulled after the restart', async () => ((await statusOf(PULLED)).state === 'ready' ? true : undefined), 30_000);
    expect(await onDisk(0)).toContain(PULLED);
  });

  it('bad catalog input gets a 400 naming the field; an unknown entry a 404', async () => {
    stack = await startStack({ nodes: [{ sim: { models: [...ON_DISK] }, agent: CATALOG_AGENT }] });
    const bad = await admin('PUT', `/admin/models/${PULLED}`, { copies: { min: -1 } });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toMatch(/copies/);
    expect((await admin('PUT', `/admin/models/${PULLED}`, { digest: 'xyz' })).status).toBe(400);
    expect((await admin('PUT', `/admin/models/${PULLED}`, [])).status).toBe(400);
    expect((await admin('PUT', `/admin/models/${PULLED}`, { nonsense: 1 })).status).toBe(400);
    const missing = await admin('GET', '/admin/models/nope:latest');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('catalog_entry_not_found');
    expect((await admin('DELETE', '/admin/models/nope:latest')).status).toBe(404);
  });
});
