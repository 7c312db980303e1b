import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RedisConnection } from '@switchyard/redis';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import { modelToQueueName, pinnedQueueModel, redisKeys, type JobResult, type RedisKeys } from '@switchyard/protocol';
import { ManualWorker, closeRedis, createRedis } from '@switchyard/redis';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import { claimDelay } from './placement-view.js';
import { PullScheduler } from './pull-scheduler.js';

const A = 'alpha:1b';
const B = 'beta:1b';
const A_PINNED = pinnedQueueModel(A, 'sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef');
const silent = pino({ level: 'silent' });

type ModelWorker = ManualWorker<unknown, JobResult>;

describe('PullScheduler on a real Redis with real BullMQ workers', () => {
  let redis: RedisConnection;
  const closers: Array<() => Promise<unknown>> = [];
  /** Run first after each test: lets every held job end, so draining schedulers and closing workers cannot hang. */
  const unblockers: Array<() => void> = [];

  beforeAll(() => {
    redis = createRedis(testRedis(), 'worker');
  });
  afterEach(async () => {
    for (const unblock of unblockers.splice(0)) unblock();
    for (const close of closers.splice(0).reverse()) await close();
  });
  afterAll(async () => {
    await closeRedis(redis);
  });

  /**
   * Queues and workers under a fresh prefix, and a processor that holds every job until the
   * test lets it finish (`finish`), recording the order jobs started in.
   */
  function setup(queueKeys: string[]) {
    const keys: RedisKeys = redisKeys(uniquePrefix('pull'));
    const started: string[] = [];
    /** Job id → the lock token its claim took. */
    const tokens = new Map<string, string>();
    const gates = new Map<string, () => void>();
    let holding = true;
    const processor = async (job: { id?: string }, token?: string) => {
      started.push(job.id!);
      if (token !== undefined) tokens.set(job.id!, token);
      if (holding) await new Promise<void>((resolve) => gates.set(job.id!, resolve));
      return {} as JobResult;
    };
    const workers = new Map<string, ModelWorker>();
    const queues = new Map<string, Queue>();
    for (const key of queueKeys) {
      const worker = new ManualWorker<unknown, JobResult>(modelToQueueName(key), processor, { connection: redis, prefix: keys.bullPrefix });
      worker.on('error', () => undefined);
      workers.set(key, worker);
      const queue = new Queue(modelToQueueName(key), { connection: redis, prefix: keys.bullPrefix });
      queues.set(key, queue);
      closers.push(async () => {
        await worker.close(true);
        await queue.close();
      });
    }
    let counter = 0;
    const add = async (key: string, count = 1) => {
      const ids: string[] = [];
      for (let i = 0; i < count; i++) {
        const id = `${key.replace(/[^A-Za-z0-9]/g, '_')}-${++counter}`;
        await queues.get(key)!.add('generate', {}, { jobId: id });
        ids.push(id);
      }
      return ids;
    };
    const finish = (jobId: string) => {
      const open = gates.get(jobId);
      if (!open) throw new Error(`${jobId} is not held`);
      gates.delete(jobId);
      open();
    };
    const waiting = (key: string) => queues.get(key)!.getWaitingCount();
    const completed = (key: string) => queues.get(key)!.getCompletedCount();
    const release = () => {
      holding = false;
      for (const id of [...gates.keys()]) finish(id);
    };
    unblockers.push(release);
    return { keys, workers, queues, started, tokens, add, finish, waiting, completed, release };
  }

  function scheduler(
    workers: Map<string, ModelWorker>,
    options: {
      slots: number;
      canClaim?: (queueKey: string, runningOfModel: number) => boolean;
      embedSlots?: number;
      isEmbedQueue?: (queueKey: string) => boolean;
      agentId?: string;
      claimDelayMs?: (queueKey: string, runningOfModel: number) => number;
      sleep?: (ms: number) => Promise<unknown>;
    },
  ) {
    const created = new PullScheduler({
      agentId: options.agentId ?? 'agent-1',
      ...(options.claimDelayMs !== undefined && { claimDelayMs: options.claimDelayMs }),
      ...(options.sleep !== undefined && { sleep: options.sleep }),
      slots: options.slots,
      workers,
      logger: silent,
      canClaim: options.canClaim ?? (() => true),
      ...(options.embedSlots !== undefined && { embedSlots: options.embedSlots }),
      ...(options.isEmbedQueue !== undefined && { isEmbedQueue: options.isEmbedQueue }),
    });
    closers.push(() => created.drain());
    return created;
  }

  it('claims only while a slot is free; every other job stays in Redis until one frees', async () => {
    const { workers, started, add, finish, waiting, completed, release } = setup([A]);
    const ids = await add(A, 4);
    const pull = scheduler(workers, { slots: 2 });
    pull.wake();
    await expect.poll(() => started.length).toBe(2);
    expect(pull.activeJobs).toBe(2);
    expect(pull.runningOf(A)).toBe(2);
    expect(await waiting(A)).toBe(2);

    // A finished job wakes the scheduler itself.
    finish(started[0]!);
    await expect.poll(() => started.length).toBe(3);
    expect(pull.activeJobs).toBe(2);
    expect(await waiting(A)).toBe(1);

    release();
    await expect.poll(() => completed(A)).toBe(4);
    expect(started.sort()).toEqual([...ids].sort());
    expect(pull.activeJobs).toBe(0);
    expect(pull.runningOf(A)).toBe(0);
  });

  it('frees a slot when the backend is done with its job, before the job settles, and only once', async () => {
    const { workers, started, tokens, add, finish, completed, release } = setup([A]);
    await add(A, 3);
    const pull = scheduler(workers, { slots: 1 });
    pull.wake();
    await expect.poll(() => started.length).toBe(1);
    // The backend's last line came; the job's own final writes are still going out (held here).
    pull.backendFreed(tokens.get(started[0]!)!);
    await expect.poll(() => started.length).toBe(2);
    expect(pull.activeJobs).toBe(1);
    expect(pull.runningOf(A)).toBe(1);
    // Its settling frees nothing more: the second job still holds the one slot.
    finish(started[0]!);
    await expect.poll(() => completed(A)).toBe(1);
    expect(pull.activeJobs).toBe(1);
    expect(pull.runningOf(A)).toBe(1);
    expect(started).toHaveLength(2);
    pull.backendFreed('no-such-token');
    expect(pull.activeJobs).toBe(1);
    release();
    await expect.poll(() => completed(A)).toBe(3);
    expect(pull.activeJobs).toBe(0);
    expect(pull.runningOf(A)).toBe(0);
  });

  it('after a job ends, does not poll a queue its last claim found empty until an announcement names it; the sweep still does', async () => {
    const { workers, started, add, finish, completed, release } = setup([A, B]);
    const claimsOf = new Map<string, number>();
    for (const [key, worker] of workers) {
      const claim = worker.claim.bind(worker);
      worker.claim = (token: string) => {
        claimsOf.set(key, (claimsOf.get(key) ?? 0) + 1);
        return claim(token);
      };
    }
    await add(A, 2);
    const pull = scheduler(workers, { slots: 1 });
    // A full round: both queues are tried until one gives a job.
    pull.wake();
    await expect.poll(() => started.length).toBe(1);
    finish(started[0]!);
    await expect.poll(() => started.length).toBe(2);
    finish(started[1]!);
    await expect.poll(() => completed(A)).toBe(2);
    // Both queues are empty now and were found so: the finishes polled B at most once (the first round).
    await expect.poll(() => claimsOf.get(A)).toBeGreaterThanOrEqual(3);
    expect(claimsOf.get(B) ?? 0).toBeLessThanOrEqual(1);
    const afterFinishes = { a: claimsOf.get(A)!, b: claimsOf.get(B) ?? 0 };
    // An announced job of B is claimed at once.
    const [jobB] = await add(B);
    pull.wake(B);
    await expect.poll(() => started).toContain(jobB);
    expect(claimsOf.get(B)).toBe(afterFinishes.b + 1);
    // Its end finds B empty again.
    finish(jobB!);
    await expect.poll(() => completed(B)).toBe(1);
    await expect.poll(() => claimsOf.get(B)).toBe(afterFinishes.b + 2);
    // Work noted for B while it is marked empty (announced while its model was cold here): the
    // round after the next finished job tries it, with no wake of its own.
    const [jobA] = await add(A);
    pull.wake(A);
    await expect.poll(() => started).toContain(jobA);
    const [noted] = await add(B);
    pull.noteWork(B);
    finish(jobA!);
    await expect.poll(() => started).toContain(noted);
    release();
    await expect.poll(() => completed(B)).toBe(2);
    // An unannounced job (a retry) is found by a full round, as the sweep runs.
    const [unannounced] = await add(A);
    pull.wake();
    await expect.poll(() => started).toContain(unannounced);
  });

  it('claims nothing for a queue canClaim refuses, and takes it once woken after the model turns warm', async () => {
    const { workers, started, add, waiting } = setup([A]);
    await add(A);
    let warm = false;
    const asked: Array<[string, number]> = [];
    const pull = scheduler(workers, {
      slots: 2,
      canClaim: (key, running) => {
        asked.push([key, running]);
        return warm;
      },
    });
    pull.wake();
    pull.wake(A);
    await expect.poll(() => asked.length).toBeGreaterThanOrEqual(2);
    expect(started).toEqual([]);
    expect(await waiting(A)).toBe(1);

    warm = true;
    pull.wake(A);
    await expect.poll(() => started.length).toBe(1);
    expect(asked.at(-1)).toEqual([A, 0]);
  });

  it('counts a model’s running jobs from the claim, over its plain and pinned queues, so two quick claims cannot both take its last backend slot', async () => {
    const { workers, started, add, finish } = setup([A, A_PINNED]);
    await add(A, 2);
    await add(A_PINNED, 2);
    const asked: Array<[string, number]> = [];
    // One backend slot per model (OLLAMA_NUM_PARALLEL=1), four agent slots.
    const pull = scheduler(workers, {
      slots: 4,
      canClaim: (key, running) => {
        asked.push([key, running]);
        return running < 1;
      },
    });
    // A burst of announcements and a round, all before any claim has answered.
    pull.wake(A);
    pull.wake(A);
    pull.wake(A_PINNED);
    pull.wake();
    await expect.poll(() => started.length).toBe(1);
    expect(pull.runningOf(A)).toBe(1);
    // Every later ask saw the first claim counted, though it had not answered yet.
    expect(asked.slice(1).every(([, running]) => running === 1)).toBe(true);

    finish(started[0]!);
    await expect.poll(() => started.length).toBe(2);
    expect(pull.runningOf(A)).toBe(1);
  });

  it('sends an announced job’s claim at once, concurrently with others; a round claims one at a time', async () => {
    const { workers, add, started } = setup([A]);
    await add(A, 6);
    let inFlight = 0;
    let most = 0;
    const worker = workers.get(A)!;
    const claim = worker.claim.bind(worker);
    worker.claim = async (token) => {
      most = Math.max(most, ++inFlight);
      try {
        return await claim(token);
      } finally {
        inFlight--;
      }
    };
    const pull = scheduler(workers, { slots: 6 });
    pull.wake(A);
    pull.wake(A);
    pull.wake(A);
    await expect.poll(() => started.length).toBe(3);
    expect(most).toBe(3);

    most = 0;
    pull.wake();
    await expect.poll(() => started.length).toBe(6);
    expect(most).toBe(1);
  });

  it('holds a slot for each claim in flight: a burst of announcements claims no more than the free slots', async () => {
    const { workers, add, started, waiting } = setup([A]);
    await add(A, 5);
    let sent = 0;
    const worker = workers.get(A)!;
    const claim = worker.claim.bind(worker);
    worker.claim = async (token) => {
      sent++;
      return claim(token);
    };
    const pull = scheduler(workers, { slots: 2 });
    for (let i = 0; i < 5; i++) pull.wake(A);
    await expect.poll(() => started.length).toBe(2);
    expect(sent).toBe(2);
    expect(pull.activeJobs).toBe(2);
    expect(await waiting(A)).toBe(3);
  });

  it('takes queues round-robin, so one model’s backlog does not starve another’s', async () => {
    const { workers, add, started, completed, release } = setup([A, B]);
    release();
    await add(A, 3);
    await add(B, 3);
    const pull = scheduler(workers, { slots: 1 });
    pull.wake();
    await expect.poll(async () => (await completed(A)) + (await completed(B))).toBe(6);
    const models = started.map((id) => (id.startsWith('alpha') ? 'A' : 'B'));
    expect(models).toEqual(['A', 'B', 'A', 'B', 'A', 'B']);
  });

  it('finds work nobody announced on its sweep', async () => {
    const { workers, add, started } = setup([A]);
    const pull = scheduler(workers, { slots: 1 });
    pull.wake();
    // A retried or stalled job comes back without an announcement.
    const [id] = await add(A);
    pull.startSweep(10);
    await expect.poll(() => started).toEqual([id]);
  });

  it('gives back the slot of a claim that failed, and claims again once Redis answers', async () => {
    const { workers, add, started } = setup([A]);
    await add(A);
    const worker = workers.get(A)!;
    const claim = worker.claim.bind(worker);
    let failures = 0;
    worker.claim = async () => {
      failures++;
      throw new Error('Connection is closed.');
    };
    const pull = scheduler(workers, { slots: 1 });
    pull.wake();
    await expect.poll(() => failures).toBe(1);
    expect(pull.activeJobs).toBe(0);
    expect(pull.runningOf(A)).toBe(0);

    worker.claim = claim;
    pull.wake();
    await expect.poll(() => started.length).toBe(1);
  });

  it('drain: stops claiming and resolves once the running jobs have settled, leaving the rest in Redis', async () => {
    const { workers, add, started, finish, waiting, completed } = setup([A]);
    await add(A);
    const pull = scheduler(workers, { slots: 1 });
    pull.wake();
    await expect.poll(() => started.length).toBe(1);
    let drained = false;
    const draining = pull.drain().then(() => (drained = true));
    await add(A);
    pull.wake(A);
    pull.wake();
    expect(drained).toBe(false);

    finish(started[0]!);
    await draining;
    expect(await completed(A)).toBe(1);
    expect(started.length).toBe(1);
    expect(await waiting(A)).toBe(1);
  });

  it('release: hands every running job back to the head of its queue, unlocked, without waiting for it', async () => {
    const { keys, workers, add, started, queues } = setup([A, B]);
    const [a] = await add(A);
    const [b] = await add(B);
    const pull = scheduler(workers, { slots: 2 });
    pull.wake();
    await expect.poll(() => started.length).toBe(2);

    const released = await pull.release();
    expect(released.sort()).toEqual([A, B]);
    expect(await queues.get(A)!.getJobState(a!)).toBe('waiting');
    expect(await queues.get(B)!.getJobState(b!)).toBe('waiting');
    // Unlocked: another agent may claim it at once, not after the lock expires.
    expect(await redis.exists(`${keys.bullPrefix}:${modelToQueueName(A)}:${a}:lock`)).toBe(0);
    // Stopped: it claims nothing more.
    pull.wake();
    pull.wake(A);
    await add(A);
    expect(started.length).toBe(2);
  });

  it('claims embed queues in their own budget: 64 concurrent embed jobs run at once beside full generation slots', async () => {
    const { workers, started, add, waiting, release, completed } = setup([A, B]);
    await add(A, 3);
    await add(B, 70);
    const pull = scheduler(workers, { slots: 2, embedSlots: 64, isEmbedQueue: (key) => key === B });
    pull.wake();
    await expect.poll(() => started.length, { timeout: 5_000 }).toBe(66);
    expect(pull.runningOf(A)).toBe(2);
    expect(pull.runningOf(B)).toBe(64);
    expect(pull.activeJobs).toBe(66);
    expect(pull.slotJobs).toBe(2);
    expect(await waiting(A)).toBe(1);
    expect(await waiting(B)).toBe(6);
    release();
    await expect.poll(() => completed(B), { timeout: 5_000 }).toBe(70);
    expect(pull.activeJobs).toBe(0);
  });

  it('spreads announced jobs over copies: the one with fewer jobs of the model running claims first, the busier one after its delay', async () => {
    const { workers, add, started, waiting } = setup([A]);
    /** Each scheduler's held-back claims, released by the test: the order of claims is the test's, not the machine's. */
    const held = { idle: [] as Array<{ ms: number; go: () => void }>, busy: [] as Array<{ ms: number; go: () => void }> };
    const sleeper = (into: typeof held.idle) => (ms: number) => new Promise<void>((go) => into.push({ ms, go }));
    const delay = claimDelay(5);
    const idle = scheduler(workers, { slots: 4, agentId: 'agent-idle', claimDelayMs: delay, sleep: sleeper(held.idle) });
    const busy = scheduler(workers, { slots: 4, agentId: 'agent-busy', claimDelayMs: delay, sleep: sleeper(held.busy) });

    // The busy copy runs two jobs of the model already; the idle one none.
    await add(A, 2);
    busy.wake();
    await expect.poll(() => busy.runningOf(A)).toBe(2);
    expect(await waiting(A)).toBe(0);

    // One job announced to both: the idle copy claims at once, the busy one holds back 2 × 5 ms.
    await add(A);
    busy.wake(A);
    idle.wake(A);
    await expect.poll(() => idle.runningOf(A)).toBe(1);
    expect(held.idle).toEqual([]);
    expect(held.busy.map((claim) => claim.ms)).toEqual([10]);
    // When its delay is over the job is gone: the busy copy's claim finds nothing.
    held.busy[0]!.go();
    await expect.poll(() => started.length).toBe(3);
    expect(busy.runningOf(A)).toBe(2);

    // With nobody faster, the held-back claim takes the job once its delay has passed.
    await add(A);
    busy.wake(A);
    await expect.poll(() => held.busy.length).toBe(2);
    expect(busy.runningOf(A)).toBe(2);
    held.busy[1]!.go();
    await expect.poll(() => busy.runningOf(A)).toBe(3);
    expect(await waiting(A)).toBe(0);
  });
});
