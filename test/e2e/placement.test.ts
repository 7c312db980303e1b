import { afterEach, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { modelToQueueName, redisKeys } from '@switchyard/protocol';
import { SAMPLE_CATALOG, createGpuSim, type GpuSimConfigInput } from '@switchyard/gpu-sim';
import { postJob, submitJob } from '../support/client.js';
import { readSse } from '../support/sse.js';
import { FAST_SIM, startStack, type Stack } from '../support/stack.js';

const GB = 1e9;
const TIME_SCALE = 0.05;

/** A simulated node: VRAM, catalog subset and speed, with the agent told the same VRAM. */
function node(vramBytes: number, models: string[], sim: Partial<GpuSimConfigInput> = {}, agent: Record<string, unknown> = {}) {
  return {
    sim: {
      vram_bytes: vramBytes,
      time_scale: TIME_SCALE,
      // Answers run to num_predict (tests that hold a slot need long ones).
      response_tokens_min: 5_000,
      response_tokens_max: 5_000,
      models: SAMPLE_CATALOG.filter((model) => models.includes(model.name)),
      ...sim,
    },
    agent: {
      gpuVramBytes: [vramBytes],
      // The simulator loads at 2 GB/s of simulated time, i.e. 40 GB/s of wall time here.
      loadBytesPerSecond: 2e9 / TIME_SCALE,
      minResidencyMs: 1,
      // Scaled like the simulator: 10 s of simulated time.
      displacementAgingMs: 10_000 * TIME_SCALE,
      ...agent,
    },
  };
}

async function runJob(stack: Stack, body: Record<string, unknown>): Promise<{ agent: string; text: string }> {
  const job = await submitJob(stack, body);
  const sse = await readSse(`${stack.apiUrl}${job.links.events}`, { timeoutMs: 30_000 });
  const last = sse.events.at(-1)!;
  expect(last.type, JSON.stringify(last)).toBe('done');
  const started = sse.events.find((event) => event.type === 'started');
  return { agent: started?.type === 'started' ? started.agent : '?', text: sse.events.map((e) => (e.type === 'token' ? e.text : '')).join('') };
}

const stats = (stack: Stack, index: number) => stack.sims[index]!.stats();
const loadedOn = (stack: Stack, index: number) => stats(stack, index).loaded.map((model) => model.name);

describe('VRAM-aware placement across several simulated GPU nodes', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  it('never lands a model that fits only the large GPU on the small one', async () => {
    stack = await startStack({ nodes: [node(24 * GB, ['qwen2.5:0.5b', 'llama3.1:70b']), node(80 * GB, ['qwen2.5:0.5b', 'llama3.1:70b'])] });
    const results = await Promise.all([1, 2, 3].map((i) => runJob(stack!, { model: 'llama3.1:70b', prompt: `big ${i}`, options: { num_predict: 5 } })));
    expect(results.map((r) => r.agent)).toEqual(['agent-1', 'agent-1', 'agent-1']);
    expect(stats(stack, 0).loads_total).toBe(0);
    expect(stats(stack, 0).errors_total).toBe(0);
    const agents = (await fetch(`${stack.apiUrl}/v1/agents`).then((r) => r.json())) as any;
    const small = agents.data.find((a: any) => a.id === 'agent-0');
    expect(small.models_available.find((m: any) => m.name === 'llama3.1:70b').fits).toBe(false);
  });

  it('refuses at admission a model too large for every GPU, saying how large', async () => {
    stack = await startStack({ nodes: [node(24 * GB, ['qwen2.5:0.5b', 'llama3.1:70b'])] });
    const refused = await postJob(stack, { model: 'llama3.1:70b', prompt: 'x' });
    expect(refused.status).toBe(422);
    expect(refused.json.error.code).toBe('model_too_large');
    expect(refused.json.error.message).toMatch(/needs \d+\.\d GB of VRAM; the largest GPU node that has it offers 24\.0 GB/);
  });

  it('serves a model from the node that has it warm while that node has free slots', async () => {
    stack = await startStack({ nodes: [node(24 * GB, ['qwen2.5:0.5b']), node(24 * GB, ['qwen2.5:0.5b'])] });
    const first = await runJob(stack, { model: 'qwen2.5:0.5b', prompt: 'warm up', options: { num_predict: 3 } });
    const warmIndex = first.agent === 'agent-0' ? 0 : 1;
    for (let i = 0; i < 6; i++) {
      const next = await runJob(stack, { model: 'qwen2.5:0.5b', prompt: `again ${i}`, options: { num_predict: 3 } });
      expect(next.agent).toBe(first.agent);
    }
    expect(stats(stack, 1 - warmIndex).loads_total).toBe(0);
    expect(stats(stack, warmIndex).loads_total).toBe(1);
    // The copy shares how long its jobs hold a slot, so other nodes judge its capacity by
    // what it measured rather than by a default.
    await expect
      .poll(async () => {
        const agents = (await fetch(`${stack!.apiUrl}/v1/agents`).then((r) => r.json())) as any;
        return agents.data.find((a: any) => a.id === first.agent).models_loaded.find((m: any) => m.name === 'qwen2.5:0.5b')?.service_ms;
      })
      .toBeGreaterThan(0);
  });

  it('warms a cold model on one node only, even when several could', async () => {
    // A pessimistic load-time estimate, so nothing looks overdue and only "no copy" applies.
    const slow = { loadBytesPerSecond: 1e8 };
    stack = await startStack({
      nodes: [node(24 * GB, ['qwen2.5:0.5b'], {}, slow), node(24 * GB, ['qwen2.5:0.5b'], {}, slow), node(24 * GB, ['qwen2.5:0.5b'], {}, slow)],
    });
    await Promise.all([1, 2, 3].map((i) => runJob(stack!, { model: 'qwen2.5:0.5b', prompt: `burst ${i}`, options: { num_predict: 5 } })));
    const loads = [0, 1, 2].map((i) => stats(stack!, i).loads_total);
    expect(loads.reduce((a, b) => a + b, 0)).toBe(1);
  });

  it('spills a burst beyond one node’s capacity to a second node', async () => {
    // 32 jobs for 4 slots per node, held in the simulators until both nodes serve four each:
    // the queue outlives a load for sure (so a second copy is warmed and takes part of it),
    // instead of for as long as 32 short jobs happen to take on this machine.
    const realtime = { time_scale: 0.2, tokens_per_s: 1000 };
    stack = await startStack({
      nodes: [
        node(24 * GB, ['qwen2.5:0.5b'], realtime, { loadBytesPerSecond: 2e9 / 0.2, extraCopyIdleMs: 500 }),
        node(24 * GB, ['qwen2.5:0.5b'], realtime, { loadBytesPerSecond: 2e9 / 0.2, extraCopyIdleMs: 500 }),
      ],
    });
    const hold = stack.hold({ prompt: 'load ', afterTokens: 1 });
    const running = Promise.all(Array.from({ length: 32 }, (_, i) => runJob(stack!, { model: 'qwen2.5:0.5b', prompt: `load ${i}`, options: { num_predict: 80 } })));
    // Eight paused at once: one node has four slots, so both are serving.
    await hold.reached(8, 20_000);
    hold.release();
    const results = await running;
    const served = new Set(results.map((r) => r.agent));
    expect(served).toEqual(new Set(['agent-0', 'agent-1']));
    expect(stats(stack, 0).evictions_total + stats(stack, 1).evictions_total).toBe(0);
    // Demand gone: with VRAM to spare the extra copy stays past its idle window (issue 17:
    // dropping it made the next burst queue on one copy). It goes only once a model asked for
    // lately needs its VRAM, or after IDLE_UNLOAD_MS (both in lifecycle-manager.test.ts).
    await new Promise((resolve) => setTimeout(resolve, 3 * 500));
    expect([0, 1].filter((i) => loadedOn(stack!, i).includes('qwen2.5:0.5b'))).toEqual([0, 1]);
    expect(stats(stack, 0).evictions_total + stats(stack, 1).evictions_total).toBe(0);
  });

  it('loads pinned models at start and keeps them; unloads idle ones after the idle window', async () => {
    stack = await startStack({
      nodes: [node(24 * GB, ['qwen2.5:0.5b', 'llama3.2:3b'], {}, { pinnedModels: ['llama3.2:3b'], idleUnloadMs: 400 })],
    });
    await expect.poll(() => loadedOn(stack!, 0), { timeout: 10_000 }).toEqual(['llama3.2:3b']);
    await runJob(stack, { model: 'qwen2.5:0.5b', prompt: 'brief visit', options: { num_predict: 3 } });
    expect(new Set(loadedOn(stack, 0))).toEqual(new Set(['qwen2.5:0.5b', 'llama3.2:3b']));
    // qwen goes once idle for the window; the pinned model stays although it is idle too.
    await expect.poll(() => loadedOn(stack!, 0), { timeout: 10_000 }).toEqual(['llama3.2:3b']);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(loadedOn(stack, 0)).toEqual(['llama3.2:3b']);
    expect(stats(stack, 0).evictions_total).toBe(0);
  });

  it('evicts the idle, less valuable model for a new one, and never a busy one', async () => {
    // 10 GB: qwen (1.1 GB) and llama3.2:3b (4.4 GB) fit together; llama3.1:8b (7.6 GB) needs one gone.
    stack = await startStack({
      nodes: [node(10 * GB, ['qwen2.5:0.5b', 'llama3.2:3b', 'llama3.1:8b'], { time_scale: 0.05 })],
    });
    await runJob(stack, { model: 'llama3.2:3b', prompt: 'old', options: { num_predict: 3 } });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await runJob(stack, { model: 'qwen2.5:0.5b', prompt: 'recent', options: { num_predict: 3 } });
    expect(new Set(loadedOn(stack, 0))).toEqual(new Set(['qwen2.5:0.5b', 'llama3.2:3b']));

    // Keep qwen busy (held in the simulator until the 8B has run): it must survive; the idle
    // 3B is the one to go. A long job would be a bet that it outlasts the 8B's load and run.
    const hold = stack.hold({ prompt: 'long', afterTokens: 1 });
    const busy = await submitJob(stack, { model: 'qwen2.5:0.5b', prompt: 'long', options: { num_predict: 3000 } });
    await hold.reached();
    const big = await runJob(stack, { model: 'llama3.1:8b', prompt: 'needs room', options: { num_predict: 3 } });
    expect(big.agent).toBe('agent-0');
    expect(new Set(loadedOn(stack, 0))).toEqual(new Set(['qwen2.5:0.5b', 'llama3.1:8b']));
    expect(stats(stack, 0).running_requests).toBe(1);
    hold.release();
    const busyEnd = await readSse(`${stack.apiUrl}${busy.links.events}`, { timeoutMs: 30_000 });
    expect(busyEnd.events.at(-1)!.type).toBe('done');
    expect(stats(stack, 0).evictions_total).toBe(0);
  });

  it('loads a model evicted for room back on a peer with free VRAM, before anyone asks for it again', async () => {
    // Node A (10 GB) holds the 3B (4.4 GB); the 8B (7.6 GB) needs it gone. Node B (6 GB) can
    // hold the 3B but not the 8B: evicted from A, the 3B is refilled on B.
    stack = await startStack({ nodes: [node(10 * GB, ['llama3.2:3b', 'llama3.1:8b'])] });
    await runJob(stack, { model: 'llama3.2:3b', prompt: 'first', options: { num_predict: 3 } });
    const small = node(6 * GB, ['llama3.2:3b']);
    stack.sims.push(await createGpuSim({ ...FAST_SIM, ...small.sim }));
    await stack.addAgent(1, small.agent);
    await expect.poll(async () => ((await fetch(`${stack!.apiUrl}/v1/agents`).then((r) => r.json())) as any).data.length, { timeout: 10_000 }).toBe(2);
    // B hears this one (demand is counted from announcements); A, warm, serves it.
    expect((await runJob(stack, { model: 'llama3.2:3b', prompt: 'again', options: { num_predict: 3 } })).agent).toBe('agent-0');
    expect(stats(stack, 1).loads_total).toBe(0);

    expect((await runJob(stack, { model: 'llama3.1:8b', prompt: 'needs room', options: { num_predict: 3 } })).agent).toBe('agent-0');
    expect(loadedOn(stack, 0)).toEqual(['llama3.1:8b']);
    await expect.poll(() => loadedOn(stack!, 1), { timeout: 10_000 }).toEqual(['llama3.2:3b']);
    // …and, once B's agent says so, its next job is warm there.
    await expect
      .poll(async () => {
        const agents = (await fetch(`${stack!.apiUrl}/v1/agents`).then((r) => r.json())) as any;
        return agents.data.find((a: any) => a.id === 'agent-1').models_loaded.map((m: any) => m.name);
      })
      .toEqual(['llama3.2:3b']);
    const next = await submitJob(stack, { model: 'llama3.2:3b', prompt: 'still here?', options: { num_predict: 3 } });
    const sse = await readSse(`${stack.apiUrl}${next.links.events}`, { timeoutMs: 30_000 });
    expect(sse.events.find((event) => event.type === 'started')).toMatchObject({ agent: 'agent-1', cold: false });
  });

  it('makes a job for a model that cannot fit yet wait, rather than evict a busy model', async () => {
    stack = await startStack({ nodes: [node(10 * GB, ['llama3.2:3b', 'llama3.1:8b'], { time_scale: 0.05 })] });
    // Busy for as long as the test needs: held in the simulator until released below.
    const hold = stack.hold({ prompt: 'hold the GPU', afterTokens: 1 });
    const busy = await submitJob(stack, { model: 'llama3.2:3b', prompt: 'hold the GPU', options: { num_predict: 5000 } });
    await hold.reached();
    const waiting = await submitJob(stack, { model: 'llama3.1:8b', prompt: 'wait for room', options: { num_predict: 3 } });
    // Time for the agent to do the wrong thing (three placement rounds): a check that nothing
    // happens needs some wait, and the hold makes sure the 3B is still busy all through it.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(loadedOn(stack, 0)).toEqual(['llama3.2:3b']);
    const record = (await fetch(`${stack.apiUrl}/v1/jobs/${waiting.id}`).then((r) => r.json())) as any;
    expect(record.status).toBe('queued');
    hold.release();
    await readSse(`${stack.apiUrl}${busy.links.events}`, { timeoutMs: 30_000 });
    const done = await readSse(`${stack.apiUrl}${waiting.links.events}`, { timeoutMs: 30_000 });
    expect(done.events.at(-1)!.type).toBe('done');
    expect(stats(stack, 0).evictions_total).toBe(0);
  });

  it('makes room for a starving model by draining a busy one instead of waiting for its backlog', async () => {
    stack = await startStack({
      nodes: [node(10 * GB, ['llama3.2:3b', 'llama3.1:8b'], { time_scale: 0.05 }, { drainForColdAfterMs: 300 })],
    });
    // A backlog for the 3B: four slots, twelve jobs, the first four held running in the
    // simulator, so the 3B is busy and has work queued for as long as the test says.
    const running = stack.hold({ prompt: 'busy ', afterTokens: 1 });
    const backlog = await Promise.all(Array.from({ length: 12 }, (_, i) => submitJob(stack!, { model: 'llama3.2:3b', prompt: `busy ${i}`, options: { num_predict: 50 } })));
    await running.reached(4);
    const big = runJob(stack, { model: 'llama3.1:8b', prompt: 'do not starve me', options: { num_predict: 3 } });
    // The 8B cannot load beside the busy 3B, so the agent takes its warm lease only to drain
    // the 3B: from then on it claims none of the 3B's jobs.
    const redis = new Redis(stack.redisUrl);
    try {
      await expect.poll(() => redis.exists(redisKeys(stack!.prefix).warmLease('llama3.1:8b')), { timeout: 10_000 }).toBe(1);
    } finally {
      redis.disconnect();
    }
    // Any backlog job that starts from here is caught (and kept running, so the 3B could not
    // be evicted and the 8B would never run). Then the four running ones may finish.
    const later = stack.hold({ prompt: 'busy ', afterTokens: 1 });
    running.release();
    expect((await big).agent).toBe('agent-0');
    // The 8B ran in the middle of the backlog: none of the eight waiting jobs started first.
    expect(later.paused).toBe(0);
    later.release();
    const finished = await Promise.all(backlog.map((job) => readSse(`${stack!.apiUrl}${job.links.events}`, { timeoutMs: 60_000 })));
    expect(finished.every((sse) => sse.events.at(-1)!.type === 'done')).toBe(true);
    expect(stats(stack, 0).evictions_total).toBe(0);
    expect(stats(stack, 0).errors_total).toBe(0);
  });

  it('never runs out of VRAM across a randomized run of many jobs and models', async () => {
    const models = ['qwen2.5:0.5b', 'llama3.2:3b', 'llama3.1:8b'];
    stack = await startStack({
      nodes: [node(8 * GB, models), node(12 * GB, models), node(16 * GB, models)],
    });
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const jobs = Array.from({ length: 45 }, (_, i) => ({
      model: models[Math.floor(random() * models.length)]!,
      prompt: `r${i}`,
      options: { num_predict: 2 + Math.floor(random() * 20) },
    }));
    const results: Array<{ agent: string }> = [];
    for (let i = 0; i < jobs.length; i += 9) results.push(...(await Promise.all(jobs.slice(i, i + 9).map((job) => runJob(stack!, job)))));
    expect(results).toHaveLength(45);
    for (const index of [0, 1, 2]) {
      const s = stats(stack, index);
      expect(s.errors_total, `node ${index}`).toBe(0);
      expect(s.evictions_total, `node ${index}`).toBe(0);
      expect(s.vram_high_water_bytes).toBeLessThanOrEqual(s.vram_total_bytes);
    }
  });

  it('loads a cold model for work nobody announced (a retried job), within a heartbeat', async () => {
    stack = await startStack({ nodes: [node(10 * GB, ['llama3.2:3b'])] });
    // Rounds read only the queues of models announced since last seen empty, plus every
    // queue once per heartbeat (200 ms here). A job put back on its queue by a retry is
    // announced to nobody; let the agent's first full read pass, then add one that way.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(loadedOn(stack, 0)).toEqual([]);
    const redis = new Redis(stack.redisUrl);
    const queue = new Queue(modelToQueueName('llama3.2:3b'), { connection: redis, prefix: redisKeys(stack.prefix).bullPrefix });
    try {
      const job = await queue.add(
        'generate',
        {
          id: 'unannounced',
          model: 'llama3.2:3b',
          tenant: 'default',
          request: { model: 'llama3.2:3b', prompt: 'anyone?', options: { num_predict: 2 } },
          submitted_at: Date.now(),
        },
        { jobId: 'unannounced' },
      );
      const added = Date.now();
      await expect.poll(() => job.getState(), { timeout: 10_000 }).toMatch(/completed|failed/);
      expect((await queue.getJob('unannounced'))?.failedReason).toBeUndefined();
      expect(loadedOn(stack, 0)).toEqual(['llama3.2:3b']);
      // A heartbeat and a round, a 50 ms load, two tokens; far below the 5 s of a scan that
      // ran five heartbeats apart.
      expect(Date.now() - added).toBeLessThan(2_500);
    } finally {
      await queue.close();
      redis.disconnect();
    }
  });

  it('honours a pinned digest', async () => {
    const qwen = SAMPLE_CATALOG.find((model) => model.name === 'qwen2.5:0.5b')!;
    const digestA = 'a'.repeat(64);
    const digestB = 'b'.repeat(64);
    stack = await startStack({
      nodes: [node(24 * GB, [], { models: [{ ...qwen, digest: digestA }] }), node(24 * GB, [], { models: [{ ...qwen, digest: digestB }] })],
    });
    for (let i = 0; i < 3; i++) {
      expect((await runJob(stack, { model: 'qwen2.5:0.5b', prompt: `b${i}`, options: { num_predict: 3 }, digest: `sha256:${digestB.slice(0, 12)}` })).agent).toBe('agent-1');
      expect((await runJob(stack, { model: 'qwen2.5:0.5b', prompt: `a${i}`, options: { num_predict: 3 }, digest: digestA })).agent).toBe('agent-0');
    }
    const unknown = await postJob(stack, { model: 'qwen2.5:0.5b', prompt: 'x', digest: 'c'.repeat(64) });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.message).toMatch(/digest/);
  });

  it('replaces the VRAM estimate with the measured figure after the first load', async () => {
    stack = await startStack({ nodes: [node(24 * GB, ['llama3.1:8b'])] });
    const need = async () => {
      const agents = (await fetch(`${stack!.apiUrl}/v1/agents`).then((r) => r.json())) as any;
      return agents.data[0].models_available.find((m: any) => m.name === 'llama3.1:8b');
    };
    const before = await need();
    expect(before.vram_need_source).toBe('estimate');
    expect(before.vram_need_bytes).toBe(before.vram_estimate_bytes);
    await runJob(stack, { model: 'llama3.1:8b', prompt: 'measure me', options: { num_predict: 2 } });
    const truth = stats(stack, 0).loaded.find((m) => m.name === 'llama3.1:8b')!.vram_bytes;
    await expect.poll(async () => (await need()).vram_need_source, { timeout: 10_000 }).toBe('measured');
    const after = await need();
    expect(after.vram_need_bytes).toBe(truth);
    // The estimate stays visible next to the truth: within a third of it, and conservative.
    expect(after.vram_estimate_bytes).toBeGreaterThan(truth);
    expect(Math.abs(after.vram_estimate_bytes - truth) / truth).toBeLessThan(0.34);
    // …and as a metric.
    const metrics = await fetch(`${stack.apiUrl}/metrics`).then((r) => r.text());
    const ratio = Number(/^switchyard_vram_estimate_error_ratio\{model="llama3.1:8b"\} (\S+)/m.exec(metrics)?.[1]);
    expect(ratio).toBeCloseTo((after.vram_estimate_bytes - truth) / truth, 6);
    expect(metrics).toMatch(/^switchyard_fleet_model_copies\{model="llama3.1:8b"\} 1$/m);
  });
  it('reports the wait for a cold model as load time, not also as queue time', async () => {
    // 4.9 GB at 0.2 GB/s of simulated time: a load of about 25 s, 1.2 s of wall time here.
    stack = await startStack({ nodes: [node(24 * GB, ['llama3.1:8b'], { load_bytes_per_s: 2e8 })] });
    const job = await submitJob(stack, { model: 'llama3.1:8b', prompt: 'cold start', options: { num_predict: 3 } });
    const sse = await readSse(`${stack.apiUrl}${job.links.events}`, { timeoutMs: 30_000 });
    const started = sse.events.find((event) => event.type === 'started');
    const done = sse.events.at(-1)!;
    if (started?.type !== 'started' || done.type !== 'done') throw new Error(JSON.stringify(sse.events.at(-1)));
    const loadWallMs = (4.9e9 / 2e8) * 1000 * TIME_SCALE;
    expect(started.cold).toBe(true);
    expect(started.load_ms).toBeGreaterThan(0.8 * loadWallMs);
    const { queued_ms, load_ms, ttft_ms } = done.timings;
    expect(load_ms).toBeGreaterThan(0.8 * loadWallMs);
    // The agent loads before it claims, so the job sat in Redis through the load; the parts
    // partition the time to the first token (Ollama's wire derives prompt_eval_duration from them).
    expect(queued_ms).toBeLessThan(0.5 * loadWallMs);
    expect(queued_ms + load_ms).toBeLessThanOrEqual(ttft_ms + 1);
  });
});
