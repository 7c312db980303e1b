/**
 * Rollouts on a real stack: a new digest in the catalog moves the fleet from one build to the
 * next under traffic. Nodes pull the new build while the old one serves (kept under a rollout
 * copy), unpinned jobs move once every placed node has it, a job pinned to the old build keeps
 * it until it ends, and the old copies go. A canary sends a share first; abort rolls back from
 * the copies the nodes kept, without a download.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SAMPLE_CATALOG } from '@switchyard/gpu-sim';
import { SwitchyardClient } from '@switchyard/sdk';
import { startStack, type Stack } from '../support/stack.js';
import { apiCall, postJob, submitOnceServed, until as untilWithin } from '../support/client.js';

const until = <T>(what: string, check: () => Promise<T | undefined>) => untilWithin(what, check, 20_000);

const MODEL = 'llama3.2:3b';
const NEW = SAMPLE_CATALOG.find((model) => model.name === MODEL)!.newer!.digest;
/** The build the simulators ship (read from their `/api/tags` once the stack runs). */
let OLD = '';
// 2 GB at 2e7 B/s and the stack's time scale (0.02): a pull takes about 2 s, long enough to see.
const NODE = { sim: { pull_bytes_per_s: 2e7 }, agent: { catalogReconcileMs: 200, pullRetryBaseMs: 100, pullRetryMaxMs: 400, rolloutCopyGraceMs: 2_000 } };

let stack: Stack | undefined;
let trafficRunning: { running: boolean } | undefined;
afterEach(async () => {
  if (trafficRunning) trafficRunning.running = false;
  await stack?.close();
  stack = undefined;
});

const admin = (method: string, path: string, body?: unknown) => apiCall(stack!.apiUrl, method, path, body);

const rollout = async () => (await admin('GET', `/admin/models/${MODEL}/rollout`)).body;
const rolloutIn = (...states: string[]) =>
  until(`rollout in ${states.join('|')}`, async () => {
    const view = await rollout();
    return states.includes(view?.state) ? view : undefined;
  });

async function startRolloutStack(nodes: number): Promise<Stack> {
  stack = await startStack({ nodes: Array.from({ length: nodes }, () => NODE) });
  await submitOnceServed(stack.apiUrl, { model: MODEL, prompt: 'warm', options: { num_predict: 1 } });
  OLD = (await disks())[0]![MODEL]!;
  return stack;
}

/** The model's builds on each simulator's disk: name → digest. */
async function disks(): Promise<Array<Record<string, string>>> {
  return Promise.all(
    stack!.sims.map(async (sim) => {
      const tags = (await fetch(`${sim.url}/api/tags`).then((r) => r.json())) as { models: Array<{ name: string; digest: string }> };
      return Object.fromEntries(tags.models.filter((model) => model.name.startsWith(MODEL)).map((model) => [model.name, model.digest]));
    }),
  );
}

/** Submits jobs of MODEL one after another until stopped; every answer and every job's end is kept. */
function steadyTraffic() {
  const ids: string[] = [];
  const refused: number[] = [];
  const state = { running: true };
  trafficRunning = state;
  const loop = (async () => {
    while (state.running) {
      const submitted = await postJob(stack!, { model: MODEL, prompt: 'steady', options: { num_predict: 4 } });
      if (submitted.status === 202) ids.push(submitted.json.id);
      else refused.push(submitted.status);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  return {
    async stop() {
      state.running = false;
      await loop;
      const ends = await Promise.all(
        ids.map((id) =>
          until(`job ${id} ended`, async () => {
            const job = (await admin('GET', `/v1/jobs/${id}`)).body;
            return ['completed', 'failed', 'cancelled'].includes(job.status) ? job.status : undefined;
          }),
        ),
      );
      return { submitted: ids.length, refused, failed: ends.filter((status) => status !== 'completed').length };
    },
  };
}

describe('fleet catalog: rollouts', () => {
  it('moves every node to the new build under traffic; a job pinned to the old build keeps it; the old copies go', { timeout: 60_000 }, async () => {
    stack = await startRolloutStack(2);
    const put = await admin('PUT', `/admin/models/${MODEL}`, { digest: OLD });
    expect(put.body.rollout).toBeUndefined();

    // A job pinned to the old build, held mid-stream across the whole rollout.
    const hold = stack.hold({ prompt: 'pinned-old', afterTokens: 2 });
    const pinned = await postJob(stack, { model: MODEL, digest: OLD, prompt: 'pinned-old', options: { num_predict: 6 } });
    expect(pinned.status).toBe(202);
    await hold.reached(1);

    const traffic = steadyTraffic();
    const started = await admin('PUT', `/admin/models/${MODEL}`, { digest: NEW });
    expect(started.status).toBe(200);
    expect(started.body.rollout).toMatchObject({ state: 'pulling', from: OLD, to: NEW });
    expect(started.body.drift).toBe(false);

    // While nodes pull, the old build serves unpinned jobs; once both hold the new one, it does.
    const pulling = await rolloutIn('pulling');
    expect(pulling.to_share).toBe(0);
    const promoting = await rolloutIn('promoting', 'done');
    expect(promoting.on_to.sort()).toEqual(stack.agents.map((agent) => agent.id).sort());
    const onNew = await submitOnceServed(stack.apiUrl, { model: MODEL, prompt: 'after', options: { num_predict: 2 } });

    // The pinned job is still on the old build (kept under its copy) and ends whole.
    expect((await admin('GET', `/v1/jobs/${pinned.json.id}`)).body.status).toBe('running');
    hold.release();
    await until('the pinned job completed', async () => ((await admin('GET', `/v1/jobs/${pinned.json.id}`)).body.status === 'completed' ? true : undefined));
    await until('the job after the gate completed', async () => ((await admin('GET', `/v1/jobs/${onNew}`)).body.status === 'completed' ? true : undefined));

    const done = await until('the rollout stamped finished', async () => {
      const view = await rollout();
      return view.state === 'done' && view.finished_at !== undefined ? view : undefined;
    });
    expect(done.finished_at).toBeGreaterThan(0);
    const outcome = await traffic.stop();
    expect(outcome.submitted).toBeGreaterThan(5);
    expect(outcome.failed).toBe(0);
    expect(outcome.refused).toEqual([]);
    // Every node: the new build under the model's name, no copy of the old one left.
    for (const disk of await disks()) expect(disk).toEqual({ [MODEL]: NEW });
    const status = (await admin('GET', `/admin/models/${MODEL}`)).body;
    expect(status).toMatchObject({ state: 'ready', drift: false, holding: 2 });

    // A job pinned to the old build now names what the fleet has.
    const gone = await postJob(stack, { model: MODEL, digest: OLD, prompt: 'late', options: { num_predict: 1 } });
    expect(gone.status).toBe(404);
    expect(gone.json.error.message).toContain(NEW.slice(0, 12));
  });

  it('canary: a share of unpinned jobs to the new build, then abort rolls back from the kept copies without a download', { timeout: 60_000 }, async () => {
    stack = await startRolloutStack(2);
    await admin('PUT', `/admin/models/${MODEL}`, { digest: OLD });
    const started = await admin('PUT', `/admin/models/${MODEL}`, { digest: NEW, canary: { share: 0.5 } });
    expect(started.body.rollout.state).toBe('pulling');
    const canary = await rolloutIn('canary');
    expect(canary.to_share).toBe(0.5);
    // Both builds serve during the canary.
    await until('both nodes on the new build, keeping the old', async () => {
      const view = await rollout();
      return view.on_to.length === 2 && view.on_from.length === 2 ? true : undefined;
    });
    expect((await rollout()).state).toBe('canary');
    const traffic = steadyTraffic();
    // Both builds take unpinned jobs, and the rollout compares them.
    const compared = await until('jobs completed on both builds', async () => {
      const view = await rollout();
      return view.builds[OLD].jobs > 2 && view.builds[NEW].jobs > 2 ? view : undefined;
    });
    expect(compared.builds[NEW]).toMatchObject({ failed: 0, error_rate: 0, mean_ttft_ms: expect.any(Number), tokens_per_s: expect.any(Number) });
    const metrics = await fetch(`${stack.apiUrl}/metrics`).then((r) => r.text());
    expect(metrics).toContain(`switchyard_model_rollout{model="${MODEL}",state="canary"} 1`);

    const pullsBefore = await Promise.all(stack.sims.map(async (sim) => ((await fetch(`${sim.url}/sim/stats`).then((r) => r.json())) as any).pull.started));
    // Through the SDK, as `switchyard models rollout --abort` sends it.
    const sdk = new SwitchyardClient({ baseUrl: stack.apiUrl });
    expect((await sdk.rollout(MODEL)).state).toBe('canary');
    const aborted = await sdk.rolloutStep(MODEL, 'abort');
    expect(aborted).toMatchObject({ state: 'aborted', from: NEW, to: OLD });
    const back = await until('the rollback finished', async () => {
      const view = await rollout();
      return view.state === 'aborted' && view.finished_at !== undefined ? view : undefined;
    });
    expect(back.on_to).toHaveLength(2);
    const outcome = await traffic.stop();
    expect(outcome.failed).toBe(0);
    expect(outcome.refused).toEqual([]);
    for (const disk of await disks()) expect(disk).toEqual({ [MODEL]: OLD });
    const pullsAfter = await Promise.all(stack.sims.map(async (sim) => ((await fetch(`${sim.url}/sim/stats`).then((r) => r.json())) as any).pull.started));
    expect(pullsAfter).toEqual(pullsBefore);
    expect((await admin('GET', `/admin/models/${MODEL}`)).body.entry.digest).toBe(OLD);

    // Nothing is running now: promote and abort say so.
    const promote = await admin('POST', `/admin/models/${MODEL}/rollout/promote`);
    expect(promote.status).toBe(409);
    expect(promote.body.error.code).toBe('rollout_not_running');
  });

  it('bad rollout requests get named errors', async () => {
    stack = await startRolloutStack(1);
    const noEntry = await admin('GET', `/admin/models/${MODEL}/rollout`);
    expect(noEntry.status).toBe(404);
    expect(noEntry.body.error.code).toBe('catalog_entry_not_found');
    await admin('PUT', `/admin/models/${MODEL}`, { digest: OLD });
    const none = await admin('GET', `/admin/models/${MODEL}/rollout`);
    expect(none.status).toBe(404);
    expect(none.body.error.code).toBe('rollout_not_found');
    for (const body of [
      { digest: NEW, canary: { share: 1.5 } },
      { digest: NEW, canary: { share: 0 } },
      { digest: NEW, required_share: 0 },
      { digest: NEW, canary: {} },
    ]) {
      const bad = await admin('PUT', `/admin/models/${MODEL}`, body);
      expect(bad.status, JSON.stringify(body)).toBe(400);
      expect(bad.body.error.code).toBe('invalid_request');
    }
    expect((await admin('POST', `/admin/models/${MODEL}/rollout/abort`)).status).toBe(409);
  });
});
