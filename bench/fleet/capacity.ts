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
  phases: Array<{ name: string; requests: number; placed_models: number; requests_outside: number; models_outside: string[] }>;
}

export function capacityReference(trace: Trace, nodes: readonly NodeSpec[], needBytes: ReadonlyMap<string, number>): CapacityReference {
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
    phases,
  };
}
