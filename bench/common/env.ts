/**
 * A benchmark's numeric knob from the environment: `fallback` when unset or empty. Anything
 * that is not a finite number above `min` (or equal to it, with `orEqual`) stops the run
 * (exit 2) with one line naming the variable and what it got, rather than a NaN deep in the
 * results.
 */
export function envNumber(name: string, fallback: number, { min = 0, orEqual = false }: { min?: number; orEqual?: boolean } = {}): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || (value === min && !orEqual)) {
    console.error(`${name} must be a number ${orEqual ? '≥' : '>'} ${min}, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return value;
}
