/**
 * The fuzz suite's case generators: the one module that says what requests are sent, used
 * by `test/fuzz` (a seeded subset in `pnpm test`) and by `bench/fuzz/run.ts` (`pnpm
 * bench:fuzz`, ten times as many). Each category is a fast-check arbitrary of small,
 * printable case descriptions; `fc.sample` with a seed derived from the run's seed and the
 * category name makes every run reproducible (`FUZZ_SEED`), and a category's cases do not
 * shift when another category's count changes.
 *
 * A case is data, not bytes: bodies are recipes (`BodySpec`) rendered only when sent, so a
 * 4 MB body costs nothing until its turn, and a failing case prints in a few lines. Keys and
 * ids the generator cannot know are placeholders (`{{KEY_A}}`, `{{JOB_A}}`, `{{HOST}}`)
 * filled in by `buildExchange` at send time.
 *
 * Request targets and header values are byte strings (one char per byte, sent as latin1),
 * so a case can put raw non-ASCII or invalid UTF-8 bytes on the wire; `utf8Bytes` turns text
 * into that form.
 */
import { METHODS } from 'node:http';
import fc from 'fast-check';
import type { RawExchange } from './http.js';

// ---------------------------------------------------------------------------------------
// Fixture: who calls, with what, about which model and jobs.

/** The model the fuzz stack's simulated node serves. */
export const MODEL = 'qwen2.5:0.5b';

/** Keys of the stack under test: two tenants and one admin key (API_KEYS, ADMIN_API_KEYS). */
export const FUZZ_KEYS = {
  tenantA: { tenant: 'fuzz-a', key: 'fuzz-tenant-a-key-6b1f0c9d2e' },
  tenantB: { tenant: 'fuzz-b', key: 'fuzz-tenant-b-key-83c4a7e510' },
  admin: { key: 'fuzz-admin-key-5d2e9a40f7c1' },
} as const;

/** Values of the placeholders a case may contain, known only once the stack runs. */
export interface Placeholders {
  /** `127.0.0.1:<port>` of the API. */
  HOST: string;
  KEY_A: string;
  KEY_B: string;
  KEY_ADMIN: string;
  /** A finished job of tenant A / tenant B. */
  JOB_A: string;
  JOB_B: string;
  MODEL: string;
  /** The BullMQ queue name of MODEL (Bull Board's `:queueName`). */
  QUEUE: string;
}

export type Category = 'routes' | 'bodies' | 'params' | 'query' | 'headers' | 'raw' | 'admin';
export const CATEGORIES: readonly Category[] = ['routes', 'bodies', 'params', 'query', 'headers', 'raw', 'admin'];

/**
 * What a request's credentials may unlock, for the auth and admin invariants:
 * - `tenant`: `none` when the request carries no valid key at all (then only public routes
 *   may answer 2xx); `maybe` when a key is presented in a way the server may or may not
 *   honour (a `?key=` on a POST, duplicate headers); otherwise the tenant the key belongs to.
 * - `admin`: `no` when the admin key is not presented in any accepted way (then no admin
 *   route may answer 2xx); `maybe` when it is (or could be).
 */
export interface CredentialEffect {
  tenant: 'A' | 'B' | 'admin' | 'maybe' | 'none';
  admin: 'maybe' | 'no';
}

export interface Credential extends CredentialEffect {
  name: string;
  headers: Array<[string, string]>;
  /** `key=…` appended to the query string. */
  query?: string;
}

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const ADMIN_KEY = FUZZ_KEYS.admin.key;

/** Every way the suite presents (or fails to present) a key. */
export const CREDENTIALS: Record<string, Credential> = Object.fromEntries(
  (
    [
      { name: 'none', headers: [], tenant: 'none', admin: 'no' },
      { name: 'bearerA', headers: [['Authorization', 'Bearer {{KEY_A}}']], tenant: 'A', admin: 'no' },
      { name: 'bearerB', headers: [['Authorization', 'Bearer {{KEY_B}}']], tenant: 'B', admin: 'no' },
      { name: 'xApiKeyA', headers: [['X-API-Key', '{{KEY_A}}']], tenant: 'A', admin: 'no' },
      { name: 'queryA', headers: [], query: 'key={{KEY_A}}', tenant: 'maybe', admin: 'no' },
      { name: 'cookieA', headers: [['Cookie', 'switchyard_key={{KEY_A}}']], tenant: 'maybe', admin: 'no' },
      { name: 'bearerAdmin', headers: [['Authorization', 'Bearer {{KEY_ADMIN}}']], tenant: 'admin', admin: 'maybe' },
      { name: 'xApiKeyAdmin', headers: [['X-API-Key', '{{KEY_ADMIN}}']], tenant: 'admin', admin: 'maybe' },
      { name: 'lowerBearerAdmin', headers: [['Authorization', 'bearer {{KEY_ADMIN}}']], tenant: 'maybe', admin: 'maybe' },
      { name: 'queryAdmin', headers: [], query: 'key={{KEY_ADMIN}}', tenant: 'maybe', admin: 'maybe' },
      { name: 'cookieAdmin', headers: [['Cookie', 'switchyard_key={{KEY_ADMIN}}']], tenant: 'maybe', admin: 'maybe' },
      {
        name: 'dupAuthBadFirst',
        headers: [
          ['Authorization', 'Bearer fuzz-not-a-key-000000'],
          ['Authorization', 'Bearer {{KEY_ADMIN}}'],
        ],
        tenant: 'maybe',
        admin: 'maybe',
      },
      {
        name: 'dupAuthTenantFirst',
        headers: [
          ['Authorization', 'Bearer {{KEY_A}}'],
          ['Authorization', 'Bearer {{KEY_ADMIN}}'],
        ],
        tenant: 'maybe',
        admin: 'maybe',
      },
      {
        name: 'dupXApiKeyA',
        headers: [
          ['X-API-Key', '{{KEY_A}}'],
          ['X-API-Key', '{{KEY_A}}'],
        ],
        tenant: 'maybe',
        admin: 'no',
      },
      { name: 'badKey', headers: [['Authorization', 'Bearer fuzz-not-a-key-000000']], tenant: 'none', admin: 'no' },
      { name: 'adminSuffix', headers: [['Authorization', 'Bearer {{KEY_ADMIN}}x']], tenant: 'none', admin: 'no' },
      { name: 'adminPrefix', headers: [['Authorization', 'Bearer x{{KEY_ADMIN}}']], tenant: 'none', admin: 'no' },
      { name: 'adminUpper', headers: [['Authorization', `Bearer ${ADMIN_KEY.toUpperCase()}`]], tenant: 'none', admin: 'no' },
      { name: 'basicAdmin', headers: [['Authorization', `Basic ${b64(`admin:${ADMIN_KEY}`)}`]], tenant: 'none', admin: 'no' },
      { name: 'basicKeyOnly', headers: [['Authorization', `Basic ${b64(ADMIN_KEY)}`]], tenant: 'none', admin: 'no' },
      { name: 'bearerNoSpace', headers: [['Authorization', 'Bearer{{KEY_ADMIN}}']], tenant: 'none', admin: 'no' },
      { name: 'bearerTwoTokens', headers: [['Authorization', 'Bearer {{KEY_A}} {{KEY_ADMIN}}']], tenant: 'maybe', admin: 'maybe' },
      { name: 'tokenScheme', headers: [['Authorization', 'Token {{KEY_ADMIN}}']], tenant: 'none', admin: 'no' },
      { name: 'emptyBearer', headers: [['Authorization', 'Bearer ']], tenant: 'none', admin: 'no' },
      { name: 'hugeBearer', headers: [['Authorization', `Bearer ${'k'.repeat(4096)}`]], tenant: 'none', admin: 'no' },
      { name: 'proxyAuthAdmin', headers: [['Proxy-Authorization', 'Bearer {{KEY_ADMIN}}']], tenant: 'none', admin: 'no' },
      { name: 'otherHeaderAdmin', headers: [['X-Admin-Key', '{{KEY_ADMIN}}']], tenant: 'none', admin: 'no' },
      { name: 'cookieBadEncoding', headers: [['Cookie', 'switchyard_key=%ZZ%']], tenant: 'none', admin: 'no' },
      {
        name: 'bearerB_cookieA',
        headers: [
          ['Authorization', 'Bearer {{KEY_B}}'],
          ['Cookie', 'switchyard_key={{KEY_A}}'],
        ],
        tenant: 'maybe',
        admin: 'no',
      },
    ] satisfies Credential[]
  ).map((credential) => [credential.name, credential]),
);

/** Credentials that must never unlock an admin route. */
export const NON_ADMIN_CREDENTIALS = Object.values(CREDENTIALS).filter((credential) => credential.admin === 'no');
const credential = (name: string): Credential => CREDENTIALS[name]!;

// ---------------------------------------------------------------------------------------
// Cases.

/** JSON values (the generator's own, printable). */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** One piece of a rendered body: `text` (UTF-8, or hex bytes) repeated `times`. */
export interface Piece {
  text: string;
  times?: number;
  hex?: boolean;
}

/**
 * A body, as a recipe:
 * - `json`: `JSON.stringify(value)`;
 * - `text`: the text as UTF-8; `hex`: exactly these bytes;
 * - `template`: `JSON.stringify(value)` in which each quoted marker string `"@@name@@"` is
 *   replaced by the concatenated pieces (raw bytes, deep nesting, huge strings and arrays,
 *   prototype keys — anything JSON.stringify would not write).
 */
export type BodySpec =
  { type: 'json'; value: Json } | { type: 'text'; text: string } | { type: 'hex'; hex: string } | { type: 'template'; value: Json; subs: Record<string, Piece[]> };

export interface HttpRequestSpec {
  kind: 'http';
  method: string;
  /** Request target as sent (byte string; placeholders allowed). */
  target: string;
  /** Headers in order, duplicates kept (byte strings; placeholders allowed). */
  headers: Array<[string, string]>;
  body?: BodySpec;
  /** Leave out the automatic headers (Host, Content-Length, Connection: close). */
  noHost?: boolean;
  noContentLength?: boolean;
  keepAlive?: boolean;
  httpVersion?: string;
  /** Send the body only after `100 Continue`. */
  waitForContinue?: boolean;
  /** After the body, keep sending `size` bytes (optionally as chunks) `times` times: a body refused while uploading. */
  trickle?: { size: number; times: number; chunked: boolean };
}

export interface RawRequestSpec {
  kind: 'raw';
  /** The whole request(s) as a byte string (placeholders allowed). */
  bytes: string;
  /** Method of each request written; one answer is expected per entry. */
  methods: string[];
  /** The request target the answer's wire is judged by (for garbage: none). */
  target?: string;
  /** Targets of the second and later pipelined requests, each judging its own answer. */
  laterTargets?: string[];
}

export interface Expectation {
  /** The request is invalid: it must be refused with a 4xx (never admitted, never a 5xx). */
  refuse?: boolean;
  /** Names of the field at fault, any of which the 4xx message (or OpenAI `param`) must contain. */
  field?: string[];
  /** Exact statuses allowed (positive controls). */
  status?: number[];
}

export interface FuzzCase {
  /** `<category>#<index>`: with the seed, enough to replay the case (FUZZ_ONLY). */
  id: string;
  category: Category;
  /** The kind of abuse, for the summary (`wrong-type`, `deep-nesting`, `encoded-letter`…). */
  label: string;
  request: HttpRequestSpec | RawRequestSpec;
  credential: CredentialEffect & { name: string };
  expect: Expectation;
}

type Draft = Omit<FuzzCase, 'id' | 'category'>;

// ---------------------------------------------------------------------------------------
// Routes (the route table of the API, walked with every method).

export interface RouteEntry {
  method: string;
  url: string;
}

/**
 * Admin routes by path: the fleet endpoints, /metrics, /admin/* (Bull Board included) —
 * except logout, which is public by design: it only ends the session its cookie names, and
 * must work for a session that already expired (docs/security.md).
 */
export function isAdminPath(path: string): boolean {
  if (isPublicPath(path)) return false;
  return path === '/v1/agents' || path === '/metrics' || path === '/admin' || path.startsWith('/admin/');
}

export function isPublicPath(path: string): boolean {
  return path === '/healthz' || path === '/readyz' || path === '/admin/logout';
}

/** Every method Node's parser knows, plus ones it does not (an unknown token, lowercase). */
export const ALL_METHODS: readonly string[] = [...METHODS, 'FOO', 'get'];
/** Methods no route is registered for that cannot change anything whoever calls. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'SEARCH', 'REPORT', 'FOO', 'get', 'CONNECT', 'M-SEARCH', 'QUERY']);

/** A concrete path for a route pattern: parameters filled with the fixture's ids. */
export function concretePath(url: string): string {
  return url
    .replace(/^\/v1\/models\/\*$/, '/v1/models/{{MODEL}}')
    .replace(/\/\*$/, '/static/js/main.js')
    .replace(/:id\b/g, '{{JOB_A}}')
    .replace(/:jobId\b/g, '{{JOB_A}}')
    .replace(/:queueName\b/g, '{{QUEUE}}')
    .replace(/:queueStatus\b/g, 'completed')
    .replace(/:schedulerId\b/g, 'fuzz-scheduler')
    .replace(/:[A-Za-z]+/g, 'fuzz');
}

// ---------------------------------------------------------------------------------------
// Bodies: the three wires' request bodies and the type of every field they read.

type JsonType = 'string' | 'number' | 'integer' | 'boolean' | 'null' | 'array' | 'object';
type Path = Array<string | number>;

interface FieldSpec {
  path: Path;
  accepts: JsonType[];
}

interface Endpoint {
  name: string;
  method: string;
  path: string;
  credential: string;
  bases: Record<string, Json>;
  /** Field specs, each with the base it applies to. */
  fields: Array<FieldSpec & { base: string }>;
}

const f = (base: string, path: Path, ...accepts: JsonType[]) => ({ base, path, accepts });
const S: JsonType = 'string';
const N: JsonType = 'number';
const I: JsonType = 'integer';
const B: JsonType = 'boolean';
const NUL: JsonType = 'null';
const A: JsonType = 'array';
const O: JsonType = 'object';

/** Native `POST /v1/jobs` (JobRequest: strict, no nulls). */
const NATIVE_JOBS: Endpoint = {
  name: 'native-jobs',
  method: 'POST',
  path: '/v1/jobs',
  credential: 'bearerA',
  bases: {
    prompt: { model: MODEL, prompt: 'fuzz', options: { num_predict: 1 } },
    messages: { model: MODEL, messages: [{ role: 'user', content: 'fuzz' }], options: { num_predict: 1 } },
  },
  fields: [
    f('prompt', ['model'], S),
    f('prompt', ['prompt'], S),
    f('prompt', ['system'], S),
    f('messages', ['messages'], A),
    f('messages', ['messages', 0], O),
    f('messages', ['messages', 0, 'role'], S),
    f('messages', ['messages', 0, 'content'], S),
    f('messages', ['messages', 0, 'images'], A),
    f('messages', ['messages', 0, 'images', 0], S),
    f('prompt', ['options'], O),
    f('prompt', ['options', 'temperature'], N),
    f('prompt', ['options', 'top_p'], N),
    f('prompt', ['options', 'top_k'], I),
    f('prompt', ['options', 'min_p'], N),
    f('prompt', ['options', 'seed'], I),
    f('prompt', ['options', 'num_predict'], I),
    f('prompt', ['options', 'num_ctx'], I),
    f('prompt', ['options', 'repeat_penalty'], N),
    f('prompt', ['options', 'stop'], A),
    f('prompt', ['options', 'stop', 0], S),
    f('prompt', ['options', 'mirostat'], N, S, B, A),
    f('prompt', ['format'], S, O),
    f('prompt', ['priority'], S),
    f('prompt', ['deadline_ms'], I),
    f('prompt', ['idempotency_key'], S),
    f('prompt', ['metadata'], O),
    f('prompt', ['metadata', 'fuzz'], S),
    f('prompt', ['detach'], B),
    f('prompt', ['digest'], S),
  ],
};

const OPENAI_SAMPLING = (base: string) => [
  f(base, ['model'], S),
  f(base, ['stream'], B, NUL),
  f(base, ['stream_options'], O, NUL),
  f(base, ['stream_options', 'include_usage'], B, NUL),
  f(base, ['max_tokens'], I, NUL),
  f(base, ['temperature'], N, NUL),
  f(base, ['top_p'], N, NUL),
  f(base, ['seed'], I, NUL),
  f(base, ['stop'], S, A, NUL),
  f(base, ['presence_penalty'], N, NUL),
  f(base, ['frequency_penalty'], N, NUL),
  f(base, ['n'], I, NUL),
  f(base, ['user'], S, NUL),
  f(base, ['metadata'], O, NUL),
  f(base, ['metadata', 'fuzz'], S),
  f(base, ['priority'], S, NUL),
  f(base, ['deadline_ms'], I, NUL),
];

const OPENAI_CHAT: Endpoint = {
  name: 'openai-chat',
  method: 'POST',
  path: '/v1/chat/completions',
  credential: 'bearerA',
  bases: { chat: { model: MODEL, messages: [{ role: 'user', content: 'fuzz' }], max_tokens: 1 } },
  fields: [
    ...OPENAI_SAMPLING('chat'),
    f('chat', ['messages'], A),
    f('chat', ['messages', 0], O),
    f('chat', ['messages', 0, 'role'], S),
    f('chat', ['messages', 0, 'content'], S, A, NUL),
    f('chat', ['messages', 0, 'name'], S, NUL),
    f('chat', ['max_completion_tokens'], I, NUL),
    f('chat', ['response_format'], O, NUL),
    f('chat', ['response_format', 'type'], S),
  ],
};

const OPENAI_COMPLETIONS: Endpoint = {
  name: 'openai-completions',
  method: 'POST',
  path: '/v1/completions',
  credential: 'bearerA',
  bases: { completion: { model: MODEL, prompt: 'fuzz', max_tokens: 1 } },
  fields: [...OPENAI_SAMPLING('completion'), f('completion', ['prompt'], S, A), f('completion', ['suffix'], S, NUL), f('completion', ['best_of'], I, NUL)],
};

const OLLAMA_COMMON = (base: string) => [
  f(base, ['model'], S),
  f(base, ['stream'], B, NUL),
  f(base, ['format'], S, O, NUL),
  f(base, ['options'], O, NUL),
  f(base, ['options', 'temperature'], N),
  f(base, ['options', 'num_predict'], I),
  f(base, ['options', 'stop'], A),
  f(base, ['keep_alive'], N, S, NUL),
  f(base, ['priority'], S, NUL),
  f(base, ['deadline_ms'], I, NUL),
];

const OLLAMA_CHAT: Endpoint = {
  name: 'ollama-chat',
  method: 'POST',
  path: '/api/chat',
  credential: 'bearerA',
  bases: { chat: { model: MODEL, messages: [{ role: 'user', content: 'fuzz' }], stream: false, options: { num_predict: 1 } } },
  fields: [
    ...OLLAMA_COMMON('chat'),
    f('chat', ['messages'], A, NUL),
    f('chat', ['messages', 0], O),
    f('chat', ['messages', 0, 'role'], S),
    f('chat', ['messages', 0, 'content'], S, NUL),
    f('chat', ['messages', 0, 'images'], A, NUL),
  ],
};

const OLLAMA_GENERATE: Endpoint = {
  name: 'ollama-generate',
  method: 'POST',
  path: '/api/generate',
  credential: 'bearerA',
  bases: { generate: { model: MODEL, prompt: 'fuzz', stream: false, options: { num_predict: 1 } } },
  fields: [...OLLAMA_COMMON('generate'), f('generate', ['prompt'], S, NUL), f('generate', ['system'], S, NUL), f('generate', ['images'], A, NUL)],
};

const OLLAMA_SHOW: Endpoint = {
  name: 'ollama-show',
  method: 'POST',
  path: '/api/show',
  credential: 'bearerA',
  bases: { show: { model: MODEL } },
  fields: [f('show', ['model'], S, NUL), f('show', ['name'], S, NUL)],
};

/** `PUT /admin/limits` with the admin key. Only bodies that fail validation are sent, so no limit ever changes. */
const ADMIN_LIMITS: Endpoint = {
  name: 'admin-limits',
  method: 'PUT',
  path: '/admin/limits',
  credential: 'bearerAdmin',
  bases: { limits: {} },
  fields: [f('limits', ['queue_depth'], I, NUL), f('limits', ['global_in_flight'], I, NUL), f('limits', [`queue_depth:${MODEL}`], I, NUL)],
};

export const BODY_ENDPOINTS: readonly Endpoint[] = [NATIVE_JOBS, OPENAI_CHAT, OPENAI_COMPLETIONS, OLLAMA_CHAT, OLLAMA_GENERATE, OLLAMA_SHOW, ADMIN_LIMITS];

/** The valid base body of each inference route (tiny `num_predict`), for the route walk and header cases. */
export const VALID_BODIES: Record<string, Json> = {
  '/v1/jobs': NATIVE_JOBS.bases.prompt!,
  '/v1/chat/completions': OPENAI_CHAT.bases.chat!,
  '/v1/completions': OPENAI_COMPLETIONS.bases.completion!,
  '/api/chat': OLLAMA_CHAT.bases.chat!,
  '/api/generate': OLLAMA_GENERATE.bases.generate!,
  '/api/show': OLLAMA_SHOW.bases.show!,
  '/admin/limits': {},
};

const SAMPLE_OF_TYPE: Record<JsonType, Json[]> = {
  string: ['x', '', 'fuzz', '1', 'true', 'null', '{}'],
  // Not integers: an integer field must refuse every one of them.
  number: [1.5, -0.25, 1234.5678],
  integer: [0, 1, -1, 7, 9007199254740991],
  boolean: [true, false],
  null: [null],
  array: [[], [1], ['x'], [[]], [{}]],
  object: [{}, { a: 1 }, { '0': 'x' }],
};

/** A value whose JSON type the field does not accept (an integer field refuses 1.5 too). */
function wrongValueFor(accepts: JsonType[]): fc.Arbitrary<Json> {
  const accepted = new Set(accepts);
  if (accepted.has('number')) accepted.add('integer');
  const wrong = (Object.keys(SAMPLE_OF_TYPE) as JsonType[]).filter((type) => !accepted.has(type));
  return fc.constantFrom(...wrong).chain((type) => fc.constantFrom(...SAMPLE_OF_TYPE[type]));
}

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** Sets `value` at `path` in a clone of `base`, creating containers on the way. */
function setAt(base: Json, path: Path, value: Json): Json {
  const root = clone(base);
  let node = root as Record<string | number, Json>;
  path.forEach((segment, index) => {
    if (index === path.length - 1) {
      node[segment] = value;
      return;
    }
    const next = path[index + 1];
    if (node[segment] === undefined || node[segment] === null || typeof node[segment] !== 'object') node[segment] = typeof next === 'number' ? [] : {};
    node = node[segment] as Record<string | number, Json>;
  });
  return root;
}

/** The names a message may use for a field: its leaf and its top-level field. */
function namesOf(path: Path): string[] {
  const names = path.filter((segment): segment is string => typeof segment === 'string');
  return [...new Set([names.at(-1), names[0]].filter((name): name is string => name !== undefined))];
}

const jsonBody = (value: Json): BodySpec => ({ type: 'json', value });
const template = (value: Json, subs: Record<string, Piece[]>): BodySpec => ({ type: 'template', value, subs });
const marker = (name: string) => `@@${name}@@`;

interface BodyDraft {
  label: string;
  body: BodySpec;
  expect: Expectation;
  contentType?: string;
  /** Sent without `Connection: close` (a body the server refuses is then read to its end, not reset). */
  keepAlive?: boolean;
}

const wrongType = (endpoint: Endpoint): fc.Arbitrary<BodyDraft> =>
  fc.constantFrom(...endpoint.fields).chain((field) =>
    wrongValueFor(field.accepts).map((value) => ({
      label: 'wrong-type',
      body: jsonBody(setAt(endpoint.bases[field.base]!, field.path, value)),
      expect: { refuse: true, field: namesOf(field.path) },
    })),
  );

/** A non-object JSON body (array, string, number, null, boolean). */
const wrongRoot = (): fc.Arbitrary<BodyDraft> =>
  fc
    .constantFrom<Json>([], [1, 2], 'x', 42, null, true, [{ model: MODEL, prompt: 'x' }])
    .map((value) => ({ label: 'non-object-body', body: jsonBody(value), expect: { refuse: true } }));

/** Text that is guaranteed not to be JSON, made from the endpoint's valid body. */
const brokenJson = (endpoint: Endpoint): fc.Arbitrary<BodyDraft> => {
  const base = JSON.stringify(Object.values(endpoint.bases)[0]);
  return (
    fc
      .oneof(
        fc.integer({ min: 1, max: base.length - 1 }).map((cut) => base.slice(0, cut)),
        fc.constantFrom('}', ',', 'x', ']', '"', '{', ':').map((tail) => base + tail),
        fc.constantFrom('x', ',', ']', ':').map((head) => head + base),
        fc.constant(base.replace('":', '"')),
        fc.constant(base.replace(/"/g, "'")),
        fc.constant(base.replace(/\}$/, ',}')),
        fc.constant(base.replace('{', '{,')),
        fc.constant(base.replace(/:"fuzz"|:1\b/, ':NaN')),
        fc.constant(base.replace(/:"fuzz"|:1\b/, ':undefined')),
        fc.constant(base.replace(/:"fuzz"|:1\b/, ':Infinity')),
        fc.constant(`/* comment */${base}`),
        fc.constant(base.replace('"fuzz"', '"fu\nzz"')),
        fc.constant(base.replace('"fuzz"', '"fu\\xzz"')),
        fc.constant(base.replace('"fuzz"', '"fu\\u12zz"')),
        fc.constant(base + base),
        fc.constant('{"a":1}{"b":2}'),
        fc.constant('\u0000'),
        fc.constant('{'.repeat(3) + '}'.repeat(2)),
        fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 40 }).map((junk) => `{${junk}`),
      )
      .filter((text) => {
        try {
          JSON.parse(text);
          return false;
        } catch {
          return true;
        }
      })
      // An empty body is Ollama's "load the model": not broken JSON there.
      .filter((text) => text.trim() !== '')
      .map((text) => ({ label: 'broken-json', body: { type: 'text', text } satisfies BodySpec, expect: { refuse: true } }))
  );
};

/** Paths of string fields of a base body where bytes can be spliced in. */
function stringFields(endpoint: Endpoint): Array<{ base: string; path: Path }> {
  return endpoint.fields.filter((field) => field.accepts.includes('string') && field.path.at(-1) !== 0).map(({ base, path }) => ({ base, path }));
}

/** Bytes that are not UTF-8, or UTF-8 of things that should not be there. */
const BAD_BYTES: Array<{ label: string; hex: string }> = [
  { label: 'invalid-utf8', hex: 'ff' },
  { label: 'invalid-utf8', hex: 'fe' },
  { label: 'invalid-utf8', hex: '80' },
  { label: 'invalid-utf8', hex: 'c3' },
  { label: 'invalid-utf8', hex: 'e282' },
  { label: 'invalid-utf8', hex: 'f0908d' },
  { label: 'overlong-utf8', hex: 'c0af' },
  { label: 'overlong-utf8', hex: 'c0ae' },
  { label: 'overlong-utf8', hex: 'e080af' },
  { label: 'overlong-utf8', hex: 'f08080af' },
  { label: 'invalid-utf8', hex: 'f4908080' },
  { label: 'lone-surrogate-bytes', hex: 'eda080' },
  { label: 'lone-surrogate-bytes', hex: 'edbfbf' },
  { label: 'nul-byte', hex: '00' },
];

const LONE_SURROGATES = ['\\ud800', '\\udfff', '\\udc00\\ud800', 'x\\ud83d', '\\ud83dx'];

const badText = (endpoint: Endpoint): fc.Arbitrary<BodyDraft> =>
  fc
    .tuple(
      fc.constantFrom(...stringFields(endpoint)),
      fc.oneof(
        fc.constantFrom(...BAD_BYTES).map((bad) => ({ ...bad, escape: false })),
        fc.constantFrom(...LONE_SURROGATES).map((text) => ({ label: 'lone-surrogate', hex: text, escape: true })),
      ),
    )
    .map(([field, bad]) => {
      const base = setAt(endpoint.bases[field.base]!, field.path, marker('s'));
      const inner: Piece[] = bad.escape ? [{ text: bad.hex }] : [{ text: bad.hex, hex: true }];
      // `model` is the one string field whose value must match a pattern: bad bytes in it are refused.
      const isModel = field.path.length === 1 && field.path[0] === 'model';
      return {
        label: bad.label,
        body: template(base, { s: [{ text: '"fu' }, ...inner, { text: 'zz"' }] }),
        expect: isModel ? { refuse: true } : {},
      };
    });

/** Where a deep structure is put, per endpoint, and whether the field takes objects at all. */
const DEEP_TARGETS: Record<string, Path[]> = {
  'native-jobs': [['format'], ['options'], ['metadata'], ['options', 'fuzz'], ['prompt'], ['messages'], ['fuzz_unknown']],
  'openai-chat': [['response_format', 'json_schema', 'schema'], ['metadata'], ['messages', 0, 'content'], ['fuzz_unknown'], ['stream_options']],
  'openai-completions': [['prompt'], ['metadata'], ['fuzz_unknown']],
  'ollama-chat': [['format'], ['options'], ['messages', 0, 'content'], ['fuzz_unknown']],
  'ollama-generate': [['format'], ['options'], ['fuzz_unknown']],
  'ollama-show': [['model'], ['fuzz_unknown']],
  'admin-limits': [['queue_depth']],
};

/**
 * JSON nested thousands deep in one field (objects or arrays). Refused on every wire: the
 * API limits the nesting depth of request bodies (the message names the field or the depth).
 */
const deepNesting = (endpoint: Endpoint): fc.Arbitrary<BodyDraft> =>
  fc
    .tuple(fc.constantFrom(...DEEP_TARGETS[endpoint.name]!), fc.constantFrom(5_000, 20_000, 100_000), fc.constantFrom('object', 'array', 'mixed'))
    .map(([path, depth, shape]) => {
      const base =
        endpoint.name === 'openai-chat' && path[0] === 'response_format'
          ? setAt(OPENAI_CHAT.bases.chat!, ['response_format'], { type: 'json_schema', json_schema: { name: 'fuzz', schema: marker('d') } })
          : setAt(Object.values(endpoint.bases)[0]!, path, marker('d'));
      const open = shape === 'object' ? '{"a":' : shape === 'array' ? '[' : '{"a":[';
      const close = shape === 'object' ? '}' : shape === 'array' ? ']' : ']}';
      return {
        label: 'deep-nesting',
        body: template(base, { d: [{ text: open, times: depth }, { text: '1' }, { text: close, times: depth }] }),
        expect: { refuse: true, field: [...namesOf(path), 'depth', 'nest', 'deep'] },
      };
    });

/** Strings and arrays far past the limits of their field (or of the body). */
const hugeValues = (endpoint: Endpoint): fc.Arbitrary<BodyDraft> => {
  const base = Object.values(endpoint.bases)[0]!;
  const huge = (label: string, path: Path, pieces: Piece[], expect: Expectation): BodyDraft => ({
    label,
    body: template(setAt(base, path, marker('h')), { h: pieces }),
    expect,
  });
  const str = (length: number, char = 'x'): Piece[] => [{ text: '"' }, { text: char, times: length }, { text: '"' }];
  const arr = (count: number, item: string): Piece[] => [{ text: '[' }, { text: `${item},`, times: count - 1 }, { text: item }, { text: ']' }];
  const byEndpoint: Record<string, BodyDraft[]> = {
    'native-jobs': [
      huge('huge-string', ['prompt'], str(1_000_001), { refuse: true, field: ['prompt'] }),
      huge('huge-string', ['system'], str(1_000_001), { refuse: true, field: ['system'] }),
      huge('huge-string', ['model'], str(10_000, 'm'), { refuse: true, field: ['model'] }),
      huge('huge-string', ['idempotency_key'], str(201), { refuse: true, field: ['idempotency_key'] }),
      huge('huge-string', ['metadata'], [{ text: '{"k":' }, ...str(1_025), { text: '}' }], { refuse: true, field: ['metadata'] }),
      huge('huge-string', ['prompt'], str(600_000, 'é'), {}),
      huge('huge-array', ['options', 'stop'], arr(100_000, '"s"'), { refuse: true, field: ['stop'] }),
      huge('huge-array', ['options', 'stop'], arr(17, '"s"'), { refuse: true, field: ['stop'] }),
      huge('huge-array', ['fuzz_unknown'], arr(200_000, '0'), { refuse: true, field: ['fuzz_unknown'] }),
      {
        label: 'huge-array',
        body: template(setAt(NATIVE_JOBS.bases.messages!, ['messages'], marker('h')), { h: arr(1_001, '{"role":"user","content":"x"}') }),
        expect: { refuse: true, field: ['messages'] },
      },
      {
        label: 'huge-array',
        body: template(setAt(NATIVE_JOBS.bases.messages!, ['messages', 0, 'images'], marker('h')), { h: arr(17, '"aGk="') }),
        expect: { refuse: true, field: ['images'] },
      },
      huge('body-too-large', ['prompt'], str(4 * 1024 * 1024 + 1), { status: [413] }),
      { ...huge('body-too-large', ['prompt'], str(4 * 1024 * 1024 + 1), { status: [413] }), keepAlive: true },
      huge('many-keys', ['metadata'], [{ text: '{' }, { text: '"k":"v",', times: 200_000 }, { text: '"z":"v"}' }], {}),
    ],
    'openai-chat': [
      huge('huge-string', ['messages', 0, 'content'], str(1_000_001), { refuse: true, field: ['content', 'messages'] }),
      huge('huge-array', ['stop'], arr(17, '"s"'), { refuse: true, field: ['stop'] }),
      huge('huge-array', ['messages'], arr(100_000, '{"role":"user","content":"x"}'), { refuse: true, field: ['messages'] }),
      huge('huge-string', ['fuzz_unknown'], str(3_000_000), {}),
      huge('body-too-large', ['fuzz_unknown'], str(4 * 1024 * 1024 + 1), { status: [413] }),
      { ...huge('body-too-large', ['fuzz_unknown'], str(4 * 1024 * 1024 + 1), { status: [413] }), keepAlive: true },
      huge('huge-string', ['model'], str(10_000, 'm'), { refuse: true, field: ['model'] }),
    ],
    'openai-completions': [
      huge('huge-string', ['prompt'], str(1_000_001), { refuse: true, field: ['prompt'] }),
      huge('huge-array', ['prompt'], arr(100_000, '"p"'), { refuse: true, field: ['prompt'] }),
      huge('body-too-large', ['prompt'], str(4 * 1024 * 1024 + 1), { status: [413] }),
    ],
    'ollama-chat': [
      huge('huge-string', ['messages', 0, 'content'], str(1_000_001), { refuse: true, field: ['content', 'messages'] }),
      huge('huge-array', ['messages'], arr(1_001, '{"role":"user","content":"x"}'), { refuse: true, field: ['messages'] }),
      huge('huge-array', ['options', 'stop'], arr(100_000, '"s"'), { refuse: true, field: ['stop', 'options'] }),
      huge('body-too-large', ['messages', 0, 'content'], str(4 * 1024 * 1024 + 1), { status: [413] }),
      { ...huge('body-too-large', ['messages', 0, 'content'], str(4 * 1024 * 1024 + 1), { status: [413] }), keepAlive: true },
      huge('many-keys', ['options'], [{ text: '{' }, { text: '"k":1,', times: 200_000 }, { text: '"z":1}' }], {}),
    ],
    'ollama-generate': [
      huge('huge-string', ['prompt'], str(1_000_001), { refuse: true, field: ['prompt'] }),
      huge('huge-array', ['images'], arr(17, '"aGk="'), { refuse: true, field: ['images'] }),
      huge('body-too-large', ['prompt'], str(4 * 1024 * 1024 + 1), { status: [413] }),
    ],
    'ollama-show': [huge('huge-string', ['model'], str(100_000, 'm'), { refuse: true, field: ['model'] })],
    'admin-limits': [huge('many-keys', ['x'], [{ text: '{' }, { text: '"queue_depth":"x",', times: 50_000 }, { text: '"z":1}' }], { refuse: true })],
  };
  return fc.constantFrom(...byEndpoint[endpoint.name]!);
};

/** `__proto__`, `constructor`, `prototype` as keys, at the top and inside nested objects. */
const prototypeKeys = (endpoint: Endpoint): fc.Arbitrary<BodyDraft> => {
  const base = Object.values(endpoint.bases)[0]!;
  const containers: Path[] = [[], ['options'], ['format'], ['metadata'], ['response_format'], ['messages', 0]];
  return fc
    .tuple(
      fc.constantFrom(...containers),
      fc.constantFrom('__proto__', 'constructor', 'prototype', '__defineGetter__', 'hasOwnProperty', 'toString', 'valueOf'),
      fc.constantFrom('{"admin":true,"tenant":"admin"}', '{"prototype":{"admin":true}}', '"x"', '1', 'null', '{}', '[]', '{"toString":1}'),
    )
    .map(([container, key, value]) => {
      const withMarker =
        container.length === 0
          ? template({ ...(base as Record<string, Json>), [marker('k')]: marker('v') }, {})
          : template(setAt(base, container, { [marker('k')]: marker('v') }), {});
      const value_ = withMarker as Extract<BodySpec, { type: 'template' }>;
      return {
        label: 'prototype-key',
        body: { ...value_, subs: { k: [{ text: JSON.stringify(key) }], v: [{ text: value }] } },
        // Top-level unknown keys are refused by the native wire (strict); elsewhere they may be ignored.
        expect: container.length === 0 && endpoint.name === 'native-jobs' ? { refuse: true, field: [key, 'prototype', '__proto__', 'constructor'] } : {},
      };
    });
};

/** A valid body sent with every kind of Content-Type (or none). */
const contentTypes = (endpoint: Endpoint): fc.Arbitrary<BodyDraft> =>
  fc
    .constantFrom(
      '',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=fuzz',
      'application/json; charset=utf-8',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
      'APPLICATION/JSON',
      'application/json, text/plain',
      'application/json;;',
      'application/vnd.api+json',
      'application/jsonx',
      '*/*',
      'application/json\u0000',
      'json',
      '\u00e9/\u00e9',
      'application/json; boundary="x',
    )
    .map((contentType) => ({ label: 'content-type', body: jsonBody(Object.values(endpoint.bases)[0]!), expect: {}, contentType: utf8Bytes(contentType) }));

/** Bodies per endpoint, weighted towards the field-by-field cases. */
function bodyDraft(endpoint: Endpoint): fc.Arbitrary<BodyDraft> {
  return fc.oneof(
    { weight: 6, arbitrary: wrongType(endpoint) },
    { weight: 1, arbitrary: wrongRoot() },
    { weight: 3, arbitrary: brokenJson(endpoint) },
    ...(stringFields(endpoint).length > 0 ? [{ weight: 2, arbitrary: badText(endpoint) }] : []),
    { weight: 2, arbitrary: deepNesting(endpoint) },
    { weight: 2, arbitrary: hugeValues(endpoint) },
    { weight: 2, arbitrary: prototypeKeys(endpoint) },
    { weight: 1, arbitrary: contentTypes(endpoint) },
  );
}

const bodiesArbitrary: fc.Arbitrary<Draft> = fc
  .constantFrom(...BODY_ENDPOINTS)
  .chain((endpoint) => bodyDraft(endpoint).map((draft) => ({ endpoint, draft })))
  .map(({ endpoint, draft }) => {
    const cred = credential(endpoint.credential);
    return {
      label: `${draft.label}${draft.keepAlive ? '-keepalive' : ''}`,
      request: {
        kind: 'http',
        method: endpoint.method,
        target: endpoint.path,
        headers: [...cred.headers, ...(draft.contentType !== '' ? [['Content-Type', draft.contentType ?? 'application/json'] as [string, string]] : [])],
        body: draft.body,
        ...(draft.keepAlive && { keepAlive: true }),
      },
      credential: effect(cred),
      expect: draft.expect,
    } satisfies Draft;
  })
  // The admin route only gets bodies that must fail validation: a valid one would change a limit.
  .filter((draft) => draft.request.target !== '/admin/limits' || draft.expect.refuse === true);

function effect(cred: Credential): FuzzCase['credential'] {
  return { name: cred.name, tenant: cred.tenant, admin: cred.admin };
}

// ---------------------------------------------------------------------------------------
// Path parameters.

/** Text as a byte string of its UTF-8 encoding (what goes on the wire). */
export function utf8Bytes(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

const PARAM_VALUES: string[] = [
  '..',
  '../..',
  '../../admin/limits',
  '..%2f..%2fadmin%2flimits',
  '..%2F..%2Fv1%2Fagents',
  '%2e%2e',
  '%2e%2e%2f%2e%2e%2fmetrics',
  '.%2e/.%2e/admin/limits',
  '%252e%252e%252f',
  '%c0%af',
  '%c0%ae%c0%ae%c0%af',
  '%e0%80%af',
  '..%c0%af..%c0%afmetrics',
  '%ff',
  '%fe%ff',
  '%',
  '%zz',
  '%0',
  '%00',
  '%0d%0aX-Injected:%201',
  '%ed%a0%80',
  '%f4%90%80%80',
  utf8Bytes('é'),
  utf8Bytes('𝕏'),
  '\u00ff\u00fe',
  '\u00c0\u00af',
  '%20',
  '+',
  ';',
  ';jsessionid=1',
  '%3b',
  '%3f',
  '%23',
  '*',
  '%2a',
  ':',
  '@',
  '~',
  '{{JOB_B}}',
  '{{JOB_A}}%00',
  '{{JOB_A}}%20',
  '{{JOB_A}}/',
  '{{JOB_A}}/..',
  '{{JOB_A}};x',
  '{{JOB_A}}.json',
  '{{JOB_A}}%2f..%2f{{JOB_B}}',
  '{{JOB_B}}%00{{JOB_A}}',
  '{{MODEL}}',
  'hf.co%2Forg%2Frepo:Q4',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
];

const LONG_LENGTHS = [256, 1_024, 8_000, 16_000, 16_385, 65_536, 102_400];

const paramValue: fc.Arbitrary<{ label: string; value: string }> = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...PARAM_VALUES).map((value) => ({ label: 'special', value })) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(...LONG_LENGTHS)
      .chain((length) =>
        fc.constantFrom('a', '%41', '../', '%2e').map((unit) => ({ label: `long-${length}`, value: unit.repeat(Math.ceil(length / unit.length)).slice(0, length) })),
      ),
  },
  {
    weight: 2,
    arbitrary: fc
      .string({ unit: 'binary', minLength: 1, maxLength: 64 })
      .map((text) => ({ label: 'random-encoded', value: encodeURIComponent(text.replace(/[\uD800-\uDFFF]/g, 'x')) })),
  },
  {
    weight: 1,
    arbitrary: fc
      .uint8Array({ minLength: 1, maxLength: 32 })
      .map((bytes) => ({ label: 'random-pct-bytes', value: [...bytes].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('') })),
  },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/).map((value) => ({ label: 'random-id', value })) },
);

const PARAM_TEMPLATES: Array<{ method: string; template: string; credential: string }> = [
  { method: 'GET', template: '/v1/jobs/{P}', credential: 'bearerA' },
  { method: 'GET', template: '/v1/jobs/{P}', credential: 'bearerB' },
  { method: 'DELETE', template: '/v1/jobs/{P}', credential: 'bearerB' },
  { method: 'GET', template: '/v1/jobs/{P}/events', credential: 'bearerA' },
  { method: 'GET', template: '/v1/jobs/{P}/events', credential: 'bearerB' },
  { method: 'HEAD', template: '/v1/jobs/{P}', credential: 'bearerA' },
  { method: 'GET', template: '/v1/models/{P}', credential: 'bearerA' },
  { method: 'GET', template: '/api/{P}', credential: 'bearerA' },
  { method: 'GET', template: '/v1/{P}', credential: 'none' },
  { method: 'GET', template: '/{P}', credential: 'none' },
  { method: 'GET', template: '/admin/queues/api/queues/{P}', credential: 'bearerA' },
  { method: 'GET', template: '/admin/queues/queue/{P}', credential: 'none' },
  { method: 'GET', template: '/admin/queues/{P}', credential: 'bearerAdmin' },
  { method: 'GET', template: '/v1/jobs/{P}/../../agents', credential: 'bearerA' },
];

const paramsArbitrary: fc.Arbitrary<Draft> = fc.tuple(fc.constantFrom(...PARAM_TEMPLATES), paramValue).map(([template, param]) => {
  const cred = credential(template.credential);
  return {
    label: `param-${param.label}`,
    request: { kind: 'http', method: template.method, target: template.template.replace('{P}', param.value), headers: [...cred.headers] },
    credential: effect(cred),
    expect: {},
  } satisfies Draft;
});

// ---------------------------------------------------------------------------------------
// Query strings.

const QUERY_TARGETS: Array<{ path: string; credential: string }> = [
  { path: '/v1/jobs/{{JOB_A}}/events', credential: 'bearerA' },
  { path: '/v1/jobs/{{JOB_A}}', credential: 'bearerA' },
  { path: '/v1/models', credential: 'bearerA' },
  { path: '/v1/models/{{MODEL}}', credential: 'bearerA' },
  { path: '/api/tags', credential: 'bearerA' },
  { path: '/healthz', credential: 'none' },
  { path: '/admin/limits', credential: 'none' },
  { path: '/v1/agents', credential: 'bearerA' },
  { path: '/metrics', credential: 'none' },
  { path: '/admin/queues/api/queues', credential: 'none' },
];

interface QueryDraft {
  label: string;
  query: string;
  expect: Expectation;
  /** Only for these paths (default: all). */
  only?: string[];
  /** The expectation holds on these paths only; elsewhere only the general invariants. */
  expectOn?: string[];
  credential?: string;
}

const EVENTS = '/v1/jobs/{{JOB_A}}/events';

const queryDraft: fc.Arbitrary<QueryDraft> = fc.oneof(
  // A parameter given twice: refused (400) naming it, never an array reaching the handler.
  fc.tuple(fc.constantFrom('0', '1', '2', 'x', ''), fc.constantFrom('0', '1', '2', '')).map(([a, b]) => ({
    label: 'repeated-param',
    query: `last_event_id=${a}&last_event_id=${b}`,
    expect: { refuse: true, field: ['last_event_id', 'Last-Event-ID'] },
    only: [EVENTS],
  })),
  fc.constantFrom('key={{KEY_A}}&key={{KEY_A}}', 'key={{KEY_A}}&key={{KEY_B}}', 'key=&key={{KEY_A}}').map((query) => ({
    label: 'repeated-param',
    query,
    expect: { refuse: true, field: ['key'] },
    credential: 'none',
    only: QUERY_TARGETS.filter((target) => !isPublicPath(target.path)).map((target) => target.path),
  })),
  fc
    .constantFrom('last_event_id[]=1', 'last_event_id[0]=1', 'last_event_id[a]=1', 'last_event_id.a=1')
    .map((query) => ({ label: 'bracket-param', query, expect: {}, only: [EVENTS] })),
  fc.constantFrom('abc', '-1', '1.5', '1e3', '0x10', ' 1', '1 ', '%00', '99999999999999999999', '__proto__', utf8Bytes('１')).map((value) => ({
    label: 'bad-last-event-id',
    query: `last_event_id=${encodeURIComponent(value)}`,
    expect: value === ' 1' || value === '1 ' ? {} : { refuse: true, field: ['last_event_id', 'Last-Event-ID'] },
    only: [EVENTS],
  })),
  fc.constantFrom(1_000, 8_000, 15_000, 20_000, 70_000).chain((length) =>
    fc.constantFrom('last_event_id', 'key', 'x').map((name) => ({
      label: `huge-value-${length}`,
      query: `${name}=${'9'.repeat(length)}`,
      expect: name === 'last_event_id' ? { refuse: true } : {},
      expectOn: [EVENTS],
    })),
  ),
  fc
    .constantFrom(
      '__proto__=1',
      '__proto__[admin]=true',
      '__proto__.admin=true',
      'constructor=x',
      'constructor[prototype][admin]=1',
      'prototype=1',
      'hasOwnProperty=1',
      'toString=x',
      'valueOf=1',
      'key[__proto__]=x',
      'key[]={{KEY_A}}',
      'key=',
      '%6bey={{KEY_A}}',
      'key={{KEY_A}}%00',
      'KEY={{KEY_A}}',
      'a=%zz',
      '%=1',
      '&&&',
      '=',
      '==',
      'a==b',
      '?a=1',
      'a=1;b=2',
      `${'p'.repeat(200)}=1`,
      Array.from({ length: 1_000 }, (_, i) => `p${i}=${i}`).join('&'),
      Array.from({ length: 3_000 }, () => 'x=1').join('&'),
    )
    .map((query) => ({ label: 'odd-query', query, expect: {} })),
  fc.string({ unit: 'binary', maxLength: 48 }).map((text) => ({
    label: 'random-query',
    query: encodeURIComponent(text.replace(/[\uD800-\uDFFF]/g, 'x'))
      .replace(/%3D/g, '=')
      .replace(/%26/g, '&'),
    expect: {},
  })),
  fc.uint8Array({ minLength: 1, maxLength: 24 }).map((bytes) => ({
    label: 'raw-query-bytes',
    query: Buffer.from(bytes)
      .toString('latin1')
      .replace(/[\s#\x00-\x1f\x7f]/g, '_'),
    expect: {},
  })),
);

const queryArbitrary: fc.Arbitrary<Draft> = fc
  .tuple(fc.constantFrom(...QUERY_TARGETS), queryDraft)
  .filter(([target, draft]) => draft.only === undefined || draft.only.includes(target.path))
  .map(([target, draft]) => {
    const cred = credential(draft.credential ?? target.credential);
    // A query credential in the draft itself (`key=`) may unlock a tenant route.
    const presentsKey = /(^|&)(key|%6bey)(\[\])?=\{\{KEY_A\}\}/.test(draft.query);
    return {
      label: draft.label,
      request: { kind: 'http', method: 'GET', target: `${target.path}?${draft.query}`, headers: [...cred.headers] },
      credential: presentsKey ? { name: `${cred.name}+query`, tenant: 'maybe', admin: cred.admin } : effect(cred),
      expect: draft.expectOn === undefined || draft.expectOn.includes(target.path) ? draft.expect : {},
    } satisfies Draft;
  });

// ---------------------------------------------------------------------------------------
// Headers.

interface HeaderDraft {
  label: string;
  method: string;
  target: string;
  headers: Array<[string, string]>;
  body?: BodySpec;
  credential: string;
  expect: Expectation;
}

const INVALID_LAST_EVENT_IDS = ['abc', '-1', '1.5', '1e3', '0x1', '99999999999999999999', '1,2', utf8Bytes('１'), '\u00ff', '+1', '__proto__', '1'.repeat(10_000)];
const INVALID_TIMEOUTS = ['', 'abc', '0', '-1', '1.5', '1e3', '86400001', '99999999999', '0x10', 'Infinity', 'NaN', '60000ms', '1'.repeat(10_000)];

/** Types a header draft where it is written (tuples stay tuples). */
const hd = (draft: HeaderDraft): HeaderDraft => draft;

const headersArbitrary: fc.Arbitrary<Draft> = fc
  .oneof(
    fc.constantFrom(...INVALID_LAST_EVENT_IDS).map((value) =>
      hd({
        label: 'last-event-id-invalid',
        method: 'GET',
        target: EVENTS,
        headers: [['Last-Event-ID', value]],
        credential: 'bearerA',
        expect: { refuse: true, field: ['Last-Event-ID'] },
      }),
    ),
    fc
      .constantFrom('0', '1', '2', '3', '100', '', ' 2 ')
      .map((value) => hd({ label: 'last-event-id-valid', method: 'GET', target: EVENTS, headers: [['Last-Event-ID', value]], credential: 'bearerA', expect: {} })),
    fc.tuple(fc.constantFrom('0', '1', 'x'), fc.constantFrom('1', '2', 'y')).map(([a, b]) =>
      hd({
        label: 'last-event-id-duplicate',
        method: 'GET',
        target: EVENTS,
        headers: [
          ['Last-Event-ID', a],
          ['Last-Event-ID', b],
        ],
        credential: 'bearerA',
        expect: { refuse: true, field: ['Last-Event-ID'] },
      }),
    ),
    fc.constantFrom(...INVALID_TIMEOUTS).map((value) =>
      hd({
        label: 'x-timeout-ms-invalid',
        method: 'POST',
        target: '/v1/jobs',
        headers: [['X-Timeout-Ms', value]],
        body: jsonBody(VALID_BODIES['/v1/jobs']!),
        credential: 'bearerA',
        expect: { refuse: true, field: ['X-Timeout-Ms'] },
      }),
    ),
    fc.tuple(fc.constantFrom('60000', '86400000', 'x'), fc.constantFrom('70000', '')).map(([a, b]) =>
      hd({
        label: 'x-timeout-ms-duplicate',
        method: 'POST',
        target: '/v1/jobs',
        headers: [
          ['X-Timeout-Ms', a],
          ['X-Timeout-Ms', b],
        ],
        body: jsonBody(VALID_BODIES['/v1/jobs']!),
        credential: 'bearerA',
        expect: { refuse: true, field: ['X-Timeout-Ms'] },
      }),
    ),
    // Large valid deadlines only: a tiny one would race the job's start.
    fc.constantFrom('60000', '86400000', ' 60000 ').map((value) =>
      hd({
        label: 'x-timeout-ms-valid',
        method: 'POST',
        target: '/v1/jobs',
        headers: [['X-Timeout-Ms', value]],
        body: jsonBody(VALID_BODIES['/v1/jobs']!),
        credential: 'bearerA',
        expect: {},
      }),
    ),
    fc.tuple(fc.constantFrom('/v1/chat/completions', '/api/generate', '/v1/completions'), fc.constantFrom(...INVALID_TIMEOUTS.slice(0, 6))).map(([target, value]) =>
      hd({
        label: 'x-timeout-ms-compat',
        method: 'POST',
        target,
        headers: [['X-Timeout-Ms', value]],
        body: jsonBody(VALID_BODIES[target]!),
        credential: 'bearerA',
        expect: {},
      }),
    ),
    // Every credential variant on routes of every access level.
    fc
      .tuple(
        fc.constantFrom(...Object.keys(CREDENTIALS)),
        fc.constantFrom<[string, string]>(
          ['GET', '/v1/models'],
          ['GET', '/v1/jobs/{{JOB_A}}'],
          ['GET', '/v1/jobs/{{JOB_B}}'],
          ['POST', '/v1/jobs'],
          ['POST', '/v1/chat/completions'],
          ['POST', '/api/chat'],
          ['GET', '/api/tags'],
          ['GET', '/api/version'],
          ['GET', '/v1/agents'],
          ['GET', '/metrics'],
          ['GET', '/admin/limits'],
          ['GET', '/admin/queues/api/queues'],
          ['GET', '/healthz'],
          ['DELETE', '/v1/jobs/{{JOB_B}}'],
        ),
      )
      .map(([name, [method, target]]) => {
        const cred = credential(name);
        return {
          label: `credential-${name}`,
          method,
          target: cred.query ? `${target}?${cred.query}` : target,
          headers: [],
          ...(method === 'POST' && { body: jsonBody(VALID_BODIES[target]!) }),
          credential: name,
          expect: {},
        };
      }),
    // Huge and many headers: under Node's 16 KiB limit they are read, past it refused with 431.
    fc
      .tuple(fc.constantFrom(1_000, 8_000, 15_000, 17_000, 40_000, 100_000), fc.constantFrom('X-Fuzz', 'Authorization', 'Last-Event-ID', 'Cookie', 'Content-Type'))
      .map(([size, name]) =>
        hd({
          label: `huge-header-${size}`,
          method: 'GET',
          target: name === 'Last-Event-ID' ? EVENTS : '/v1/models',
          headers: [[name, name === 'Authorization' ? `Bearer ${'k'.repeat(size)}` : name === 'Cookie' ? `switchyard_key=${'k'.repeat(size)}` : '1'.repeat(size)]],
          credential: name === 'Authorization' ? 'none' : 'bearerA',
          expect: size > 16_000 ? { status: [431] } : {},
        }),
      ),
    fc.constantFrom(50, 150, 400, 2_100).map((count) =>
      hd({
        label: `many-headers-${count}`,
        method: 'GET',
        target: '/v1/models',
        headers: Array.from({ length: count }, (_, i) => [`X-Fuzz-${i}`, 'v'.repeat(20)] as [string, string]),
        credential: 'bearerA',
        expect: {},
      }),
    ),
    // Content-Type (and framing headers) on requests that have no body.
    fc
      .tuple(
        fc.constantFrom<[string, string]>(
          ['GET', '/v1/models'],
          ['DELETE', '/v1/jobs/{{JOB_A}}'],
          ['DELETE', '/v1/jobs/fuzz-missing'],
          ['GET', '/api/tags'],
          ['HEAD', '/v1/jobs/{{JOB_A}}'],
          ['GET', EVENTS],
          ['GET', '/v1/models/{{MODEL}}'],
          ['GET', '/healthz'],
        ),
        fc.constantFrom<Array<[string, string]>>(
          [['Content-Type', 'application/json']],
          [
            ['Content-Type', 'application/json'],
            ['Content-Length', '0'],
          ],
          [['Content-Type', 'text/plain']],
          [['Content-Type', 'application/x-www-form-urlencoded']],
          [['Content-Type', '']],
          [['Content-Type', 'multipart/form-data']],
          [
            ['Content-Type', 'application/json'],
            ['Transfer-Encoding', 'chunked'],
          ],
        ),
      )
      .map(([[method, target], headers]) =>
        hd({
          label: 'content-type-no-body',
          method,
          target,
          headers,
          ...(headers.some(([name]) => name === 'Transfer-Encoding') && { body: { type: 'text', text: '0\r\n\r\n' } satisfies BodySpec }),
          credential: 'bearerA',
          expect: {},
        }),
      ),
    // Other headers a client or proxy may send.
    fc
      .constantFrom<Array<[string, string]>>(
        [['Host', 'evil.example']],
        [['Host', '']],
        [['Host', 'a b']],
        [['Host', '[::1]:99999']],
        [
          ['X-Forwarded-For', '127.0.0.1'],
          ['X-Forwarded-Host', 'evil'],
        ],
        [['X-Forwarded-Proto', 'javascript']],
        [['Accept', 'text/html']],
        [['Accept', 'text/event-stream']],
        [['Accept-Encoding', 'gzip, br']],
        [
          ['Connection', 'upgrade'],
          ['Upgrade', 'websocket'],
        ],
        [['Connection', 'keep-alive, close']],
        [['TE', 'trailers']],
        [['Range', 'bytes=0-1']],
        [['If-None-Match', '*']],
        [['Origin', 'http://evil.example']],
        [['X-HTTP-Method-Override', 'DELETE']],
        [['X-Original-URL', '/v1/agents']],
        [['X-Rewrite-URL', '/admin/limits']],
        [['X-Fuzz', utf8Bytes('é\u0000')]],
        [['X-Fuzz', '\u00ff\u00fe']],
      )
      .chain((headers) =>
        fc.constantFrom<[string, string]>(['GET', '/v1/models'], ['GET', '/v1/jobs/{{JOB_A}}'], ['GET', '/healthz']).map(([method, target]) =>
          hd({
            label: 'other-header',
            method,
            target,
            headers,
            credential: 'bearerA',
            expect: {},
          }),
        ),
      ),
    fc.constantFrom<[string, string]>(['GET', '/v1/agents'], ['GET', '/metrics'], ['GET', '/admin/limits']).chain(([method, target]) =>
      fc.constantFrom<Array<[string, string]>>([['X-Original-URL', '/healthz']], [['X-Rewrite-URL', '/healthz']], [['X-HTTP-Method-Override', 'GET']]).map((headers) =>
        hd({
          label: 'rewrite-header',
          method,
          target,
          headers,
          credential: 'none',
          expect: {},
        }),
      ),
    ),
  )
  .map((draft) => {
    const cred = credential(draft.credential);
    const hasHost = draft.headers.some(([name]) => name.toLowerCase() === 'host');
    return {
      label: draft.label,
      request: {
        kind: 'http',
        method: draft.method,
        target: draft.target,
        headers: [
          ...cred.headers,
          ...draft.headers,
          ...(draft.body && !draft.headers.some(([name]) => name === 'Content-Type') ? [['Content-Type', 'application/json'] as [string, string]] : []),
        ],
        ...(draft.body && { body: draft.body }),
        ...(hasHost && { noHost: true }),
        ...(draft.headers.some(([name]) => name === 'Transfer-Encoding' || name === 'Content-Length') && { noContentLength: true }),
      },
      credential: effect(cred),
      expect: draft.expect,
    } satisfies Draft;
  });

// ---------------------------------------------------------------------------------------
// Raw socket abuse.

const CRLF = '\r\n';
const HOST_LINE = `Host: {{HOST}}${CRLF}`;
const VALID_JOB = JSON.stringify(VALID_BODIES['/v1/jobs']);
const AUTH_A = `Authorization: Bearer {{KEY_A}}${CRLF}`;

const raw = (label: string, bytes: string, target?: string, methods = ['GET'], expect: Expectation = {}, laterTargets?: string[]): Draft => ({
  label,
  request: { kind: 'raw', bytes, methods, ...(target !== undefined && { target }), ...(laterTargets && { laterTargets }) },
  credential: { name: bytes.includes('{{KEY_A}}') ? 'bearerA' : 'none', tenant: bytes.includes('{{KEY_A}}') ? 'A' : 'none', admin: 'no' },
  expect,
});

const get = (target: string, extra = '', version = 'HTTP/1.1') => `GET ${target} ${version}${CRLF}${HOST_LINE}${extra}Connection: close${CRLF}${CRLF}`;
const postJob = (framing: string, body: string, extra = '') =>
  `POST /v1/jobs HTTP/1.1${CRLF}${HOST_LINE}${AUTH_A}Content-Type: application/json${CRLF}${extra}${framing}Connection: close${CRLF}${CRLF}${body}`;
const chunk = (text: string) => `${Buffer.byteLength(text, 'latin1').toString(16)}${CRLF}${text}${CRLF}`;

/** Fixed raw abuses: each is one case, in every run. */
export const RAW_CASES: readonly Draft[] = [
  raw('malformed-request-line', `GARBAGE${CRLF}${CRLF}`),
  // Empty lines before a request line may be ignored (RFC 9112 §2.2): this one must still be answered.
  raw('malformed-request-line', `${CRLF}${CRLF}${get('/healthz')}`, '/healthz', ['GET'], { status: [200] }),
  raw('malformed-request-line', `${CRLF}${CRLF}GARBAGE${CRLF}${CRLF}`),
  raw('malformed-request-line', `GET${CRLF}${CRLF}`),
  raw('malformed-request-line', `GET /healthz${CRLF}${CRLF}`, '/healthz'),
  raw('malformed-request-line', `GET /healthz HTTP/1.1 extra${CRLF}${HOST_LINE}${CRLF}`, '/healthz'),
  raw('malformed-request-line', `GET  /healthz HTTP/1.1${CRLF}${HOST_LINE}${CRLF}`, '/healthz'),
  raw('malformed-request-line', `GET /heal thz HTTP/1.1${CRLF}${HOST_LINE}${CRLF}`, '/heal'),
  raw('malformed-request-line', `GET /healthz HTTP/1.1\n${HOST_LINE.replace(CRLF, '\n')}\n`, '/healthz'),
  raw('malformed-request-line', `GET /healthz HTTP/1.1\r${HOST_LINE}${CRLF}`, '/healthz'),
  raw('malformed-request-line', `GET /healthz HTTP/2.0${CRLF}${HOST_LINE}${CRLF}`, '/healthz'),
  raw('malformed-request-line', `GET /healthz HTTP/1.2${CRLF}${HOST_LINE}${CRLF}`, '/healthz'),
  raw('malformed-request-line', `GET /healthz HTTP/9.9${CRLF}${HOST_LINE}${CRLF}`, '/healthz'),
  raw('malformed-request-line', `GET /healthz FTP/1.1${CRLF}${HOST_LINE}${CRLF}`, '/healthz'),
  raw('malformed-request-line', `get /healthz HTTP/1.1${CRLF}${HOST_LINE}${CRLF}`, '/healthz'),
  raw('malformed-request-line', `G\u0000ET /healthz HTTP/1.1${CRLF}${HOST_LINE}${CRLF}`, '/healthz'),
  raw('malformed-request-line', `GET /health\u0000z HTTP/1.1${CRLF}${HOST_LINE}${CRLF}`, '/healthz'),
  raw('malformed-request-line', `GET /v1/jobs/\u007f HTTP/1.1${CRLF}${HOST_LINE}${CRLF}`, '/v1/jobs/'),
  raw('malformed-request-line', `GET /v1/jobs/\u00ff\u00fe HTTP/1.1${CRLF}${HOST_LINE}${AUTH_A}${CRLF}`, '/v1/jobs/x'),
  raw('malformed-request-line', `\u0016\u0003\u0001\u0000\u00a5\u0001\u0000\u0000\u00a1\u0003\u0003${CRLF}${CRLF}`),
  raw('malformed-request-line', `PRI * HTTP/2.0${CRLF}${CRLF}SM${CRLF}${CRLF}`, undefined, ['PRI']),
  raw('asterisk-form', `OPTIONS * HTTP/1.1${CRLF}${HOST_LINE}${CRLF}`, '*', ['OPTIONS']),
  raw('asterisk-form', `GET * HTTP/1.1${CRLF}${HOST_LINE}${CRLF}`, '*'),
  raw('connect', `CONNECT 127.0.0.1:6379 HTTP/1.1${CRLF}Host: 127.0.0.1:6379${CRLF}${CRLF}`, undefined, ['CONNECT']),
  raw('connect', `CONNECT {{HOST}} HTTP/1.1${CRLF}${HOST_LINE}${CRLF}`, undefined, ['CONNECT']),
  raw('connect', `CONNECT /v1/agents HTTP/1.1${CRLF}${HOST_LINE}${CRLF}`, '/v1/agents', ['CONNECT']),
  raw('bad-header', `GET /healthz HTTP/1.1${CRLF}${HOST_LINE}Bad Header Line${CRLF}${CRLF}`, '/healthz'),
  raw('bad-header', `GET /healthz HTTP/1.1${CRLF}Host : {{HOST}}${CRLF}${CRLF}`, '/healthz'),
  raw('bad-header', `GET /healthz HTTP/1.1${CRLF}${HOST_LINE}X-Fold: a${CRLF}  folded${CRLF}${CRLF}`, '/healthz'),
  raw('bad-header', `GET /healthz HTTP/1.1${CRLF}${HOST_LINE}X\u0000A: 1${CRLF}${CRLF}`, '/healthz'),
  raw('bad-header', `GET /healthz HTTP/1.1${CRLF}${HOST_LINE}X-A: 1\u0000${CRLF}${CRLF}`, '/healthz'),
  raw('bad-header', `GET /healthz HTTP/1.1${CRLF}${HOST_LINE}X-A: a\rb${CRLF}${CRLF}`, '/healthz'),
  raw('bad-header', `GET /healthz HTTP/1.1${CRLF}${HOST_LINE}: empty-name${CRLF}${CRLF}`, '/healthz'),
  raw('bad-header', `GET /v1/models HTTP/1.1${CRLF}${HOST_LINE}Authorization: Bearer {{KEY_A}}\u0000${CRLF}${CRLF}`, '/v1/models'),
  raw('missing-host', `GET /healthz HTTP/1.1${CRLF}${CRLF}`, '/healthz'),
  raw('missing-host', `GET /v1/models HTTP/1.1${CRLF}${AUTH_A}${CRLF}`, '/v1/models'),
  raw('missing-host', `POST /v1/jobs HTTP/1.1${CRLF}${AUTH_A}Content-Type: application/json${CRLF}Content-Length: ${VALID_JOB.length}${CRLF}${CRLF}${VALID_JOB}`, '/v1/jobs', [
    'POST',
  ]),
  raw('http10', `GET /healthz HTTP/1.0${CRLF}${CRLF}`, '/healthz'),
  raw('http10', `GET /healthz HTTP/1.0${CRLF}${HOST_LINE}${CRLF}`, '/healthz', ['GET'], { status: [200] }),
  raw('http10', `GET /v1/agents HTTP/1.0${CRLF}${CRLF}`, '/v1/agents'),
  raw('duplicate-host', `GET /healthz HTTP/1.1${CRLF}${HOST_LINE}${HOST_LINE}Connection: close${CRLF}${CRLF}`, '/healthz'),
  raw('duplicate-host', `GET /healthz HTTP/1.1${CRLF}${HOST_LINE}Host: evil.example${CRLF}Connection: close${CRLF}${CRLF}`, '/healthz'),
  raw(
    'expect',
    `POST /v1/jobs HTTP/1.1${CRLF}${HOST_LINE}${AUTH_A}Content-Type: application/json${CRLF}Expect: foo${CRLF}Content-Length: ${VALID_JOB.length}${CRLF}Connection: close${CRLF}${CRLF}${VALID_JOB}`,
    '/v1/jobs',
    ['POST'],
  ),
  raw('expect', get('/healthz', `Expect: foo${CRLF}`), '/healthz'),
  raw('expect', get('/v1/agents', `Expect: 100-continue${CRLF}`), '/v1/agents'),
  raw('expect', get('/v1/models', `${AUTH_A}Expect: 100-continue${CRLF}`), '/v1/models'),
  raw(
    'expect',
    `POST /v1/jobs HTTP/1.1${CRLF}${HOST_LINE}${AUTH_A}Content-Type: application/json${CRLF}Expect: 100-continue${CRLF}Content-Length: ${VALID_JOB.length}${CRLF}Connection: close${CRLF}${CRLF}${VALID_JOB}`,
    '/v1/jobs',
    ['POST'],
  ),
  raw(
    'expect',
    `POST /v1/jobs HTTP/1.1${CRLF}${HOST_LINE}${AUTH_A}Content-Type: application/json${CRLF}Expect: 100-continue, foo${CRLF}Content-Length: ${VALID_JOB.length}${CRLF}Connection: close${CRLF}${CRLF}${VALID_JOB}`,
    '/v1/jobs',
    ['POST'],
  ),
  raw('bad-chunked', postJob(`Transfer-Encoding: chunked${CRLF}`, `zz${CRLF}abc${CRLF}0${CRLF}${CRLF}`), '/v1/jobs', ['POST'], { refuse: true }),
  raw('bad-chunked', postJob(`Transfer-Encoding: chunked${CRLF}`, `-1${CRLF}abc${CRLF}0${CRLF}${CRLF}`), '/v1/jobs', ['POST'], { refuse: true }),
  raw('bad-chunked', postJob(`Transfer-Encoding: chunked${CRLF}`, `ffffffffffffffffffff${CRLF}abc${CRLF}0${CRLF}${CRLF}`), '/v1/jobs', ['POST'], { refuse: true }),
  raw('bad-chunked', postJob(`Transfer-Encoding: chunked${CRLF}`, `5${CRLF}abc${CRLF}0${CRLF}${CRLF}`), '/v1/jobs', ['POST'], { refuse: true }),
  raw('bad-chunked', postJob(`Transfer-Encoding: chunked${CRLF}`, `3;${'e'.repeat(20_000)}${CRLF}abc${CRLF}0${CRLF}${CRLF}`), '/v1/jobs', ['POST'], { refuse: true }),
  raw('bad-chunked', postJob(`Transfer-Encoding: chunked${CRLF}`, `3\nabc\n0\n\n`), '/v1/jobs', ['POST'], { refuse: true }),
  raw('bad-chunked', postJob(`Transfer-Encoding: chunked${CRLF}`, `${chunk(VALID_JOB)}0${CRLF}X-Trailer: 1${CRLF}${CRLF}`), '/v1/jobs', ['POST']),
  raw('bad-chunked', postJob(`Transfer-Encoding: chunked${CRLF}`, `${chunk(VALID_JOB)}0${CRLF}${CRLF}`), '/v1/jobs', ['POST']),
  raw('bad-chunked', postJob(`Transfer-Encoding: chunked${CRLF}`, `${chunk(VALID_JOB.slice(0, 10))}${chunk(VALID_JOB.slice(10))}0${CRLF}${CRLF}`), '/v1/jobs', ['POST']),
  raw('bad-chunked', postJob(`Transfer-Encoding: gzip, chunked${CRLF}`, `${chunk(VALID_JOB)}0${CRLF}${CRLF}`), '/v1/jobs', ['POST']),
  raw('bad-chunked', postJob(`Transfer-Encoding: chunked, gzip${CRLF}`, `${chunk(VALID_JOB)}0${CRLF}${CRLF}`), '/v1/jobs', ['POST'], { refuse: true }),
  raw('bad-chunked', postJob(`Transfer-Encoding: xchunked${CRLF}`, `${chunk(VALID_JOB)}0${CRLF}${CRLF}`), '/v1/jobs', ['POST'], { refuse: true }),
  raw('bad-chunked', postJob(`Transfer-Encoding: chunked${CRLF}Transfer-Encoding: chunked${CRLF}`, `${chunk(VALID_JOB)}0${CRLF}${CRLF}`), '/v1/jobs', ['POST']),
  raw('smuggling', postJob(`Content-Length: 4${CRLF}Transfer-Encoding: chunked${CRLF}`, `${chunk(VALID_JOB)}0${CRLF}${CRLF}`), '/v1/jobs', ['POST'], { refuse: true }),
  raw('smuggling', postJob(`Content-Length: ${VALID_JOB.length}${CRLF}Content-Length: ${VALID_JOB.length + 1}${CRLF}`, VALID_JOB), '/v1/jobs', ['POST'], { refuse: true }),
  raw('smuggling', postJob(`Content-Length: ${VALID_JOB.length}, ${VALID_JOB.length}${CRLF}`, VALID_JOB), '/v1/jobs', ['POST']),
  raw('smuggling', postJob(`Content-Length: -1${CRLF}`, VALID_JOB), '/v1/jobs', ['POST'], { refuse: true }),
  raw('smuggling', postJob(`Content-Length: 1e3${CRLF}`, VALID_JOB), '/v1/jobs', ['POST'], { refuse: true }),
  raw('smuggling', postJob(`Content-Length: 0x10${CRLF}`, VALID_JOB), '/v1/jobs', ['POST'], { refuse: true }),
  raw('smuggling', postJob(`Content-Length: +${VALID_JOB.length}${CRLF}`, VALID_JOB), '/v1/jobs', ['POST'], { refuse: true }),
  raw('smuggling', postJob(`Content-Length: 99999999999999999999${CRLF}`, VALID_JOB), '/v1/jobs', ['POST'], { refuse: true }),
  raw('smuggling', postJob(`Content-Length : ${VALID_JOB.length}${CRLF}`, VALID_JOB), '/v1/jobs', ['POST'], { refuse: true }),
  raw('smuggling', postJob(`Content-Length: 2${CRLF}`, `{}GET /v1/agents HTTP/1.1${CRLF}${HOST_LINE}${CRLF}`), '/v1/jobs', ['POST']),
  raw('header-too-large', get('/healthz', `X-Big: ${'a'.repeat(20_000)}${CRLF}`), '/healthz', ['GET'], { status: [431] }),
  raw('header-too-large', get(`/healthz?${'q'.repeat(20_000)}`), '/healthz', ['GET'], { status: [414, 431] }),
  raw('header-too-large', get('/v1/models', `${Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'v'.repeat(50)}${CRLF}`).join('')}`), '/v1/models', ['GET'], {
    status: [431],
  }),
  raw('header-too-large', get(`/v1/jobs/${'j'.repeat(100_000)}`, AUTH_A), '/v1/jobs/x', ['GET'], { status: [414, 431] }),
  raw('header-too-large', get('/api/tags', `X-Big: ${'a'.repeat(20_000)}${CRLF}`), '/api/tags', ['GET'], { status: [431] }),
  raw('header-too-large', get('/v1/chat/completions', `X-Big: ${'a'.repeat(20_000)}${CRLF}`), '/v1/chat/completions', ['GET'], { status: [431] }),
  raw('absolute-form', get('http://{{HOST}}/healthz'), '/healthz'),
  raw('absolute-form', get('http://{{HOST}}/v1/models', AUTH_A), '/v1/models'),
  raw('absolute-form', get('http://{{HOST}}/v1/jobs/{{JOB_B}}', AUTH_A), '/v1/jobs/x'),
  raw('absolute-form', get('https://evil.example/v1/models', AUTH_A), '/v1/models'),
  raw('absolute-form', get('http://{{HOST}}'), '/'),
  raw('absolute-form', get('http://{{HOST}}?x=1'), '/'),
  raw('absolute-form', get('//{{HOST}}/healthz'), '/healthz'),
  raw('absolute-form', get('http:/v1/models', AUTH_A), '/v1/models'),
  raw('absolute-form', get('file:///etc/passwd'), '/etc/passwd'),
  raw('absolute-form', get('http://user:pass@{{HOST}}/api/tags', AUTH_A), '/api/tags'),
  raw('pipelined', `${get('/healthz').replace('Connection: close\r\n', '')}${get('/v1/models', AUTH_A)}`, '/healthz', ['GET', 'GET'], {}, ['/v1/models']),
  raw('pipelined', `${get('/v1/models', AUTH_A).replace('Connection: close\r\n', '')}GARBAGE${CRLF}${CRLF}`, '/v1/models', ['GET']),
  raw('pipelined', `${get('/healthz').replace('Connection: close\r\n', '')}${get('/v1/agents')}`, '/healthz', ['GET', 'GET'], {}, ['/v1/agents']),
  raw('pipelined', `${get('/healthz').replace('Connection: close\r\n', '')}${get('/%61dmin/limits')}`, '/healthz', ['GET', 'GET'], {}, ['/%61dmin/limits']),
  raw('pipelined', `${get('/v1/models', AUTH_A).replace('Connection: close\r\n', '')}${get('/v1/jobs/{{JOB_B}}', AUTH_A)}`, '/v1/models', ['GET', 'GET'], {}, [
    '/v1/jobs/{{JOB_B}}',
  ]),
  raw('fragment', get('/v1/agents#x'), '/v1/agents'),
  raw('fragment', get('/metrics#'), '/metrics'),
  raw('fragment', get('/admin/limits#frag'), '/admin/limits'),
  raw('fragment', get('/healthz#/v1/agents'), '/healthz'),
  raw(
    'upgrade',
    get('/healthz', `Upgrade: websocket${CRLF}Connection: Upgrade${CRLF}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==${CRLF}Sec-WebSocket-Version: 13${CRLF}`).replace(
      'Connection: close\r\n',
      '',
    ),
    '/healthz',
  ),
  raw(
    'upgrade',
    get('/v1/agents', `Upgrade: h2c${CRLF}Connection: Upgrade, HTTP2-Settings${CRLF}HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA${CRLF}`).replace('Connection: close\r\n', ''),
    '/v1/agents',
  ),
];

/**
 * Bodies sent in pieces while the server should already have refused them (413): declared
 * too large, chunked past the limit, or after `100 Continue`; on a connection the client
 * asked to close and on a kept-alive one.
 */
export const UPLOAD_CASES: readonly Draft[] = ['/v1/jobs', '/v1/chat/completions', '/api/generate'].flatMap((target) =>
  [false, true].flatMap((keepAlive): Draft[] => {
    const suffix = keepAlive ? '-keepalive' : '-close';
    const headers: Array<[string, string]> = [...credential('bearerA').headers, ['Content-Type', 'application/json']];
    const common = { kind: 'http', method: 'POST', target, noContentLength: true, keepAlive } as const;
    const trickle = (chunked: boolean) => ({ size: 64 * 1024, times: 1_600, chunked });
    return [
      {
        label: `upload-413-content-length${suffix}`,
        request: { ...common, headers: [...headers, ['Content-Length', String(100 * 1024 * 1024)]], trickle: trickle(false) },
        credential: effect(credential('bearerA')),
        expect: { status: [413] },
      },
      {
        label: `upload-413-chunked${suffix}`,
        request: { ...common, headers: [...headers, ['Transfer-Encoding', 'chunked']], trickle: trickle(true) },
        credential: effect(credential('bearerA')),
        expect: { status: [413] },
      },
      {
        label: `upload-413-expect-continue${suffix}`,
        request: {
          ...common,
          headers: [...headers, ['Expect', '100-continue'], ['Content-Length', String(100 * 1024 * 1024)]],
          waitForContinue: true,
          body: { type: 'text', text: '{"model":"' },
          trickle: trickle(false),
        },
        credential: effect(credential('bearerA')),
        expect: { status: [413] },
      },
    ];
  }),
);

/** Random request lines and header blocks, beyond the fixed list. */
const rawArbitrary: fc.Arbitrary<Draft> = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes) => raw('random-bytes', `${Buffer.from(bytes).toString('latin1')}${CRLF}${CRLF}`)),
  fc
    .tuple(fc.stringMatching(/^[A-Z!#$%&'*+.^_`|~-]{1,12}$/), fc.constantFrom('/healthz', '/v1/agents', '/v1/models', '/api/tags', '*'))
    .map(([method, target]) => raw('random-method', `${method} ${target} HTTP/1.1${CRLF}${HOST_LINE}Connection: close${CRLF}${CRLF}`, target, [method])),
  fc.tuple(fc.constantFrom('/healthz', '/v1/models'), fc.uint8Array({ minLength: 1, maxLength: 40 })).map(([target, bytes]) =>
    raw(
      'random-header-bytes',
      `GET ${target} HTTP/1.1${CRLF}${HOST_LINE}${AUTH_A}X-Fuzz: ${Buffer.from(bytes)
        .toString('latin1')
        .replace(/[\r\n]/g, ' ')}${CRLF}Connection: close${CRLF}${CRLF}`,
      target,
    ),
  ),
  fc
    .tuple(fc.constantFrom('/healthz', '/v1/models'), fc.stringMatching(/^HTTP\/[0-9]\.[0-9]$|^HTTP\/[0-9]+$|^http\/1\.1$|^HTTP\/1\.1[ ]?$/))
    .map(([target, version]) => raw('random-version', `GET ${target} ${version}${CRLF}${HOST_LINE}${AUTH_A}Connection: close${CRLF}${CRLF}`, target)),
  // Sizes up to the body's own: a larger one would leave the server rightly waiting for the rest.
  fc
    .tuple(fc.integer({ min: 0, max: VALID_JOB.length }), fc.constantFrom('', ';a=b', ' ', '\t'))
    .map(([size, ext]) =>
      raw('random-chunk-size', postJob(`Transfer-Encoding: chunked${CRLF}`, `${size.toString(16)}${ext}${CRLF}${VALID_JOB}${CRLF}0${CRLF}${CRLF}`), '/v1/jobs', ['POST']),
    ),
);

// ---------------------------------------------------------------------------------------
// Admin routes under every spelling.

const ADMIN_TARGETS = [
  '/v1/agents',
  '/metrics',
  '/admin/limits',
  '/admin/queues',
  '/admin/queues/',
  '/admin/queues/api/queues',
  '/admin/queues/api/redis/stats',
  '/admin/queues/api/job-schedulers',
  '/admin/queues/metrics-history',
  '/admin/queues/queue/{{QUEUE}}',
  '/admin/queues/api/queues/{{QUEUE}}/workers',
  '/admin/queues/api/queues/{{QUEUE}}/metrics',
];

type Spelling = (path: string, pick: number) => string;

/** Indexes inside `{{PLACEHOLDER}}`s, which a spelling must leave alone (they are filled in later). */
function placeholderIndexes(path: string): Set<number> {
  const inside = new Set<number>();
  for (const match of path.matchAll(/\{\{[A-Z_]+\}\}/g)) for (let i = match.index; i < match.index + match[0].length; i++) inside.add(i);
  return inside;
}
/** Applies `change` to the parts of `path` outside placeholders. */
const outsidePlaceholders = (path: string, change: (part: string) => string) =>
  path
    .split(/(\{\{[A-Z_]+\}\})/)
    .map((part) => (/^\{\{[A-Z_]+\}\}$/.test(part) ? part : change(part)))
    .join('');
const letterIndexes = (path: string) => {
  const skip = placeholderIndexes(path);
  return [...path].flatMap((char, index) => (/[a-z]/i.test(char) && !skip.has(index) ? [index] : []));
};
const slashIndexes = (path: string) => [...path].flatMap((char, index) => (char === '/' && index > 0 ? [index] : []));
const at = <T>(items: T[], pick: number): T | undefined => (items.length === 0 ? undefined : items[pick % items.length]);
const replaceAt = (path: string, index: number | undefined, text: string) => (index === undefined ? path : path.slice(0, index) + text + path.slice(index + 1));
const hex = (char: string, upper: boolean) => `%${char.charCodeAt(0).toString(16).padStart(2, '0')[upper ? 'toUpperCase' : 'toLowerCase']()}`;

/** Ways to spell one path that a lenient router, proxy or decoder may take for the same route. */
export const SPELLINGS: Record<string, Spelling> = {
  encodeLetter: (path, pick) => {
    const index = at(letterIndexes(path), pick);
    return index === undefined ? path : replaceAt(path, index, hex(path[index]!, pick % 2 === 0));
  },
  encodeAllLetters: (path) => outsidePlaceholders(path, (part) => part.replace(/[a-z]/gi, (char) => hex(char, false))),
  doubleEncodeLetter: (path, pick) => {
    const index = at(letterIndexes(path), pick);
    return index === undefined ? path : replaceAt(path, index, `%25${path.charCodeAt(index).toString(16)}`);
  },
  encodeSlash: (path, pick) => replaceAt(path, at(slashIndexes(path), pick), pick % 2 === 0 ? '%2F' : '%2f'),
  overlongSlash: (path, pick) => replaceAt(path, at(slashIndexes(path), pick), '%c0%af'),
  backslash: (path, pick) => replaceAt(path, at(slashIndexes(path), pick), pick % 2 === 0 ? '\\' : '%5c'),
  upperLetter: (path, pick) => {
    const index = at(letterIndexes(path), pick);
    return index === undefined ? path : replaceAt(path, index, path[index]!.toUpperCase());
  },
  upperAll: (path) => outsidePlaceholders(path, (part) => part.toUpperCase()),
  doubleSlash: (path, pick) => replaceAt(path, at(slashIndexes(path), pick), '//'),
  leadingDoubleSlash: (path) => `/${path}`,
  dotSegment: (path, pick) => replaceAt(path, at(slashIndexes(path), pick), '/./'),
  dotDotSegment: (path, pick) => replaceAt(path, at(slashIndexes(path), pick), '/fuzz/../'),
  encodedDot: (path, pick) => replaceAt(path, at(slashIndexes(path), pick), pick % 2 === 0 ? '/%2e/' : '/%2E/'),
  encodedDotDot: (path, pick) => replaceAt(path, at(slashIndexes(path), pick), '/fuzz/%2e%2e/'),
  leadingDotDot: (path) => `/..${path}`,
  viaPublic: (path) => `/healthz/..${path}`,
  viaApi: (path) => `/api/..${path}`,
  semicolon: (path, pick) => {
    const index = at(slashIndexes(path), pick);
    return index === undefined ? `${path};a=b` : path.slice(0, index) + ';a=b' + path.slice(index);
  },
  semicolonEnd: (path) => `${path};jsessionid=1`,
  encodedSemicolon: (path) => `${path}%3b`,
  fragment: (path) => `${path}#fuzz`,
  emptyFragment: (path) => `${path}#`,
  query: (path, pick) => `${path}${['?', '?x=1', '?key=', '?&', '??'][pick % 5]}`,
  trailingSlash: (path) => `${path}/`,
  trailingDot: (path) => `${path}.`,
  trailingEncoded: (path, pick) => `${path}${['%20', '%00', '%09', '%0a', '%2e', '%2f', '%23', '%3f'][pick % 8]}`,
  trailingSpaceRaw: (path) => `${path}%20`,
  fullwidthLetter: (path, pick) => {
    const index = at(letterIndexes(path), pick);
    return index === undefined ? path : replaceAt(path, index, utf8Bytes(String.fromCharCode(path.charCodeAt(index) + 0xfee0)));
  },
  absolute: (path, pick) => `${['http://{{HOST}}', 'http://evil.example', 'HTTP://{{HOST}}', 'https://{{HOST}}', 'http://{{HOST}}:80', 'ws://{{HOST}}'][pick % 6]}${path}`,
};

const adminArbitrary: fc.Arbitrary<Draft> = fc
  .tuple(
    fc.constantFrom(...ADMIN_TARGETS),
    fc.array(fc.tuple(fc.constantFrom(...Object.keys(SPELLINGS)), fc.nat({ max: 97 })), { minLength: 1, maxLength: 3 }),
    fc.constantFrom('GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS'),
    fc.constantFrom(...NON_ADMIN_CREDENTIALS.map((cred) => cred.name)),
  )
  .map(([path, spellings, method, credName]) => {
    let target = path;
    for (const [name, pick] of spellings) target = SPELLINGS[name]!(target, pick);
    const cred = credential(credName);
    if (cred.query) target += target.includes('?') ? `&${cred.query}` : `?${cred.query}`;
    const withBody = method === 'POST' || method === 'PUT';
    return {
      label: `spelling-${spellings.map(([name]) => name).join('+')}`,
      request: {
        kind: 'http',
        method,
        target,
        headers: [...cred.headers, ...(withBody ? [['Content-Type', 'application/json'] as [string, string]] : [])],
        ...(withBody && { body: jsonBody({}) }),
      },
      credential: effect(cred),
      expect: {},
    } satisfies Draft;
  });

/** Canonical admin paths with and without the admin key: the fixture works, and the invariant is not vacuous. */
export const ADMIN_CONTROLS: readonly Draft[] = ['/v1/agents', '/metrics', '/admin/limits', '/admin/queues/api/queues'].flatMap((target) => [
  {
    label: 'control-admin-key',
    request: { kind: 'http', method: 'GET', target, headers: [...credential('bearerAdmin').headers] },
    credential: effect(credential('bearerAdmin')),
    expect: { status: [200] },
  },
  { label: 'control-no-key', request: { kind: 'http', method: 'GET', target, headers: [] }, credential: effect(credential('none')), expect: { status: [401] } },
  {
    label: 'control-tenant-key',
    request: { kind: 'http', method: 'GET', target, headers: [...credential('bearerA').headers] },
    credential: effect(credential('bearerA')),
    expect: { status: [403] },
  },
]) satisfies Draft[];

// ---------------------------------------------------------------------------------------
// The route walk: every route of the route table with every method.

/**
 * Every route × every method (registered or not, Node-known or not), with credentials
 * cycling through none / tenant / admin (`allCredentials`: each combination with each).
 * With the admin key only methods that cannot change anything are sent to admin routes
 * (Bull Board's PUT /pause would pause every queue); other methods go there with non-admin
 * credentials, which must be refused.
 */
/**
 * Paths no route serves that still belong to a wire: OpenAI's embeddings, Ollama's model
 * management, an unknown native path, the root. Walked with every method like the routes.
 */
export const UNROUTED_PATHS: readonly string[] = ['/v1/embeddings', '/v1/chat/completions/x', '/api/pull', '/api/embed', '/api/delete', '/api', '/v1/nothing', '/'];

export function routeCases(routes: readonly RouteEntry[], options: { allCredentials: boolean }): Draft[] {
  const urls = [...new Set([...routes.map((route) => route.url), ...UNROUTED_PATHS])].sort();
  const credNames = ['none', 'bearerA', 'bearerAdmin', 'bearerB'];
  const drafts: Draft[] = [];
  let turn = 0;
  for (const url of urls) {
    const target = concretePath(url);
    for (const method of ALL_METHODS) {
      const creds = options.allCredentials ? credNames : [credNames[turn++ % credNames.length]!];
      for (let name of creds) {
        if (name === 'bearerAdmin' && isAdminPath(url) && !SAFE_METHODS.has(method)) name = 'bearerB';
        const cred = credential(name);
        const withBody = method === 'POST' || method === 'PUT' || method === 'PATCH';
        const valid = VALID_BODIES[url];
        drafts.push({
          label: `${method} ${url}`,
          request: {
            kind: 'http',
            method,
            target,
            headers: [...cred.headers, ...(withBody ? [['Content-Type', 'application/json'] as [string, string]] : [])],
            ...(withBody && { body: jsonBody(valid ?? {}) }),
          },
          credential: effect(cred),
          expect: {},
        });
      }
    }
  }
  return drafts;
}

// ---------------------------------------------------------------------------------------
// Sampling.

/** A 32-bit seed per category from the run's seed, so categories are independent. */
export function categorySeed(seed: number, category: Category): number {
  let hash = seed >>> 0;
  for (const char of category) hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193) >>> 0;
  return hash | 0;
}

const ARBITRARIES: Partial<Record<Category, fc.Arbitrary<Draft>>> = {
  bodies: bodiesArbitrary,
  params: paramsArbitrary,
  query: queryArbitrary,
  headers: headersArbitrary,
  raw: rawArbitrary,
  admin: adminArbitrary,
};

/** Fixed cases that every run of a category includes, before its sampled ones. */
const FIXED: Partial<Record<Category, readonly Draft[]>> = {
  raw: [...RAW_CASES, ...UPLOAD_CASES],
  admin: ADMIN_CONTROLS,
};

export interface GenerateOptions {
  seed: number;
  /** Sampled cases per category (the route walk and fixed lists come on top). */
  counts: Partial<Record<Category, number>>;
  routes: readonly RouteEntry[];
  /** The route walk with every credential on every route and method (bench), or one each (test). */
  allCredentials: boolean;
}

/** Every case of a run, in order, each with its replayable id. */
export function generateCases(options: GenerateOptions): FuzzCase[] {
  const cases: FuzzCase[] = [];
  for (const category of CATEGORIES) {
    const drafts: Draft[] = [];
    if (category === 'routes') drafts.push(...routeCases(options.routes, { allCredentials: options.allCredentials }));
    drafts.push(...(FIXED[category] ?? []));
    const count = options.counts[category] ?? 0;
    const arbitrary = ARBITRARIES[category];
    if (arbitrary && count > 0) drafts.push(...fc.sample(arbitrary, { seed: categorySeed(options.seed, category), numRuns: count }));
    drafts.forEach((draft, index) => cases.push({ ...draft, id: `${category}#${index}`, category }));
  }
  return cases;
}

// ---------------------------------------------------------------------------------------
// Rendering a case as bytes.

/** Replaces every `{{NAME}}` with its value. */
export function fill(text: string, values: Placeholders): string {
  return text.replace(/\{\{([A-Z_]+)\}\}/g, (whole, name: string) => (name in values ? values[name as keyof Placeholders] : whole));
}

function renderPieces(pieces: Piece[]): Buffer {
  return Buffer.concat(
    pieces.map((piece) => {
      const times = piece.times ?? 1;
      if (!piece.hex) return Buffer.from(piece.text.repeat(times), 'utf8');
      const bytes = Buffer.from(piece.text, 'hex');
      return times === 1 ? bytes : Buffer.concat(Array.from({ length: times }, () => bytes));
    }),
  );
}

/** The bytes of a body recipe. */
export function renderBody(spec: BodySpec): Buffer {
  switch (spec.type) {
    case 'json':
      return Buffer.from(JSON.stringify(spec.value), 'utf8');
    case 'text':
      return Buffer.from(spec.text, 'utf8');
    case 'hex':
      return Buffer.from(spec.hex, 'hex');
    case 'template': {
      const json = JSON.stringify(spec.value);
      const parts: Buffer[] = [];
      const pattern = /"@@([a-z]+)@@"/g;
      let last = 0;
      for (const match of json.matchAll(pattern)) {
        parts.push(Buffer.from(json.slice(last, match.index), 'utf8'));
        const pieces = spec.subs[match[1]!];
        parts.push(pieces ? renderPieces(pieces) : Buffer.from(match[0], 'utf8'));
        last = match.index + match[0].length;
      }
      parts.push(Buffer.from(json.slice(last), 'utf8'));
      return Buffer.concat(parts);
    }
  }
}

/** The request target of a case as sent (placeholders filled), for judging the answer's wire. */
export function targetOf(fuzzCase: FuzzCase, values: Placeholders): string | undefined {
  const request = fuzzCase.request;
  if (request.kind === 'http') return fill(request.target, values);
  return request.target === undefined ? undefined : fill(request.target, values);
}

/** The exchange to send for a case: request bytes with the automatic headers, body, trickle. */
export function buildExchange(fuzzCase: FuzzCase, values: Placeholders, timeoutMs: number): RawExchange {
  const request = fuzzCase.request;
  if (request.kind === 'raw') {
    return { head: Buffer.from(fill(request.bytes, values), 'latin1'), methods: request.methods, timeoutMs };
  }
  const body = request.body ? renderBody(request.body) : undefined;
  const lines = [`${request.method} ${fill(request.target, values)} ${request.httpVersion ?? 'HTTP/1.1'}`];
  if (!request.noHost) lines.push(`Host: ${values.HOST}`);
  for (const [name, value] of request.headers) lines.push(`${name}: ${fill(value, values)}`);
  if (body && !request.noContentLength) lines.push(`Content-Length: ${body.length}`);
  if (!request.keepAlive) lines.push('Connection: close');
  const head = Buffer.from(`${lines.join(CRLF)}${CRLF}${CRLF}`, 'latin1');
  let trickle: RawExchange['trickle'];
  if (request.trickle) {
    const payload = Buffer.alloc(request.trickle.size, 0x61);
    trickle = {
      chunk: request.trickle.chunked ? Buffer.concat([Buffer.from(`${payload.length.toString(16)}${CRLF}`), payload, Buffer.from(CRLF)]) : payload,
      times: request.trickle.times,
    };
  }
  const isChunked = request.headers.some(([name, value]) => name.toLowerCase() === 'transfer-encoding' && /chunked/i.test(value));
  const framedBody = body && isChunked && request.trickle ? Buffer.concat([Buffer.from(`${body.length.toString(16)}${CRLF}`), body, Buffer.from(CRLF)]) : body;
  return {
    head,
    ...(framedBody && { body: framedBody }),
    ...(request.waitForContinue && { waitForContinue: true }),
    ...(trickle && { trickle }),
    methods: [request.method],
    timeoutMs,
  };
}

/** A short, printable description of a case (for failure reports). */
export function describeCase(fuzzCase: FuzzCase, values: Placeholders): string {
  const request = fuzzCase.request;
  const clip = (text: string, max = 240) => (text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text);
  if (request.kind === 'raw') return `raw ${JSON.stringify(clip(fill(request.bytes, values), 400))}`;
  const headers = request.headers.map(([name, value]) => `${name}: ${clip(fill(value, values), 80)}`).join(' | ');
  let body = '';
  if (request.body) {
    const rendered = renderBody(request.body);
    body = ` body(${rendered.length} B)=${JSON.stringify(clip(rendered.subarray(0, 300).toString('latin1'), 200))}`;
  }
  return `${request.method} ${clip(fill(request.target, values))}${headers ? ` [${headers}]` : ''}${body}${request.trickle ? ` +trickle ${request.trickle.times}×${request.trickle.size} B${request.trickle.chunked ? ' chunked' : ''}` : ''}`;
}
