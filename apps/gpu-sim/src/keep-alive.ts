/**
 * Ollama's `keep_alive`: how long a model stays loaded after a request.
 *
 * - a number is seconds (fractions allowed);
 * - a string is a Go duration (`"10m"`, `"1h30m"`, `"500ms"`, `"0"`); as a convenience a bare
 *   number in a string (`"30"`) is seconds too, as `OLLAMA_KEEP_ALIVE` reads it;
 * - 0 unloads the model as soon as it is idle;
 * - any negative value means "never unload" (Ollama stores math.MaxInt64 nanoseconds).
 *
 * Values are returned in milliseconds; "forever" is `Infinity`.
 */

export const FOREVER = Number.POSITIVE_INFINITY;

/** Go's `math.MaxInt64` nanoseconds in ms: the span Ollama adds to "now" for keep_alive < 0. */
export const GO_MAX_DURATION_MS = 9_223_372_036_854.775;

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3, // U+00B5 micro sign
  'μs': 1e-3, // U+03BC Greek mu
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

export class KeepAliveError extends Error {
  override name = 'KeepAliveError';
}

/** Parses Go's `time.ParseDuration` syntax into milliseconds (may be negative). */
export function parseGoDuration(text: string): number {
  const invalid = () => new KeepAliveError(`time: invalid duration ${JSON.stringify(text)}`);
  let rest = text;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest.startsWith('-')) sign = -1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') throw invalid();
  let total = 0;
  const part = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
  while (rest.length > 0) {
    const match = part.exec(rest);
    if (!match) {
      if (/^(\d+(?:\.\d*)?|\.\d+)$/.test(rest)) throw new KeepAliveError(`time: missing unit in duration ${JSON.stringify(text)}`);
      throw invalid();
    }
    total += Number(match[1]) * (UNIT_MS[match[2] as string] ?? Number.NaN);
    rest = rest.slice(match[0].length);
  }
  if (!Number.isFinite(total)) throw invalid();
  return sign * total;
}

/** Reads a `keep_alive` value (request field, config or env) into ms; `Infinity` = forever. */
export function parseKeepAlive(value: string | number): number {
  let ms: number;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new KeepAliveError(`invalid keep_alive ${value}`);
    ms = value * 1_000;
  } else {
    const trimmed = value.trim();
    ms = /^[-+]?(\d+(\.\d*)?|\.\d+)$/.test(trimmed) ? Number(trimmed) * 1_000 : parseGoDuration(trimmed);
  }
  return ms < 0 ? FOREVER : ms;
}
