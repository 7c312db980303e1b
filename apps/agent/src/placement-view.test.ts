import { describe, expect, it } from 'vitest';
import { PlacementRelay, claimRule, type PlacementView } from './placement-view.js';

const view = (over: Partial<PlacementView> = {}): PlacementView => ({
  loadingModel: undefined,
  loadProgress: () => undefined,
  isDraining: () => false,
  usedBytes: () => 0,
  needBytes: () => ({ bytes: 0, source: 'estimate' }),
  ...over,
});

describe('the placement relay', () => {
  it('refuses reads until the lifecycle manager is attached, then reads it', () => {
    const relay = new PlacementRelay();
    expect(() => relay.usedBytes()).toThrow(/before the lifecycle manager was attached/);
    relay.attach(view({ loadingModel: 'm', usedBytes: () => 7 }));
    expect(relay.loadingModel).toBe('m');
    expect(relay.usedBytes()).toBe(7);
    expect(() => relay.attach(view())).toThrow(/already attached/);
  });
});

describe('which jobs may be claimed here', () => {
  const rule = (placement: PlacementView, backendReachable = true) =>
    claimRule({ inventory: { isLoaded: (model) => model !== 'cold', backendReachable }, placement, parallelPerCopy: 2 });

  it('takes nothing while the backend does not answer', () => {
    expect(rule(view(), false)('m', 0)).toBe(false);
    expect(rule(view(), true)('m', 0)).toBe(true);
  });

  it('takes jobs of a warm model, digest-pinned queues too, while it has a backend slot free', () => {
    const canClaim = rule(view());
    expect(canClaim('m', 0)).toBe(true);
    expect(canClaim('m@sha256-1', 1)).toBe(true);
    expect(canClaim('m', 2)).toBe(false);
    expect(canClaim('cold', 0)).toBe(false);
  });

  it('takes none of a model being loaded or about to be evicted', () => {
    expect(rule(view({ loadingModel: 'm' }))('m@sha256-1', 0)).toBe(false);
    expect(rule(view({ isDraining: (model) => model === 'm' }))('m', 0)).toBe(false);
    expect(rule(view({ isDraining: (model) => model === 'm' }))('other', 0)).toBe(true);
  });

  it('takes jobs of a warm embedding model up to the embed budget, not the backend parallel limit', () => {
    const canClaim = claimRule({
      inventory: { isLoaded: (model) => model !== 'cold-embed', backendReachable: true, isEmbeddingModel: (model) => model.endsWith('embed') },
      placement: view(),
      parallelPerCopy: 2,
      embedSlots: 64,
    });
    expect(canClaim('nomic-embed', 63)).toBe(true);
    expect(canClaim('nomic-embed', 64)).toBe(false);
    expect(canClaim('cold-embed', 0)).toBe(false);
    expect(canClaim('chat', 2)).toBe(false);
  });
});
