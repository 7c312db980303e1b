/**
 * Incremental NDJSON (newline-delimited JSON) parsing for streamed HTTP bodies.
 *
 * Network chunks do not respect line boundaries, nor UTF-8 character boundaries: a token
 * such as "é" or an emoji can arrive as two halves in two TCP segments. Decoding each chunk
 * on its own would turn those halves into U+FFFD, so one streaming TextDecoder carries the
 * partial bytes over to the next chunk.
 */

/** A line of the stream that is not valid JSON. */
export class NdjsonParseError extends Error {
  override readonly name = 'NdjsonParseError';
  constructor(
    /** 1-based line number in the stream, blank lines included. */
    readonly lineNumber: number,
    /** The offending line, truncated to keep logs readable. */
    readonly lineText: string,
    options?: ErrorOptions,
  ) {
    super(`invalid JSON on NDJSON line ${lineNumber}: ${JSON.stringify(lineText)}`, options);
  }
}

/** Error messages show at most this many characters of a bad line. */
const SHOWN_LINE_CHARS = 200;

export interface ParseNdjsonOptions {
  /**
   * Longest line accepted, in UTF-16 code units. A server that never sends a newline would
   * otherwise grow the buffer without bound. Ollama's biggest line is the final generate
   * line with its `context` token array (~1 MB at 128k context), hence the generous default.
   */
  maxLineLength?: number;
}

const DEFAULT_MAX_LINE_LENGTH = 64 * 1024 * 1024;

/**
 * Yields one parsed JSON value per non-blank line of `source`, as soon as the line is
 * complete. Accepts `\n` and `\r\n` endings and a last line without a newline. Throws
 * {@link NdjsonParseError} on a line that is not JSON; returning early (break) closes
 * `source` through its iterator's `return()`.
 */
export async function* parseNdjson(source: AsyncIterable<Uint8Array | string>, options: ParseNdjsonOptions = {}): AsyncGenerator<unknown, void, undefined> {
  const maxLineLength = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
  const decoder = new TextDecoder('utf-8');
  let pending = '';
  let lineNumber = 0;

  const parseLine = (raw: string): { blank: true } | { blank: false; value: unknown } => {
    lineNumber += 1;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return { blank: true };
    try {
      return { blank: false, value: JSON.parse(line) as unknown };
    } catch (cause) {
      const shown = line.length > SHOWN_LINE_CHARS ? `${line.slice(0, SHOWN_LINE_CHARS)}…` : line;
      throw new NdjsonParseError(lineNumber, shown, { cause });
    }
  };

  const tooLong = (): Error => new Error(`NDJSON line ${lineNumber + 1} exceeds ${maxLineLength} characters without a newline`);

  for await (const chunk of source) {
    // A string chunk after bytes: flush the decoder so a dangling partial character is not
    // glued onto unrelated text.
    const text = typeof chunk === 'string' ? decoder.decode() + chunk : decoder.decode(chunk, { stream: true });
    // Search only the new text for newlines so a long line spread over many chunks stays linear.
    let start = 0;
    let newline = text.indexOf('\n');
    while (newline !== -1) {
      const raw = pending + text.slice(start, newline);
      pending = '';
      if (raw.length > maxLineLength) throw tooLong();
      const parsed = parseLine(raw);
      if (!parsed.blank) yield parsed.value;
      start = newline + 1;
      newline = text.indexOf('\n', start);
    }
    pending += text.slice(start);
    if (pending.length > maxLineLength) throw tooLong();
  }

  pending += decoder.decode();
  if (pending !== '') {
    const parsed = parseLine(pending);
    if (!parsed.blank) yield parsed.value;
  }
}
