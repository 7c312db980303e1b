/**
 * A small seeded PRNG (mulberry32) so a trace is the same on every machine and Node
 * version: Math.random cannot be seeded. Independent streams come from hashing a label into
 * the seed, so adding bursts does not reshuffle the steady arrivals.
 */
import { mulberry32, type Random } from '../common/stats.js';

export type { Random };

/** FNV-1a of the label, mixed with the seed: one independent stream per purpose. */
export function stream(seed: number, label: string): Random {
  let hash = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < label.length; i++) {
    hash ^= label.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return mulberry32(hash);
}

/** Exponentially distributed gap with the given rate (events per unit). */
export function exponential(random: Random, rate: number): number {
  return -Math.log(1 - random()) / rate;
}

export function uniformInt(random: Random, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

export function shuffled<T>(items: readonly T[], random: Random): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}
