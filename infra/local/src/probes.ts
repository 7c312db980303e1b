/**
 * What the launcher checks before and while it starts the stack, each failure worded as one
 * line naming the setting and the fix. Kept free of the apps' dependencies (no ioredis
 * here): a PING over a socket is all a reachability check needs.
 */
import { createServer, connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { listenProblem } from '@switchyard/protocol';

/** A first-run mistake: `line` says what to change; the launcher exits with `exitCode`. */
export class StartFailure extends Error {
  constructor(
    readonly line: string,
    readonly exitCode = 2,
  ) {
    super(line);
  }
}

/** Whether the API could listen there now; the problem as one line if not. */
export function portProblem(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) =>
      resolve(listenProblem(error.code, host, port) ?? `cannot listen on ${host}:${port} (${error.message}): set HOST and PORT to an address of this machine`),
    );
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

/** The URL with its password masked, for messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.password) return url;
    parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

type RedisProbeError = Error & { code?: string; kind: 'unreachable' | 'refused' | 'not-redis' | 'busy' };

function probeError(kind: RedisProbeError['kind'], message: string, code?: string): RedisProbeError {
  return Object.assign(new Error(message), { kind, ...(code !== undefined && { code }) });
}

function encodeCommand(parts: string[]): string {
  return `*${parts.length}\r\n${parts.map((part) => `$${Buffer.byteLength(part)}\r\n${part}\r\n`).join('')}`;
}

/**
 * Sends (AUTH and) PING to the Redis of `url` and resolves on PONG. Rejects with `kind`:
 * `unreachable` (nothing answers: `code` is ECONNREFUSED, ENOTFOUND, ETIMEDOUT…), `refused`
 * (Redis answered with an error, a wrong password say), `busy` (still loading its data:
 * worth waiting for) or `not-redis` (something else listens there).
 */
export function pingRedis(url: string, timeoutMs: number): Promise<void> {
  const target = new URL(url);
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const port = Number(target.port || 6379);
  const password = decodeURIComponent(target.password);
  const username = decodeURIComponent(target.username);
  const commands: string[][] = [];
  if (password) commands.push(username ? ['AUTH', username, password] : ['AUTH', password]);
  commands.push(['PING']);
  const expected = [...(password ? ['+OK'] : []), '+PONG'];

  return new Promise((resolve, reject) => {
    let settled = false;
    let socket: Socket | undefined;
    const finish = (error?: RedisProbeError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket?.destroy();
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(() => finish(probeError('unreachable', `no answer within ${timeoutMs} ms`, 'ETIMEDOUT')), timeoutMs);
    const tls = target.protocol === 'rediss:';
    socket = tls ? connectTls({ host, port, servername: host }) : connectTcp({ host, port });
    socket.once('error', (error: NodeJS.ErrnoException) => finish(probeError('unreachable', error.message, error.code ?? 'ECONNRESET')));
    socket.once(tls ? 'secureConnect' : 'connect', () => socket?.write(commands.map(encodeCommand).join('')));
    let buffer = '';
    let replies = 0;
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (line.startsWith('-LOADING')) return finish(probeError('busy', line.slice(1)));
        if (line.startsWith('-')) return finish(probeError('refused', line.slice(1)));
        if (line !== expected[replies]) return finish(probeError('not-redis', line.slice(0, 80)));
        if (++replies === expected.length) return finish();
      }
      if (buffer.length > 1_000) finish(probeError('not-redis', buffer.slice(0, 80)));
    });
    socket.once('close', () => finish(probeError('unreachable', 'the connection closed before Redis answered', 'ECONNRESET')));
  });
}

/** The one line for a Redis that did not answer PING, as the apps word it (packages/redis describeRedisError). */
export function describeRedisProblem(url: string, error: unknown): string {
  const where = redactUrl(url);
  const problem = error as Partial<RedisProbeError>;
  switch (problem.kind) {
    case 'refused':
      return /NOAUTH|WRONGPASS|invalid password|invalid username/i.test(problem.message ?? '')
        ? `Redis at ${where} refused the credentials (${problem.message}) — set REDIS_URL with the right user and password (redis://user:password@host:port)`
        : `Redis at ${where} answered with an error (${problem.message}) — fix that Redis or set REDIS_URL to another`;
    case 'not-redis':
      return `what answers at ${where} is not Redis (it said "${problem.message}") — set REDIS_URL to a Redis`;
    case 'busy':
      return `Redis at ${where} is still loading its data (${problem.message}) — wait and run again, or set START_TIMEOUT_MS higher`;
    default:
      return `cannot reach Redis at ${where}: ${problem.code ?? problem.message} — start Redis or set REDIS_URL`;
  }
}

/** Why a GET of `url` failed, in a word where there is one (ECONNREFUSED), else the message. */
function fetchFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  if ((error as Error).name === 'TimeoutError') return 'no answer within a second';
  return typeof cause?.message === 'string' ? cause.message : (error as Error).message;
}

/**
 * GETs `url` once (one second at most). Resolves with the answer, or with `failure`: why
 * nothing answered (ECONNREFUSED, a timeout…).
 */
export async function probeHttp(url: string, headers: Record<string, string> = {}): Promise<{ response?: Response; failure?: string }> {
  try {
    return { response: await fetch(url, { headers, signal: AbortSignal.timeout(1_000) }) };
  } catch (error) {
    return { failure: fetchFailure(error) };
  }
}
