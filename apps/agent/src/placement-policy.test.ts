import { describe, expect, it } from 'vitest';
import {
  displacementPays,
  needsAnotherCopy,
  planEvictions,
  residentValuePerByte,
  shouldRefill,
  shouldSpread,
  shouldUnload,
  type ResidentModel,
  type PlacementTuning,
} from './placement-policy.js';

const GB = 1e9;
const now = 1_000_000;
const tuning: PlacementTuning = {
  minResidencyMs: 60_000,
  idleUnloadMs: 600_000,
  extraCopyIdleMs: 60_000,
  maxLoaded: 0,
  recencyTauMs: 120_000,
  demandHorizonMs: 60_000,
  displacementMargin: 1,
};
const resident = (name: string, over: Partial<ResidentModel> = {}): ResidentModel => ({
  name,
  vramBytes: 5 * GB,
  inFlight: 0,
  loadedAt: now - 300_000,
  lastUsedAt: now - 100_000,
  pinned: false,
  demandPerS: 0,
  reloadMs: 3_000,
  ...over,
});

describe('planEvictions', () => {
  it('evicts nothing when the model fits in free VRAM', () => {
    expect(planEvictions(4 * GB, 10 * GB, [resident('a')], now, tuning)).toEqual({ ok: true, evict: [] });
  });

  it('never evicts a busy, pinned or freshly loaded model', () => {
    const busy = resident('busy', { inFlight: 1 });
    const pinned = resident('pinned', { pinned: true });
    const fresh = resident('fresh', { loadedAt: now - 1_000 });
    const plan = planEvictions(8 * GB, 4 * GB, [busy, pinned, fresh], now, tuning);
    expect(plan.ok).toBe(false);
    if (!plan.ok) expect(plan.reason).toMatch(/needs 8.0 GB/);
  });

  it('lets a refill nobody has used yet go at once, the minimum residency notwithstanding', () => {
    const guess = resident('guess', { loadedAt: now - 1_000, lastUsedAt: now - 1_000, speculative: true });
    expect(planEvictions(8 * GB, 4 * GB, [guess], now, tuning)).toEqual({ ok: true, evict: ['guess'] });
  });

  it('evicts first a model a peer has room for: only the requests during its reload there are lost', () => {
    const busyish = { demandPerS: 0.5, lastUsedAt: now - 2_000 };
    const stays = resident('stays', busyish);
    const moves = resident('moves', { ...busyish, demandPerS: 0.4, rehomable: true });
    expect(planEvictions(6 * GB, 2 * GB, [stays, moves], now, tuning)).toEqual({ ok: true, evict: ['moves'] });
    expect(planEvictions(6 * GB, 2 * GB, [stays, { ...moves, rehomable: false }], now, tuning)).toEqual({ ok: true, evict: ['moves'] });
    expect(planEvictions(6 * GB, 2 * GB, [{ ...stays, demandPerS: 0.3 }, moves], now, tuning)).toEqual({ ok: true, evict: ['moves'] });
    expect(
      planEvictions(
        6 * GB,
        2 * GB,
        [
          { ...stays, demandPerS: 0.3 },
          { ...moves, rehomable: false },
        ],
        now,
        tuning,
      ),
    ).toEqual({ ok: true, evict: ['stays'] });
  });

  it('evicts the least valuable idle model first: low demand, long idle, large', () => {
    const hot = resident('hot', { demandPerS: 2, lastUsedAt: now - 1_000 });
    const stale = resident('stale', { lastUsedAt: now - 900_000 });
    const plan = planEvictions(6 * GB, 2 * GB, [hot, stale], now, tuning);
    expect(plan).toEqual({ ok: true, evict: ['stale'] });
  });

  it('prefers evicting one big idle model over a small recently used one', () => {
    const big = resident('big', { vramBytes: 40 * GB, lastUsedAt: now - 200_000 });
    const small = resident('small', { vramBytes: 2 * GB, lastUsedAt: now - 200_000 });
    expect(planEvictions(10 * GB, 5 * GB, [small, big], now, tuning)).toEqual({ ok: true, evict: ['big'] });
  });

  it('drops victims that turned out unnecessary, keeping the more valuable ones', () => {
    // Per byte, the small stale model goes first; the big one alone covers the need.
    const smallStale = resident('small-stale', { vramBytes: 1 * GB, lastUsedAt: now - 900_000 });
    const big = resident('big', { vramBytes: 20 * GB, lastUsedAt: now - 100_000 });
    const smallWarm = resident('small-warm', { vramBytes: 2 * GB, lastUsedAt: now - 1_000, demandPerS: 0.1 });
    const plan = planEvictions(15 * GB, 0, [smallStale, big, smallWarm], now, tuning);
    expect(plan).toEqual({ ok: true, evict: ['big'] });
  });

  it('takes one model that covers the shortfall alone when that loses less than several', () => {
    // Three tiny stale models are cheapest per byte but together worth more than one idle mid-size model.
    const tiny = ['t1', 't2', 't3'].map((name) => resident(name, { vramBytes: 1 * GB, lastUsedAt: now - 60_000 }));
    const mid = resident('mid', { vramBytes: 4 * GB, lastUsedAt: now - 150_000 });
    const plan = planEvictions(3 * GB, 0, [...tiny, mid], now, tuning);
    expect(plan).toEqual({ ok: true, evict: ['mid'] });
  });

  it('weighs a hot model that is slow to load above its size: a reload would make every arrival during it cold', () => {
    const hotSlow = resident('hot-slow', { vramBytes: 40 * GB, demandPerS: 0.5, reloadMs: 20_000, lastUsedAt: now - 2_000 });
    const tepidSmall = resident('tepid-small', { vramBytes: 4 * GB, demandPerS: 0.5, reloadMs: 0, lastUsedAt: now - 2_000 });
    const cold = resident('cold', { vramBytes: 8 * GB, lastUsedAt: now - 600_000 });
    // Without the reload factor the big hot model would be cheapest per byte.
    expect(residentValuePerByte(hotSlow, now, tuning)).toBeGreaterThan(residentValuePerByte(tepidSmall, now, tuning) * 0.5);
    expect(planEvictions(10 * GB, 0, [hotSlow, tepidSmall, cold], now, tuning)).toEqual({ ok: true, evict: ['cold', 'tepid-small'] });
  });

  it('lets a speculative load take free VRAM only', () => {
    const stale = resident('stale', { vramBytes: 10 * GB, lastUsedAt: now - 900_000 });
    expect(planEvictions(8 * GB, 0, [stale], now, tuning, { evictable: () => false }).ok).toBe(false);
    expect(planEvictions(8 * GB, 9 * GB, [stale], now, tuning, { evictable: () => false })).toEqual({ ok: true, evict: [] });
    expect(planEvictions(8 * GB, 0, [stale], now, tuning)).toEqual({ ok: true, evict: ['stale'] });
  });

  it('respects the backend’s maximum number of loaded models', () => {
    const plan = planEvictions(1 * GB, 100 * GB, [resident('a'), resident('b', { lastUsedAt: now - 500_000 })], now, { ...tuning, maxLoaded: 2 });
    expect(plan).toEqual({ ok: true, evict: ['b'] });
  });
});

describe('displacementPays', () => {
  const hotVictim = resident('hot', { vramBytes: 18 * GB, inFlight: 0, demandPerS: 0.4, reloadMs: 7_000, lastUsedAt: now - 500 });
  const lukewarm = resident('lukewarm', { vramBytes: 18 * GB, demandPerS: 0.02, reloadMs: 7_000, lastUsedAt: now - 30_000 });
  const aging = 30_000;

  it('lets a hot starving model take the room of lukewarm ones at once', () => {
    const hot = { waiting: 8, oldestWaitMs: aging, demandPerS: 0.5, reloadMs: 20_000 };
    expect(displacementPays(hot, [lukewarm], now, tuning, aging).pays).toBe(true);
    expect(displacementPays(hot, [hotVictim], now, tuning, aging).pays).toBe(true);
  });

  it('evicts nothing of value for a model nobody has asked for lately, and anything when nothing is evicted', () => {
    const fresh = { waiting: 1, oldestWaitMs: 0, demandPerS: 0.03, reloadMs: 2_000 };
    expect(displacementPays(fresh, [hotVictim], now, tuning, aging).pays).toBe(false);
    expect(displacementPays(fresh, [resident('stale', { lastUsedAt: now - 900_000 })], now, tuning, aging).pays).toBe(true);
    expect(displacementPays(fresh, [], now, tuning, aging).pays).toBe(true);
  });

  it('asks for a margin, so two equally lukewarm models do not evict each other in turn', () => {
    const justUsed = { ...lukewarm, lastUsedAt: now };
    const twin = { waiting: 0, oldestWaitMs: 0, demandPerS: lukewarm.demandPerS, reloadMs: lukewarm.reloadMs };
    const withMargin = { ...tuning, displacementMargin: 2 };
    expect(displacementPays(twin, [justUsed], now, tuning, aging).pays).toBe(true);
    expect(displacementPays(twin, [justUsed], now, withMargin, aging).pays).toBe(false);
    expect(displacementPays({ ...twin, oldestWaitMs: 1.5 * aging }, [justUsed], now, withMargin, aging).pays).toBe(true);
  });

  it('makes a tail model with one request wait before it may evict the hot set, but not for ever', () => {
    const tail = { waiting: 1, oldestWaitMs: aging, demandPerS: 0.03, reloadMs: 2_000 };
    expect(displacementPays(tail, [hotVictim], now, tuning, aging).pays).toBe(false);
    expect(displacementPays(tail, [lukewarm], now, tuning, aging).pays).toBe(true);
    expect(displacementPays({ ...tail, oldestWaitMs: 10 * aging }, [hotVictim], now, tuning, aging).pays).toBe(true);
  });
});

describe('needsAnotherCopy', () => {
  const base = {
    copies: 1,
    freeSlotsOnCopies: 0,
    loadingCopies: 0,
    waiting: 0,
    oldestWaitMs: 0,
    expectedLoadMs: 3_000,
    serviceMs: 1_000,
    parallelPerCopy: 4,
  };

  it('warms a first copy only when work waits for it', () => {
    expect(needsAnotherCopy({ ...base, copies: 0, waiting: 1 })).toEqual({ warm: true, reason: 'no_copy', holders: 1 });
    expect(needsAnotherCopy({ ...base, copies: 0, waiting: 0 })).toEqual({ warm: false });
  });

  it('lets as many agents load a first copy at once as the waiting jobs fill, whatever the heartbeats show loading', () => {
    // 4 slots a copy: 4 waiting jobs are one copy's worth, 5 two, 12 three.
    expect(needsAnotherCopy({ ...base, copies: 0, waiting: 4 })).toMatchObject({ warm: true, holders: 1 });
    expect(needsAnotherCopy({ ...base, copies: 0, waiting: 5 })).toMatchObject({ warm: true, holders: 2 });
    expect(needsAnotherCopy({ ...base, copies: 0, waiting: 12, loadingCopies: 1 })).toEqual({ warm: true, reason: 'no_copy', holders: 3 });
    // The loads seen under way already take them: nothing to try.
    expect(needsAnotherCopy({ ...base, copies: 0, waiting: 4, loadingCopies: 1 })).toEqual({ warm: false });
    expect(needsAnotherCopy({ ...base, copies: 0, waiting: 12, loadingCopies: 3 })).toEqual({ warm: false });
  });

  it('adds a copy when the oldest job waited longer than a load, beside the loads under way only for jobs they cannot take', () => {
    expect(needsAnotherCopy({ ...base, waiting: 1, oldestWaitMs: 3_500 })).toEqual({ warm: true, reason: 'queue_too_old', holders: 1 });
    // One copy loading takes 4 of them: 5 waiting leave 1 for another copy beside it.
    expect(needsAnotherCopy({ ...base, waiting: 4, oldestWaitMs: 3_500, loadingCopies: 1 })).toEqual({ warm: false });
    expect(needsAnotherCopy({ ...base, waiting: 5, oldestWaitMs: 3_500, loadingCopies: 1 })).toEqual({ warm: true, reason: 'queue_too_old', holders: 2 });
  });

  it('does not add a copy for jobs the warm copies are about to claim', () => {
    expect(needsAnotherCopy({ ...base, waiting: 2, oldestWaitMs: 3_500, freeSlotsOnCopies: 2 })).toEqual({ warm: false });
  });

  it('adds a copy when the warm copies cannot drain the queue within a load time', () => {
    // 4 slots, 1 s per job: 16 waiting jobs take 4 s > 3 s load.
    expect(needsAnotherCopy({ ...base, waiting: 16, oldestWaitMs: 100 })).toEqual({ warm: true, reason: 'cannot_drain', holders: 1 });
    // A copy loading counts as capacity: 16 jobs on two copies take 2 s.
    expect(needsAnotherCopy({ ...base, waiting: 16, oldestWaitMs: 100, loadingCopies: 1 })).toEqual({ warm: false });
    expect(needsAnotherCopy({ ...base, waiting: 8, oldestWaitMs: 100 })).toEqual({ warm: false });
  });

  it('leaves copies before a queue forms to shouldSpread', () => {
    expect(needsAnotherCopy({ ...base, waiting: 0 })).toEqual({ warm: false });
  });
});

describe('shouldSpread', () => {
  // 4 slots a copy, 1 s a job: a copy is kept under half its slots, so each copy carries 2 arrivals a second.
  const base = { copies: 1, loadingCopies: 0, arrivalPerS: 0, serviceMs: 1_000, parallelPerCopy: 4, freeSlotsHere: 8 };

  it('adds copies in proportion to arrivals × service time, before any job waits', () => {
    expect(shouldSpread({ ...base, arrivalPerS: 2 })).toEqual({ spread: false, wanted: 1, busySlots: 2, holders: 1 });
    expect(shouldSpread({ ...base, arrivalPerS: 2.5 })).toEqual({ spread: true, wanted: 2, busySlots: 2.5, holders: 1 });
    // 9.7 arrivals a second keep 9.7 slots busy: five copies at half load; two are not enough,
    // and the three missing may load at once.
    expect(shouldSpread({ ...base, copies: 2, arrivalPerS: 9.7 })).toMatchObject({ spread: true, wanted: 5, holders: 3 });
    expect(shouldSpread({ ...base, copies: 2, loadingCopies: 2, arrivalPerS: 9.7 })).toMatchObject({ spread: true, holders: 3 });
    expect(shouldSpread({ ...base, copies: 2, loadingCopies: 3, arrivalPerS: 9.7 }).spread).toBe(false);
    expect(shouldSpread({ ...base, copies: 5, arrivalPerS: 9.7 })).toMatchObject({ spread: false, wanted: 5 });
    // A slower model asks for more copies at the same rate.
    expect(shouldSpread({ ...base, arrivalPerS: 1, serviceMs: 3_000 }).wanted).toBe(2);
  });

  it('counts the jobs running on the copies while no service time is measured, not a default', () => {
    // One job running on the only copy: no second copy, however the arrivals read.
    expect(shouldSpread({ ...base, serviceMs: undefined, arrivalPerS: 9, inFlightOnCopies: 1 })).toEqual({ spread: false, wanted: 1, busySlots: 1, holders: 1 });
    // Three of its four slots busy: past half load, a second copy.
    expect(shouldSpread({ ...base, serviceMs: undefined, arrivalPerS: 9, inFlightOnCopies: 3 })).toEqual({ spread: true, wanted: 2, busySlots: 3, holders: 1 });
    expect(shouldSpread({ ...base, serviceMs: undefined, arrivalPerS: 9 }).spread).toBe(false);
  });

  it('adds no first copy, none while the copies loading are enough, none for a model nobody asks for, none without a copy’s worth of idle slots here', () => {
    expect(shouldSpread({ ...base, copies: 0, arrivalPerS: 9 }).spread).toBe(false);
    // 9 arrivals a second at 1 s a job: five copies wanted; one warm and four loading are enough.
    expect(shouldSpread({ ...base, loadingCopies: 4, arrivalPerS: 9 }).spread).toBe(false);
    expect(shouldSpread({ ...base, arrivalPerS: 0 }).spread).toBe(false);
    expect(shouldSpread({ ...base, arrivalPerS: 9, freeSlotsHere: 3 }).spread).toBe(false);
    expect(shouldSpread({ ...base, arrivalPerS: 9, freeSlotsHere: 4 }).spread).toBe(true);
  });
});

describe('shouldUnload', () => {
  it('unloads after the idle window, never a pinned or busy model', () => {
    const idle = resident('a', { lastUsedAt: now - 700_000 });
    expect(shouldUnload(idle, now, tuning, false)).toEqual({ unload: true, reason: 'idle' });
    expect(shouldUnload({ ...idle, pinned: true }, now, tuning, false)).toEqual({ unload: false });
    expect(shouldUnload({ ...idle, inFlight: 1 }, now, tuning, false)).toEqual({ unload: false });
  });

  it('drops an extra copy sooner when another agent keeps one', () => {
    const quiet = resident('a', { lastUsedAt: now - 90_000 });
    expect(shouldUnload(quiet, now, tuning, true)).toEqual({ unload: true, reason: 'extra_copy' });
    expect(shouldUnload(quiet, now, tuning, false)).toEqual({ unload: false });
  });
});

describe('shouldRefill', () => {
  const base = { copies: 0, beingWarmed: false, lastArrivalAt: now - 30_000, now, recentMs: 120_000 };

  it('brings back a model asked for recently that no node holds', () => {
    expect(shouldRefill(base)).toBe(true);
  });

  it('leaves alone a model that has a copy, is being warmed, or was not asked for lately', () => {
    expect(shouldRefill({ ...base, copies: 1 })).toBe(false);
    expect(shouldRefill({ ...base, beingWarmed: true })).toBe(false);
    expect(shouldRefill({ ...base, lastArrivalAt: now - 130_000 })).toBe(false);
    expect(shouldRefill({ ...base, lastArrivalAt: undefined })).toBe(false);
  });
});
