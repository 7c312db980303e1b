/**
 * Go's duration grammar (`time.ParseDuration`), which Ollama's `keep_alive` takes, and how a
 * keep_alive value reads as a span of time. The one parser of it in Switchyard: the simulator
 * arms its unload timers from it and the broker's Ollama endpoints validate bodies with it.
 *
 * A keep_alive is
 * - a number: seconds (fractions allowed);
 * - a string: a Go duration (`"10m"`, `"1h30m"`, `"500ms"`, `"0"`); as a convenience a bare
 *   number in a string (`"30"`) is seconds too, as `OLLAMA_KEEP_ALIVE` reads it;
 * - 0: unload the model as soon as it is idle;
 * - any negative value: never unload (Ollama stores math.MaxInt64 nanoseconds).
 *
 * Values are returned in milliseconds; "forever" is `Infinity`.
 */

export const FOREVER = Number.POSITIVE_INFINITY;

/** Go's `math.MaxInt64` nanoseconds in ms: the span Ollama adds to "now" for keep_alive < 0. */
export const GO_MAX_DURATION_MS = 9_223_372_036_854.775;

/** A duration or keep_alive that does not parse; the message is Go's wording where Go has one. */
export class DurationError extends Error {
  override name = 'DurationError';
}

/** Go's decimal: digits with an optional fraction, or a fraction alone (`1.`, `.5`, not `.`). */
const GO_DECIMAL = String.raw`(?:\d+(?:\.\d*)?|\.\d+)`;

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

// `ms` is tried before `m`, so "1ms" is one millisecond, not one minute and a stray "s".
const PART = new RegExp(`^(${GO_DECIMAL})(ns|us|µs|μs|ms|s|m|h)`);
const DECIMAL_ONLY = new RegExp(`^${GO_DECIMAL}$`);

function invalidDuration(text: string): DurationError {
  return new DurationError(`time: invalid duration ${JSON.stringify(text)}`);
}

/**
 * The sum of a Go duration in ms, signed. Digits too many for a double sum to ±Infinity
 * rather than failing: what that means is the caller's choice (see KeepAliveReading.overflow).
 */
function goDurationMs(text: string): number {
  let rest = text;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest.startsWith('-')) sign = -1;
    rest = rest.slice(1);
  }
  // Go's special case: a lone "0" needs no unit.
  if (rest === '0') return 0;
  if (rest === '') throw invalidDuration(text);
  let total = 0;
  while (rest.length > 0) {
    const match = PART.exec(rest);
    if (!match) {
      if (DECIMAL_ONLY.test(rest)) throw new DurationError(`time: missing unit in duration ${JSON.stringify(text)}`);
      throw invalidDuration(text);
    }
    total += Number(match[1]) * (UNIT_MS[match[2] as string] ?? Number.NaN);
    rest = rest.slice(match[0].length);
  }
  return sign * total;
}

/**
 * Parses Go's `time.ParseDuration` syntax into milliseconds (may be negative). A magnitude
 * too large for a double is invalid, as Go calls durations past its int64 range invalid
 * (Go's bound, about 292 years, is not checked here).
 */
export function parseGoDuration(text: string): number {
  const ms = goDurationMs(text);
  if (!Number.isFinite(ms)) throw invalidDuration(text);
  return ms;
}

/**
 * How a keep_alive string is read where readings differ. Numbers read the same everywhere.
 */
export interface KeepAliveReading {
  /** Whether whitespace around the string is dropped first. */
  readonly trim: boolean;
  /** Strings matching this are a number of seconds rather than a Go duration. */
  readonly seconds: RegExp;
  /** A Go duration too large for a double: an error, or a span that reads as forever. */
  readonly overflow: 'error' | 'forever';
}

/**
 * A keep_alive that sets a timer: the simulator's requests, its config, env and flags. Typed
 * by people in config files and shells, so surrounding whitespace is dropped and any decimal
 * Go accepts (`1.`, `.5`) reads as seconds; a duration too large to time is refused with Go's
 * "invalid duration" rather than armed as forever.
 */
export const KEEP_ALIVE_SETTING: KeepAliveReading = {
  trim: true,
  seconds: new RegExp(`^[-+]?${GO_DECIMAL}$`),
  overflow: 'error',
};

/**
 * A request body's keep_alive as the broker's Ollama endpoints validate it: exactly as sent
 * (Go's decoder does not trim either), and seconds only as digits with an optional fraction
 * (what the broker's error message offers). The broker records the value as a hint for the
 * fleet and arms no timer from it, so it checks the syntax only: a duration too large for a
 * double passes, reading as forever.
 */
export const KEEP_ALIVE_AS_SENT: KeepAliveReading = {
  trim: false,
  seconds: /^[-+]?\d+(?:\.\d+)?$/,
  overflow: 'forever',
};

/** Reads a `keep_alive` value into ms; `Infinity` = forever. Throws DurationError. */
export function parseKeepAlive(value: string | number, reading: KeepAliveReading = KEEP_ALIVE_SETTING): number {
  let ms: number;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new DurationError(`invalid keep_alive ${value}`);
    ms = value * 1_000;
  } else {
    const text = reading.trim ? value.trim() : value;
    if (reading.seconds.test(text)) {
      ms = Number(text) * 1_000;
    } else {
      ms = goDurationMs(text);
      if (!Number.isFinite(ms) && reading.overflow === 'error') throw invalidDuration(text);
    }
  }
  return ms < 0 ? FOREVER : ms;
}

/** Whether `value` is a keep_alive under `reading` (parseKeepAlive would not throw). */
export function isKeepAlive(value: string | number, reading: KeepAliveReading = KEEP_ALIVE_SETTING): boolean {
  try {
    parseKeepAlive(value, reading);
    return true;
  } catch (error) {
    if (error instanceof DurationError) return false;
    throw error;
  }
}
