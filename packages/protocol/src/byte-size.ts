/**
 * Byte counts written by people: `24GB`, `80 GiB`, `512MiB`, `4.9e9`.
 *
 * Decimal units (KB, MB, GB, TB) are powers of 1000 and binary units (KiB … TiB, or the bare
 * letters K, M, G, T as Docker and nvidia-smi print them) powers of 1024 — the same reading as
 * the agent's `GPU_VRAM`, so one string means one number across Switchyard.
 */

import { z } from 'zod';

const MULTIPLIERS: Readonly<Record<string, number>> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  K: 2 ** 10,
  M: 2 ** 20,
  G: 2 ** 30,
  T: 2 ** 40,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

const PATTERN = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([a-z]+)?\s*$/i;

/** Parses a byte count; throws a RangeError that says what was wrong. */
export function parseByteSize(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`not a byte size: ${value}`);
    return Math.round(value);
  }
  const match = PATTERN.exec(value);
  const unit = (match?.[2] ?? 'B').toUpperCase();
  const multiplier = MULTIPLIERS[unit];
  if (!match || multiplier === undefined) {
    throw new RangeError(`not a byte size: ${JSON.stringify(value)} (try "24GB", "24GiB" or a number of bytes)`);
  }
  return Math.round(Number(match[1]) * multiplier);
}

/** Bytes as GiB with one decimal, the way Ollama words its memory errors ("44.0 GiB"). */
export function formatGiB(bytes: number): string {
  return (bytes / 2 ** 30).toFixed(1);
}

/** Bytes as decimal GB with one decimal, as refusals and logs word VRAM needs ("48.0 GB"). */
export function formatGB(bytes: number): string {
  return (bytes / 1e9).toFixed(1);
}

/** A zod schema for a byte count in config: a number of bytes or a string such as `24GB`. */
export const ByteSize = z.union([z.number(), z.string()]).transform((value, ctx) => {
  try {
    return parseByteSize(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});
