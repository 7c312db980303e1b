/**
 * A raw HTTP/1.1 client over `node:net` for the fuzz suite: it writes exactly the bytes it
 * is given (no normalisation of the request target, duplicate headers kept, malformed
 * framing on purpose) and parses what comes back strictly enough to tell a complete answer
 * from a connection that was reset or closed mid-answer.
 *
 * One connection per exchange. An exchange succeeds when every expected response (several
 * for a pipelined write) arrived complete: status line, headers, and a body framed by
 * Content-Length, chunked encoding, or the close of the connection. Interim 1xx responses
 * (`100 Continue`) are recorded and skipped.
 */
import { connect, type Socket } from 'node:net';

export interface RawExchange {
  /** Bytes written first: request line, headers, and usually the whole body. */
  head: Buffer;
  /** Written after `head`; after the server's `100 Continue` when `waitForContinue` is set. */
  body?: Buffer;
  /** Wait for an interim `100 Continue` (or a final answer) before writing `body`. */
  waitForContinue?: boolean;
  /**
   * After head and body, keep writing `chunk` up to `times` times (with backpressure)
   * until the answer is complete: a body the server must refuse while it is still uploading.
   */
  trickle?: { chunk: Buffer; times: number };
  /** Methods of the requests written, in order: one response is expected per entry (HEAD answers have no body). */
  methods: string[];
  /** Give up after this long without a complete answer. */
  timeoutMs: number;
}

export interface RawResponse {
  httpVersion: string;
  status: number;
  reason: string;
  /** Header names lowercased; repeated headers keep every value in order. */
  headers: Record<string, string[]>;
  body: Buffer;
  /** Interim (1xx) statuses received before this response. */
  interim: number[];
}

export type ExchangeResult =
  | { ok: true; responses: RawResponse[]; ms: number }
  | { ok: false; failure: 'reset' | 'closed' | 'timeout' | 'malformed'; detail: string; responses: RawResponse[]; received: number; ms: number };

/** First value of a header, or undefined. */
export function header(response: RawResponse, name: string): string | undefined {
  return response.headers[name.toLowerCase()]?.[0];
}

class IncompleteError extends Error {}

/** Incremental parser of a byte stream of HTTP/1.1 responses. */
class ResponseParser {
  private buffer: Buffer = Buffer.alloc(0);
  private interim: number[] = [];
  readonly responses: RawResponse[] = [];

  constructor(private readonly methods: string[]) {}

  get done(): boolean {
    return this.responses.length >= this.methods.length;
  }

  get received(): number {
    return this.buffer.length;
  }

  push(data: Buffer): void {
    this.buffer = this.buffer.length === 0 ? data : Buffer.concat([this.buffer, data]);
  }

  /**
   * Parses as many complete responses as the buffer holds. `ended`: the connection closed,
   * which completes a body delimited by the close. Throws `malformed` text on bytes that
   * are not an HTTP response.
   */
  parse(ended: boolean): void {
    while (!this.done && this.buffer.length > 0) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end === -1) {
        if (this.buffer.length > 256 * 1024) throw new Error('response head longer than 256 KiB');
        return;
      }
      const headText = this.buffer.subarray(0, end).toString('latin1');
      const lines = headText.split('\r\n');
      const statusLine = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
      if (!statusLine) throw new Error(`not an HTTP status line: ${JSON.stringify((lines[0] ?? '').slice(0, 200))}`);
      const status = Number(statusLine[2]);
      const headers: Record<string, string[]> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        if (colon <= 0) throw new Error(`malformed response header line: ${JSON.stringify(line.slice(0, 200))}`);
        const name = line.slice(0, colon).trim().toLowerCase();
        (headers[name] ??= []).push(line.slice(colon + 1).trim());
      }
      const rest = this.buffer.subarray(end + 4);
      if (status >= 100 && status < 200 && status !== 101) {
        this.interim.push(status);
        this.buffer = rest;
        continue;
      }
      const method = this.methods[this.responses.length]!.toUpperCase();
      let body: Buffer;
      let consumed: number;
      try {
        ({ body, consumed } = readBody(rest, headers, method, status, ended));
      } catch (error) {
        if (error instanceof IncompleteError) return;
        throw error;
      }
      this.responses.push({ httpVersion: statusLine[1]!, status, reason: statusLine[3] ?? '', headers, body, interim: this.interim });
      this.interim = [];
      this.buffer = rest.subarray(consumed);
    }
  }
}

function readBody(rest: Buffer, headers: Record<string, string[]>, method: string, status: number, ended: boolean): { body: Buffer; consumed: number } {
  if (method === 'HEAD' || status === 204 || status === 304) return { body: Buffer.alloc(0), consumed: 0 };
  const transferEncoding = headers['transfer-encoding']?.join(',').toLowerCase();
  if (transferEncoding !== undefined && /(^|,)\s*chunked\s*$/.test(transferEncoding)) return readChunked(rest);
  const contentLength = headers['content-length'];
  if (contentLength !== undefined) {
    const values = new Set(contentLength.flatMap((value) => value.split(',').map((v) => v.trim())));
    if (values.size !== 1) throw new Error(`conflicting Content-Length headers: ${contentLength.join(', ')}`);
    const length = Number([...values][0]);
    if (!Number.isSafeInteger(length) || length < 0) throw new Error(`bad Content-Length: ${contentLength.join(', ')}`);
    if (rest.length < length) throw new IncompleteError();
    return { body: rest.subarray(0, length), consumed: length };
  }
  // Neither: the body runs to the close of the connection.
  if (!ended) throw new IncompleteError();
  return { body: rest, consumed: rest.length };
}

function readChunked(rest: Buffer): { body: Buffer; consumed: number } {
  const parts: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const lineEnd = rest.indexOf('\r\n', offset);
    if (lineEnd === -1) throw new IncompleteError();
    const sizeText = rest.subarray(offset, lineEnd).toString('latin1').split(';')[0]!.trim();
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) throw new Error(`bad chunk size line: ${JSON.stringify(sizeText.slice(0, 40))}`);
    const size = parseInt(sizeText, 16);
    offset = lineEnd + 2;
    if (size === 0) {
      // Trailers, then an empty line.
      for (;;) {
        const trailerEnd = rest.indexOf('\r\n', offset);
        if (trailerEnd === -1) throw new IncompleteError();
        const empty = trailerEnd === offset;
        offset = trailerEnd + 2;
        if (empty) return { body: Buffer.concat(parts), consumed: offset };
      }
    }
    if (rest.length < offset + size + 2) throw new IncompleteError();
    parts.push(rest.subarray(offset, offset + size));
    if (rest[offset + size] !== 0x0d || rest[offset + size + 1] !== 0x0a) throw new Error('chunk not followed by CRLF');
    offset += size + 2;
  }
}

/** Sends one exchange on a new connection and waits for its complete answer(s). */
export function exchange(port: number, request: RawExchange): Promise<ExchangeResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const parser = new ResponseParser(request.methods);
    let settled = false;
    let writeError: NodeJS.ErrnoException | undefined;
    let bodyWritten = request.body === undefined || !request.waitForContinue;
    const socket: Socket = connect({ port, host: '127.0.0.1' });
    socket.setNoDelay(true);

    const finish = (result: ExchangeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const fail = (failure: 'reset' | 'closed' | 'timeout' | 'malformed', detail: string) =>
      finish({ ok: false, failure, detail, responses: parser.responses, received: parser.received, ms: performance.now() - started });
    const check = (ended: boolean) => {
      try {
        parser.parse(ended);
      } catch (error) {
        fail('malformed', (error as Error).message);
        return;
      }
      if (parser.done) finish({ ok: true, responses: parser.responses, ms: performance.now() - started });
    };

    const timer = setTimeout(() => fail('timeout', `no complete answer within ${request.timeoutMs} ms`), request.timeoutMs);
    socket.on('data', (data: Buffer) => {
      parser.push(data);
      // An interim `100 Continue` is the go-ahead for the body.
      if (!bodyWritten && request.body) {
        const text = data.toString('latin1');
        if (/^HTTP\/1\.[01] 1\d\d/m.test(text) || /^HTTP\/1\.[01] [2-5]\d\d/m.test(text)) {
          bodyWritten = true;
          socket.write(request.body, onWriteError);
        }
      }
      check(false);
    });
    socket.on('end', () => {
      check(true);
      if (!settled) fail('closed', `connection closed after ${parser.received} bytes, ${parser.responses.length} of ${request.methods.length} answers complete`);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // Whatever arrived before the error may still be a complete answer.
      check(true);
      if (!settled)
        fail(
          error.code === 'ECONNRESET' || error.code === 'EPIPE' ? 'reset' : 'closed',
          `${error.code ?? error.message} after ${parser.received} bytes (write error: ${writeError?.code ?? 'none'})`,
        );
    });
    socket.on('close', () => {
      check(true);
      if (!settled) fail('closed', `connection closed after ${parser.received} bytes`);
    });
    const onWriteError = (error?: Error | null) => {
      if (error) writeError = error as NodeJS.ErrnoException;
    };

    socket.once('connect', () => {
      socket.write(request.head, onWriteError);
      if (request.body && bodyWritten) socket.write(request.body, onWriteError);
      if (request.trickle) void trickle(socket, request.trickle, () => settled || parser.done);
    });
  });
}

/** Writes `chunk` repeatedly, respecting backpressure, until `stop()` or `times` writes. */
async function trickle(socket: Socket, { chunk, times }: { chunk: Buffer; times: number }, stop: () => boolean): Promise<void> {
  for (let i = 0; i < times && !stop() && socket.writable; i++) {
    if (!socket.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        socket.on('drain', done);
        socket.on('close', done);
      });
    }
  }
}
