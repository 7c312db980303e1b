/**
 * `GET /v1/models` entries. The protocol package has no schema for them (the list grows
 * fields, such as queue statistics, over time), so they are checked here field by field:
 * `id` must be a string, known fields must have their type when present, others pass.
 */
export interface ModelQueueStats {
  waiting?: number;
  active?: number;
  /** Seconds the oldest waiting job has waited, when the API reports it. */
  oldest_wait_s?: number | null;
  /** Jobs per second the fleet finishes for this model, when the API reports it. */
  drain_rate_per_s?: number | null;
  /** The model's digest-pinned queues (jobs that asked for one digest), also counted above. */
  pinned?: PinnedQueueStats[];
  [field: string]: unknown;
}

/** Jobs waiting for one digest of a model (a `digest` job field). */
export interface PinnedQueueStats {
  /** Bare lowercase hex, as in `digests`. */
  digest: string;
  waiting?: number;
  active?: number;
  oldest_wait_s?: number | null;
  drain_rate_per_s?: number | null;
  [field: string]: unknown;
}

export interface ModelEntry {
  id: string;
  object?: string;
  created?: number;
  owned_by?: string;
  /** True when a live agent can serve the model now. */
  servable?: boolean;
  size_bytes?: number | null;
  digests?: string[];
  /** Agents that have the model on disk. */
  agents?: string[];
  /** Agents that have it loaded in VRAM. */
  loaded_on?: string[];
  /** Agents loading it into VRAM now. */
  loading_on?: string[];
  queue?: ModelQueueStats;
  [field: string]: unknown;
}

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);
const isStringArray = (value: unknown) => Array.isArray(value) && value.every((item) => typeof item === 'string');
const optional = (value: unknown, check: (value: unknown) => boolean) => value === undefined || check(value);
const isNumber = (value: unknown) => typeof value === 'number' && Number.isFinite(value);
const isNumberOrNull = (value: unknown) => value === null || isNumber(value);

/** The problem with one entry, or undefined when it is valid. */
export function modelEntryProblem(value: unknown): string | undefined {
  if (!isObject(value)) return 'not an object';
  if (typeof value.id !== 'string') return 'id must be a string';
  const checks: Array<[string, boolean]> = [
    ['created', optional(value.created, isNumber)],
    ['servable', optional(value.servable, (v) => typeof v === 'boolean')],
    ['size_bytes', optional(value.size_bytes, isNumberOrNull)],
    ['digests', optional(value.digests, isStringArray)],
    ['agents', optional(value.agents, isStringArray)],
    ['loaded_on', optional(value.loaded_on, isStringArray)],
    ['loading_on', optional(value.loading_on, isStringArray)],
    ['queue', optional(value.queue, isObject)],
  ];
  for (const [field, ok] of checks) if (!ok) return `${field} has the wrong type`;
  if (isObject(value.queue)) {
    for (const field of ['waiting', 'active'] as const) if (!optional(value.queue[field], isNumber)) return `queue.${field} must be a number`;
    for (const field of ['oldest_wait_s', 'drain_rate_per_s'] as const) if (!optional(value.queue[field], isNumberOrNull)) return `queue.${field} must be a number or null`;
  }
  return undefined;
}
