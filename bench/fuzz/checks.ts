/**
 * The fuzz suite's assertions: what every answer must look like, in one module (used by
 * `test/fuzz` and `bench/fuzz/run.ts` alike).
 *
 * For every case:
 * - a complete HTTP answer (no reset, no close or timeout before the answer ended);
 * - no 5xx (Redis is up, so not even `503 redis_unavailable` is acceptable);
 * - every 4xx is JSON in the documented error shape of its wire, with
 *   `X-Content-Type-Options: nosniff`, and `WWW-Authenticate` on a 401; where one field is
 *   at fault the message (or OpenAI's `param`) names it;
 * - a request that must be refused gets a 4xx, and no refused request creates a job;
 * - no admin route answers 2xx without the admin key, however the path is spelled; no
 *   route but the public ones answers 2xx without a valid key; no tenant sees another's job.
 *
 * The wire is decided from the path: `/api/*` Ollama; `/v1/chat/completions`,
 * `/v1/completions`, `/v1/models/<id>`, `/v1/embeddings` OpenAI; anything else native. A
 * target can be spelled so that its raw, decoded and normalised paths fall on different
 * wires (`/api/..%2fv1/jobs`): the answer may then be in the shape of any of them.
 */
import type { ExchangeResult, RawResponse } from './http.js';
import { header } from './http.js';
import { fill, isAdminPath, isPublicPath, type FuzzCase, type Placeholders } from './cases.js';
import { API_ERROR_STATUS } from '@switchyard/protocol';

export type Wire = 'native' | 'openai' | 'ollama';

export interface Violation {
  /** Stable id of the broken rule (`shape.wire`, `auth.admin-bypass`, …): failures group by it. */
  check: string;
  detail: string;
  /** What failures of this rule are told apart by in the findings (default: the kind of case). */
  group?: string;
}

/** The native error codes and the status each one has: the API's own table (packages/protocol). */
const NATIVE_STATUS: Readonly<Record<string, number>> = API_ERROR_STATUS;

/** OpenAI's error `type` per status (compat/openai/wire.ts `openAiErrorType`, as OpenAI documents it). */
function openAiTypeFor(status: number): string | undefined {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 400 && status < 500) return 'invalid_request_error';
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Paths.

/** Bytes of a byte string (one char per byte). */
const bytesOf = (text: string) => Buffer.from(text, 'latin1');

/** The path of a request target: absolute-form scheme and authority, query and fragment removed. */
export function pathOf(target: string): string {
  const withoutAuthority = target.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '');
  return withoutAuthority.split('#')[0]!.split('?')[0]!;
}

/** Percent-decodes a byte-string path once: valid `%XX` become bytes, the result is read as UTF-8. */
export function percentDecode(path: string): string {
  const bytes: number[] = [];
  const raw = bytesOf(path);
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i]!;
    if (byte === 0x25 && i + 2 < raw.length && /^[0-9a-f]{2}$/i.test(String.fromCharCode(raw[i + 1]!, raw[i + 2]!))) {
      bytes.push(parseInt(String.fromCharCode(raw[i + 1]!, raw[i + 2]!), 16));
      i += 2;
    } else {
      bytes.push(byte);
    }
  }
  return Buffer.from(bytes).toString('latin1');
}

const utf8 = (byteString: string) => bytesOf(byteString).toString('utf8');

/**
 * The route a lenient router, proxy or decoder could take a target for: percent-decoded
 * (repeatedly), overlong `/` and `.` decoded, backslashes as slashes, `;params` dropped,
 * full-width letters as ASCII, dot segments resolved, empty segments collapsed, lowercased,
 * trailing dots, blanks and slashes trimmed. Used to classify a target as an admin or a
 * public route — deliberately over-inclusive.
 */
export function normalizePath(target: string): string {
  let path = pathOf(target);
  for (let round = 0; round < 3; round++) {
    path = path.replace(/%c0%af|%e0%80%af/gi, '/').replace(/%c0%ae/gi, '.');
    path = percentDecode(path);
  }
  path = utf8(path)
    .replace(/[\uff01-\uff5e]/g, (char) => String.fromCharCode(char.charCodeAt(0) - 0xfee0))
    .replace(/\\/g, '/')
    .replace(/;[^/]*/g, '');
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  // Trimmed by hand: `/[\s.]+$/` backtracks quadratically on a long run of dots inside a path.
  let normalized = `/${segments.join('/')}`.toLowerCase();
  let end = normalized.length;
  while (end > 1 && /[\s\u0000./]/.test(normalized[end - 1]!)) end--;
  normalized = normalized.slice(0, end);
  return normalized;
}

export function wireOfPath(path: string): Wire {
  if (path.startsWith('/api/')) return 'ollama';
  if (path === '/v1/chat/completions' || path === '/v1/completions' || path === '/v1/embeddings') return 'openai';
  // The backlog (apps/api/src/routes/backlog.ts) is a native route under the OpenAI wire's /v1/models/*.
  if (/^\/v1\/models\/[^/]+\/backlog$/.test(path)) return 'native';
  if (path.startsWith('/v1/models/') && path.length > '/v1/models/'.length) return 'openai';
  return 'native';
}

/** The wires an answer to this target may use: from its raw, decoded and normalised path. */
export function candidateWires(target: string | undefined): Wire[] {
  if (target === undefined) return ['native'];
  const raw = pathOf(target);
  const paths = [raw, utf8(percentDecode(raw)), normalizePath(target)];
  const wires = paths.map(wireOfPath);
  // The bare `/api` is the Ollama plugin's prefix: "/api/*" does not say which wire it is on.
  if (paths.some((path) => path === '/api')) wires.push('ollama');
  return [...new Set(wires)];
}

// ---------------------------------------------------------------------------------------
// Error shapes.

type JsonObject = Record<string, unknown>;
const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);
const keysOf = (value: JsonObject) => Object.keys(value).sort().join(',');

/** Why `body` is not the documented error body of `wire` for `status`, or undefined when it is. */
export function errorShapeProblem(wire: Wire, status: number, body: unknown): string | undefined {
  if (!isObject(body)) return `not a JSON object`;
  if (keysOf(body) !== 'error') return `top-level keys {${keysOf(body)}}, expected {error}`;
  const error = body.error;
  switch (wire) {
    case 'native': {
      if (!isObject(error)) return 'error is not an object {code, message}';
      const extra = Object.keys(error).filter((key) => !['code', 'message', 'retry_after_s'].includes(key));
      if (extra.length > 0) return `error has extra keys ${extra.join(', ')}`;
      if (typeof error.code !== 'string' || !/^[a-z][a-z0-9_]*$/.test(error.code)) return `error.code ${JSON.stringify(error.code)} is not a snake_case string`;
      if (typeof error.message !== 'string' || error.message.length === 0) return 'error.message is not a non-empty string';
      if (error.retry_after_s !== undefined && typeof error.retry_after_s !== 'number') return 'error.retry_after_s is not a number';
      const expected = NATIVE_STATUS[error.code];
      if (expected !== undefined && expected !== status) return `error.code ${error.code} goes with status ${expected}, answered ${status}`;
      return undefined;
    }
    case 'openai': {
      if (!isObject(error)) return 'error is not an object {message, type, param, code}';
      for (const key of ['message', 'type', 'param', 'code']) if (!(key in error)) return `error.${key} is missing`;
      if (typeof error.message !== 'string' || error.message.length === 0) return 'error.message is not a non-empty string';
      if (typeof error.type !== 'string') return 'error.type is not a string';
      if (error.param !== null && typeof error.param !== 'string') return 'error.param is neither a string nor null';
      if (error.code !== null && typeof error.code !== 'string') return 'error.code is neither a string nor null';
      const type = openAiTypeFor(status);
      if (type !== undefined && error.type !== type && error.type !== 'insufficient_quota') return `error.type ${error.type} for status ${status}, expected ${type}`;
      return undefined;
    }
    case 'ollama':
      if (typeof error !== 'string' || error.length === 0) return 'error is not a non-empty string';
      return undefined;
  }
}

/** The human-readable parts of an error body (message, OpenAI param), for "names the field". */
function errorText(body: unknown): string {
  if (!isObject(body)) return '';
  const error = body.error;
  if (typeof error === 'string') return error;
  if (isObject(error)) return [error.message, error.param, error.code].filter((part) => typeof part === 'string').join(' ');
  return '';
}

function parseJson(response: RawResponse): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(response.body.toString('utf8')) };
  } catch {
    return { ok: false };
  }
}

// ---------------------------------------------------------------------------------------
// What admin and public answers look like (a second line of defence after the path).

export function looksLikeAdminAnswer(response: RawResponse): boolean {
  const text = response.body.subarray(0, 256 * 1024).toString('latin1');
  return (
    /^# (HELP|TYPE) /m.test(text) ||
    text.includes('"models_available"') ||
    (text.includes('"defaults"') && text.includes('"in_flight"')) ||
    /"queues"\s*:\s*\[/.test(text) ||
    /"redis_version"|"redisStats"|"used_memory/.test(text) ||
    /<title>[^<]*(queues|bull)/i.test(text) ||
    /bull-?board/i.test(text)
  );
}

function looksLikePublicAnswer(response: RawResponse): boolean {
  const text = response.body.toString('latin1');
  return /^\{"status":"(ok|ready)"/.test(text);
}

// ---------------------------------------------------------------------------------------
// The checks.

export interface Observation {
  fuzzCase: FuzzCase;
  values: Placeholders;
  /** The request target as sent (placeholders filled), if the request has one. */
  target: string | undefined;
  result: ExchangeResult;
  /** Job index keys created while the case ran. */
  jobsCreated: number;
}

const is2xx = (status: number) => status >= 200 && status < 300;
const is4xx = (status: number) => status >= 400 && status < 500;

/** Every rule the answer(s) to one case break. */
export function checkCase(observation: Observation): Violation[] {
  const { fuzzCase, result, target, values } = observation;
  const violations: Violation[] = [];
  const add = (check: string, detail: string, group?: string) => violations.push({ check, detail, ...(group !== undefined && { group }) });
  const expect = fuzzCase.expect;

  if (!result.ok) {
    add(
      `transport.${result.failure}`,
      `${result.detail}; got ${result.responses.length} complete answer(s)${result.responses.length ? ` (${result.responses.map((r) => r.status).join(', ')})` : ''}`,
    );
  }
  const methods = fuzzCase.request.kind === 'raw' ? fuzzCase.request.methods : [fuzzCase.request.method];

  const laterTargets = fuzzCase.request.kind === 'raw' ? (fuzzCase.request.laterTargets ?? []).map((later) => fill(later, values)) : [];
  result.responses.forEach((response, index) => {
    const status = response.status;
    // A pipelined later request is judged by its own target.
    const ownTarget = index === 0 ? target : (laterTargets[index - 1] ?? target);
    const wires = candidateWires(ownTarget);
    const normalized = ownTarget === undefined ? undefined : normalizePath(ownTarget);
    const isHead = methods[index]?.toUpperCase() === 'HEAD';
    const at = result.responses.length > 1 ? ` (answer ${index + 1})` : '';

    if (status >= 500) add('status.5xx', `${status}${at}: ${clipBody(response)}`);
    if (expect.status && index === 0 && !expect.status.includes(status)) add('status.unexpected', `expected ${expect.status.join('/')}, got ${status}: ${clipBody(response)}`);
    if (expect.refuse && index === 0 && !is4xx(status) && status < 500) add('refuse.accepted', `an invalid request was answered ${status}: ${clipBody(response)}`);

    if (is4xx(status)) {
      const contentType = header(response, 'content-type') ?? '';
      const wireGroup = `answer for ${wires.join('|')}`;
      if (!/^application\/json\b/i.test(contentType)) add('shape.content-type', `${status}${at} with Content-Type ${JSON.stringify(contentType)}`, wireGroup);
      if ((header(response, 'x-content-type-options') ?? '').toLowerCase() !== 'nosniff')
        add('header.nosniff', `${status}${at} without X-Content-Type-Options: nosniff`, wireGroup);
      if (status === 401 && !header(response, 'www-authenticate')) add('header.www-authenticate', `401${at} without WWW-Authenticate`, wireGroup);
      if (!isHead) {
        const parsed = parseJson(response);
        if (!parsed.ok) {
          add('shape.not-json', `${status}${at} body is not JSON: ${clipBody(response)}`, wireGroup);
        } else {
          const problems = wires.map((wire) => ({ wire, problem: errorShapeProblem(wire, status, parsed.value) }));
          if (problems.every((entry) => entry.problem !== undefined)) {
            add(
              'shape.wire',
              `${status}${at} not in the ${wires.join(' or ')} error shape (${problems.map((entry) => entry.problem).join('; ')}): ${clipBody(response)}`,
              `${wireGroup}, got ${bodyKind(parsed.value)}`,
            );
          }
          if (expect.field && index === 0) {
            const text = errorText(parsed.value).toLowerCase();
            if (!expect.field.some((name) => text.includes(name.toLowerCase())))
              add('message.names-field', `${status} message does not name ${expect.field.join(' / ')}: ${clipBody(response)}`);
          }
        }
      }
    }

    if (is2xx(status)) {
      const credential = fuzzCase.credential;
      const adminPath = normalized !== undefined && isAdminPath(normalized);
      if (credential.admin === 'no' && (adminPath || looksLikeAdminAnswer(response))) {
        add('auth.admin-bypass', `${status}${at} without the admin key (credential ${credential.name}, route ${normalized}): ${clipBody(response)}`);
      }
      if (credential.tenant === 'none' && !(normalized !== undefined && isPublicPath(normalized)) && !looksLikePublicAnswer(response) && !adminPath) {
        add('auth.unauthenticated', `${status}${at} without a valid key (credential ${credential.name}, route ${normalized}): ${clipBody(response)}`);
      }
      const text = response.body.toString('latin1');
      // Admin routes (Bull Board) show every tenant's jobs to the admin key by design.
      for (const [tenant, jobId] of adminPath
        ? []
        : ([
            ['A', values.JOB_A],
            ['B', values.JOB_B],
          ] as const)) {
        if (credential.tenant !== tenant && credential.tenant !== 'maybe' && jobId && text.includes(jobId)) {
          add('auth.tenant-isolation', `${status}${at}: tenant ${tenant}'s job ${jobId} shown to credential ${credential.name}: ${clipBody(response)}`);
        }
      }
    }
  });

  const accepted = result.responses.filter((response) => is2xx(response.status)).length;
  if (observation.jobsCreated > accepted) {
    add(
      'jobs.created-by-refused',
      `${observation.jobsCreated} job(s) created, ${accepted} request(s) accepted (statuses ${result.responses.map((r) => r.status).join(', ') || 'none'})`,
    );
  }
  return violations;
}

/** A body's top-level shape in a few characters, to tell one wrong shape from another. */
function bodyKind(value: unknown): string {
  if (!isObject(value)) return Array.isArray(value) ? 'array' : typeof value;
  const error = value.error;
  const inner = isObject(error) ? `{${Object.keys(error).sort().join(',')}}` : typeof error;
  return `{${Object.keys(value).sort().join(',')}} error=${inner}`;
}

function clipBody(response: RawResponse, max = 200): string {
  const text = response.body.subarray(0, max + 1).toString('utf8');
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}
