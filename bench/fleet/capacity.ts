/**
 * What the fleet's VRAM allows, whatever the policy: references to read the warm share
 * against. For each phase of the measured day:
 *
 * - `static_warm_share`: a good static placement, found greedily — the models in order of
 *   requests per GB of VRAM, each onto the node with the least room that still holds it
 *   (best fit); requests for a model that finds no room are counted cold. Greedy is not
 *   optimal (multiple knapsack is NP-hard; a big model skipped for two small ones can be the
 *   better choice), so a static placement may do somewhat better.
 * - `static_warm_share_bound`: what no static placement can exceed — the same order, filling
 *   the fleet's total VRAM as if it were one GPU and taking a fraction of the model that
 *   overflows (the fractional-knapsack bound), counting only models some node can hold.
 *
 * Both ignore what phase changes and each model's first request cost, and a dynamic policy
 * can swap a tail model in for a burst, so neither bounds a dynamic policy strictly; they say
 * whether a warm-share target is within reach of the hardware at all.
 *
 * - `clairvoyant` and `pooled_lru`: dynamic policies on the pooled VRAM, one that knows the
 *   future and the textbook online cache — see `pooledCache`.
 */
import { round } from '../common/stats.js';
import type { NodeSpec } from './fleet-config.js';
import type { Trace } from './trace.js';

export interface CapacityReference {
  fleet_vram_gb: number;
  catalog_vram_gb: number;
  /** Share of measured requests whose model the greedy static placement of their phase holds. */
  static_warm_share: number;
  /** Share no static placement can exceed (fractional-knapsack bound over the fleet's VRAM). */
  static_warm_share_bound: number;
  /** What `pooledCache` serves warm, and the loads it makes, knowing the future (Belady) and not (LRU). */
  clairvoyant: { warm_share: number; loads: number };
  pooled_lru: { warm_share: number; loads: number };
  phases: Array<{ name: string; requests: number; placed_models: number; requests_outside: number; models_outside: string[] }>;
}

export function capacityReference(
  trace: Trace,
  nodes: readonly NodeSpec[],
  needBytes: ReadonlyMap<string, number>,
  loadSeconds: (model: string) => number,
): CapacityReference {
  let measured = 0;
  let outside = 0;
  let bound = 0;
  const phases = trace.phases.map((phase) => {
    const counts = new Map<string, number>();
    for (const request of trace.requests) {
      if (request.warmup || request.at_s < phase.start_s || request.at_s >= phase.end_s) continue;
      counts.set(request.model, (counts.get(request.model) ?? 0) + 1);
    }
    const need = (model: string) => needBytes.get(model) ?? Number.POSITIVE_INFINITY;
    const order = [...counts.keys()].sort((a, b) => (counts.get(b) ?? 0) / need(b) - (counts.get(a) ?? 0) / need(a));
    const room = nodes.map((node) => node.vram_bytes);
    const outsideModels: string[] = [];
    for (const model of order) {
      let best = -1;
      for (let index = 0; index < room.length; index++) {
        const left = room[index]! - need(model);
        if (left >= 0 && (best < 0 || left < room[best]! - need(model))) best = index;
      }
      if (best >= 0) room[best] = room[best]! - need(model);
      else outsideModels.push(model);
    }
    const largestNode = Math.max(...nodes.map((node) => node.vram_bytes));
    let roomLeft = nodes.reduce((sum, node) => sum + node.vram_bytes, 0);
    for (const model of order) {
      if (need(model) > largestNode || roomLeft <= 0) continue;
      const share = Math.min(1, roomLeft / need(model));
      bound += share * (counts.get(model) ?? 0);
      roomLeft -= share * need(model);
    }
    const requests = [...counts.values()].reduce((sum, count) => sum + count, 0);
    const requestsOutside = outsideModels.reduce((sum, model) => sum + (counts.get(model) ?? 0), 0);
    measured += requests;
    outside += requestsOutside;
    return { name: phase.name, requests, placed_models: order.length - outsideModels.length, requests_outside: requestsOutside, models_outside: outsideModels };
  });
  return {
    fleet_vram_gb: round(nodes.reduce((sum, node) => sum + node.vram_bytes, 0) / 1e9),
    catalog_vram_gb: round([...needBytes.values()].reduce((sum, bytes) => sum + bytes, 0) / 1e9),
    static_warm_share: measured === 0 ? 0 : round((measured - outside) / measured, 4),
    static_warm_share_bound: measured === 0 ? 0 : round(bound / measured, 4),
    clairvoyant: pooledCache(trace, nodes, needBytes, loadSeconds, 'furthest_next_use'),
    pooled_lru: pooledCache(trace, nodes, needBytes, loadSeconds, 'least_recently_used'),
    phases,
  };
}

/**
 * Which resident model a pooled cache evicts first: the one asked for furthest in the future
 * (Belady's rule, which needs to know the future), or the one asked for least recently.
 */
export type PooledEviction = 'furthest_next_use' | 'least_recently_used';

/**
 * The fleet's VRAM pooled as one GPU (so no model is ever kept out by how free VRAM is split
 * across nodes), run as a cache: a request for a model that is not resident loads it at once,
 * evicting residents in the `eviction` order until it fits. A load takes the model's load
 * time, and requests arriving during it are cold, as in the benchmark. Warm-up requests shape
 * the cache but are not counted.
 *
 * With `furthest_next_use` this is a policy that knows every future request. With models of
 * different sizes Belady's rule is a very good offline policy rather than a proven optimum,
 * so it is a reference, not a bound: it says what foresight buys on this trace, which no
 * online policy has. `least_recently_used` is the textbook online cache on the same terms.
 */
export function pooledCache(
  trace: Trace,
  nodes: readonly NodeSpec[],
  needBytes: ReadonlyMap<string, number>,
  loadSeconds: (model: string) => number,
  eviction: PooledEviction,
): { warm_share: number; loads: number } {
  const capacity = nodes.reduce((sum, node) => sum + node.vram_bytes, 0);
  const largestNode = Math.max(...nodes.map((node) => node.vram_bytes));
  const requests = [...trace.requests].sort((a, b) => a.at_s - b.at_s);
  // For each request, when its model is asked for next (Infinity: never again).
  const nextUse = new Array<number>(requests.length);
  const seen = new Map<string, number>();
  for (let index = requests.length - 1; index >= 0; index--) {
    const request = requests[index]!;
    nextUse[index] = seen.get(request.model) ?? Number.POSITIVE_INFINITY;
    seen.set(request.model, request.at_s);
  }
  // Per model: when it is asked for next, and when it was last asked for.
  const upcoming = new Map<string, number>();
  const lastUsed = new Map<string, number>();
  // Evict the model with the highest key first.
  const evictionKey = (model: string) => (eviction === 'furthest_next_use' ? (upcoming.get(model) ?? 0) : -(lastUsed.get(model) ?? 0));
  const readyAt = new Map<string, number>();
  let used = 0;
  let measured = 0;
  let warm = 0;
  let loads = 0;
  requests.forEach((request, index) => {
    const need = needBytes.get(request.model) ?? Number.POSITIVE_INFINITY;
    upcoming.set(request.model, nextUse[index]!);
    lastUsed.set(request.model, request.at_s);
    const ready = readyAt.get(request.model);
    if (!request.warmup) {
      measured++;
      if (ready !== undefined && ready <= request.at_s) warm++;
    }
    if (ready !== undefined || need > largestNode) return;
    while (used + need > capacity) {
      let victim: string | undefined;
      for (const model of readyAt.keys()) if (victim === undefined || evictionKey(model) > evictionKey(victim)) victim = model;
      if (victim === undefined) break; // empty: it fits (need ≤ largest node ≤ the pool)
      readyAt.delete(victim);
      used -= needBytes.get(victim)!;
    }
    readyAt.set(request.model, request.at_s + loadSeconds(request.model));
    used += need;
    if (!request.warmup) loads++;
  });
  return { warm_share: measured === 0 ? 0 : round(warm / measured, 4), loads };
}
