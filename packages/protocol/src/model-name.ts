/**
 * Model names and the queue names derived from them.
 *
 * Ollama names look like `llama3.1:8b-instruct-q4_K_M`, `library/qwen2.5:0.5b` or
 * `hf.co/org/repo:Q4_K_M`. BullMQ forbids `:` in queue names, and under Redis Cluster
 * each model's keys must share one hash slot, so the queue name is a reversible
 * encoding of the canonical model name wrapped in a hash tag: `{llama3.1~3a8b}`.
 */

const DEFAULT_TAG = 'latest';
const DEFAULT_NAMESPACE_PREFIXES = ['registry.ollama.ai/library/', 'library/'];

/** Characters allowed in a model name (Ollama's own name grammar is a subset). */
export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._\-/:]{0,199}$/;

/**
 * The canonical form of a model name, as `ollama list` shows it: the default
 * namespace dropped and the tag made explicit (`llama3` → `llama3:latest`,
 * `library/qwen2.5:0.5b` → `qwen2.5:0.5b`). Two names that Ollama treats as the same
 * model share one queue.
 */
export function canonicalModelName(name: string): string {
  let canonical = name.trim();
  for (const prefix of DEFAULT_NAMESPACE_PREFIXES) {
    if (canonical.startsWith(prefix)) {
      canonical = canonical.slice(prefix.length);
      break;
    }
  }
  const lastSlash = canonical.lastIndexOf('/');
  if (!canonical.slice(lastSlash + 1).includes(':')) canonical = `${canonical}:${DEFAULT_TAG}`;
  return canonical;
}

// Kept literally: characters that are legal in BullMQ queue names and Redis keys and are
// not our escape character. Everything else (`:`, `/`, `{`, `}`, `~`, non-ASCII) is
// escaped as `~` + two lowercase hex digits per UTF-8 byte.
const LITERAL = /[A-Za-z0-9._-]/;
const ESCAPE = '~';

/** Encodes a model name into a BullMQ-legal queue name carrying a Redis Cluster hash tag. */
export function modelToQueueName(model: string): string {
  let body = '';
  for (const char of model) {
    if (LITERAL.test(char)) {
      body += char;
      continue;
    }
    for (const byte of new TextEncoder().encode(char)) {
      body += ESCAPE + byte.toString(16).padStart(2, '0');
    }
  }
  return `{${body}}`;
}

/** Reverses {@link modelToQueueName}; throws on a name it could not have produced. */
export function queueNameToModel(queueName: string): string {
  if (!queueName.startsWith('{') || !queueName.endsWith('}')) {
    throw new Error(`not a Switchyard queue name: ${queueName}`);
  }
  const body = queueName.slice(1, -1);
  const bytes: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const char = body[i]!;
    if (char === ESCAPE) {
      const hex = body.slice(i + 1, i + 3);
      if (!/^[0-9a-f]{2}$/.test(hex)) throw new Error(`bad escape in queue name: ${queueName}`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (LITERAL.test(char)) {
      bytes.push(char.charCodeAt(0));
    } else {
      throw new Error(`unexpected character ${JSON.stringify(char)} in queue name: ${queueName}`);
    }
  }
  return new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(bytes));
}

/**
 * The queue key of a job that pins a model digest: `<model>@<digest>`. Such jobs wait on a
 * queue of their own that only agents whose backend has that digest serve, so a pinned job
 * can never be claimed by an agent with another build of the model.
 */
export function pinnedQueueModel(model: string, digest: string): string {
  return `${model}@${normalizeDigest(digest)}`;
}

/** Splits a queue key back into model and pinned digest. */
export function splitQueueModel(queueModel: string): { model: string; digest?: string } {
  const at = queueModel.lastIndexOf('@');
  return at === -1 ? { model: queueModel } : { model: queueModel.slice(0, at), digest: queueModel.slice(at + 1) };
}

/** Digests compare as bare lowercase hex: Ollama serves them bare, clients often write `sha256:`. */
export function normalizeDigest(digest: string): string {
  return digest
    .trim()
    .toLowerCase()
    .replace(/^sha256:/, '');
}

/**
 * The backend name under which a node keeps an old build of a model during a rollout
 * (`/api/copy`, sharing the blobs): `<model>--sy-<first 12 hex of the digest>`. Ollama keeps
 * one build per name, so without it a node that pulled the new build could no longer serve
 * jobs pinned to the old one. The agent serves it from the model's pinned queue
 * (`<model>@<digest>`), never as a model of its own.
 */
export function buildAliasName(model: string, digest: string): string {
  return `${model}${BUILD_ALIAS_MARK}${normalizeDigest(digest).slice(0, 12)}`;
}

const BUILD_ALIAS_MARK = '--sy-';

/** The model and digest prefix of a {@link buildAliasName}, or undefined for any other name. */
export function parseBuildAlias(name: string): { model: string; digestPrefix: string } | undefined {
  const match = /^(.+)--sy-([0-9a-f]{12})$/.exec(name);
  return match ? { model: match[1]!, digestPrefix: match[2]! } : undefined;
}
