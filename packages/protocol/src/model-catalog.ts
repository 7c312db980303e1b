/**
 * The fleet catalog: which models the fleet should hold on disk, where, and at which build.
 *
 * An entry is desired state, written by operators (`PUT /admin/models/:name`, `switchyard
 * models set`, or Ollama's `POST /api/pull` on the broker) and read by every agent, which
 * reconciles its own node towards it (`apps/agent/src/model-reconciler.ts`). A model absent
 * from the catalog is served wherever it happens to be, as before the catalog existed.
 *
 * Which nodes should hold a model is one deterministic rule, {@link catalogHolders}, that
 * every agent and the API evaluate on the same heartbeats, so no coordinator is needed: an
 * agent acts only on its own row of the answer.
 */
import { z } from 'zod';
import type { AgentHeartbeat, ModelPull } from './heartbeat.js';
import { normalizeDigest } from './model-name.js';

/** A label key or value as Kubernetes spells them (`gpu`, `zone`, `nvidia.com/gpu.product`). */
const LABEL = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$/;
export const LabelKey = z.string().regex(LABEL, 'a label key is 1-63 letters, digits, ".", "_", "-" or "/", starting and ending with a letter or digit');
export const LabelValue = z.string().regex(LABEL, 'a label value is 1-63 letters, digits, ".", "_", "-" or "/", starting and ending with a letter or digit');

/** `sha256:<64 hex>` or the bare hex, stored bare and lower case. */
export const CatalogDigest = z
  .string()
  .transform((value) => normalizeDigest(value))
  .pipe(z.string().regex(/^[0-9a-f]{64}$/, 'digest must be a sha256: 64 hex digits, with or without "sha256:"'));

export const CatalogCopies = z
  .strictObject({
    /** Nodes that should hold the model on disk; default: every node the entry's `on` allows. */
    min: z.number().int().min(0).max(10_000),
    /** Most nodes that keep it; default no limit (copies that exist are not deleted for being extra). */
    max: z.number().int().min(0).max(10_000).optional(),
  })
  .refine((copies) => copies.max === undefined || copies.max >= copies.min, { message: 'copies.max must be at least copies.min', path: ['max'] });

export const CatalogPlacement = z.strictObject({
  /** Only these agents (ids). */
  agents: z.array(z.string().min(1).max(200)).min(1).max(1_000).optional(),
  /** Only agents whose `AGENT_LABELS` have every one of these key=value pairs. */
  labels: z.record(LabelKey, LabelValue).optional(),
});

/** What an operator writes: `PUT /admin/models/:name`. Every field is optional; absent ones take their defaults. */
export const CatalogEntryInput = z.strictObject({
  /** The build to hold; default: whatever the registry serves for the name when a node pulls it. */
  digest: CatalogDigest.optional(),
  copies: CatalogCopies.optional(),
  on: CatalogPlacement.optional(),
  /** Keep it loaded on the nodes that hold it (as `PINNED_MODELS` does). */
  pinned: z.boolean().optional(),
  /** Never delete it from a node's disk to make room, even where the catalog no longer places it. */
  keep_on_disk: z.boolean().optional(),
  /**
   * A new `digest` starts a rollout: unpinned jobs move to the new build once this share of
   * the nodes that should hold the model have it (default 1: all of them).
   */
  required_share: z.number().gt(0).max(1).optional(),
  /** Send this share of unpinned jobs to the new build as soon as one node has it, until `promote`. */
  canary: z.strictObject({ share: z.number().gt(0).lt(1) }).optional(),
});
export type CatalogEntryInput = z.infer<typeof CatalogEntryInput>;

export const CatalogEntry = z.object({
  name: z.string().min(1),
  digest: z.string().optional(),
  copies: z.object({ min: z.number().int().nonnegative(), max: z.number().int().nonnegative().optional() }).optional(),
  on: z.object({ agents: z.array(z.string()).optional(), labels: z.record(z.string(), z.string()).optional() }).optional(),
  pinned: z.boolean().optional(),
  keep_on_disk: z.boolean().optional(),
  /**
   * Being removed from the fleet (Ollama's `DELETE /api/delete` on the broker): every node
   * deletes it once no job needs it, and the entry goes when no node holds it.
   */
  removing: z.boolean().optional(),
  required_share: z.number().optional(),
  canary: z.object({ share: z.number() }).optional(),
  /** The last move from one build to another; see {@link rolloutStatus}. */
  rollout: z
    .object({
      from: z.string(),
      to: z.string(),
      started_at: z.number().int(),
      /** The canary was promoted: every unpinned job goes to the new build once enough nodes hold it. */
      promoted_at: z.number().int().optional(),
      /** Rolled back: `to` is the build the fleet returns to. */
      aborted_at: z.number().int().optional(),
      /** No node holds `from` any more (set by the API's maintenance). */
      finished_at: z.number().int().optional(),
    })
    .optional(),
  created_at: z.number().int(),
  updated_at: z.number().int(),
});
export type CatalogEntry = z.infer<typeof CatalogEntry>;

/** Where a node stands with one catalog entry. */
export type HolderState = 'holds' | 'pulling' | 'to_pull' | 'wrong_build' | 'extra' | 'excluded';

export interface CatalogHolders {
  /** Agent ids that should hold the model (the rule's answer), best first. */
  wanted: string[];
  /** Agents the entry's `on` allows and that could still take it. */
  eligible: string[];
  /** Copies asked for that no eligible node can take (0 when the entry is satisfiable). */
  short: number;
  /** Each agent's position against the entry, with why an excluded one is. */
  nodes: Array<{ agent: string; state: HolderState; digest?: string; why?: string }>;
}

/** The agent's copy of a model (on disk), if any. */
function heldDigest(agent: AgentHeartbeat, model: string): string | undefined {
  const entry = agent.models_available.find((m) => m.name === model);
  return entry ? normalizeDigest(entry.digest) : undefined;
}

/**
 * Rendezvous (highest random weight) score: a stable, evenly spread order of nodes per
 * model. FNV-1a with murmur3's finalizer, in plain JS: the protocol package also runs in
 * browsers (the SDK), where node:crypto is not.
 */
function rendezvous(model: string, agent: string): number {
  const text = `${model}\u0000${agent}`;
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

/**
 * Which agents should hold `entry.name`, from the fleet's heartbeats. Deterministic, so every
 * agent reaches the same answer from the same heartbeats:
 * - eligible: not draining, allowed by `on`, and not reporting that the model cannot fit its
 *   disk (a `disk_full` pull failure);
 * - the wanted set is the first `copies.min` (default: all) of the eligible nodes, ordered
 *   nodes that hold the right build first, then those pulling it, then those holding another
 *   build, then by a rendezvous hash
 *   of model and agent (so copies spread evenly and a node joining moves few of them), plus
 *   any further node that already holds the build, up to `copies.max`;
 * - a `removing` entry wants no node.
 */
export function catalogHolders(entry: CatalogEntry, agents: readonly AgentHeartbeat[]): CatalogHolders {
  const wantDigest = entry.digest;
  const nodes: CatalogHolders['nodes'] = [];
  const candidates: Array<{ agent: string; rank: number; score: number }> = [];
  for (const agent of agents) {
    const digest = heldDigest(agent, entry.name);
    const right = digest !== undefined && (wantDigest === undefined || digest === wantDigest);
    const pull = agent.pulls?.find((p) => p.model === entry.name);
    // Two kinds of exclusion: where the entry does not place the model (a copy there is
    // `extra`, to be deleted), and nodes that cannot take it now (a copy there stays).
    let placedOff: string | undefined;
    if (entry.removing) placedOff = 'the model is being removed from the fleet';
    else if (entry.on?.agents && !entry.on.agents.includes(agent.id)) placedOff = 'not in on.agents';
    else if (entry.on?.labels) {
      const missing = Object.entries(entry.on.labels).find(([key, value]) => agent.labels?.[key] !== value);
      if (missing) placedOff = `label ${missing[0]}=${missing[1]} not set (AGENT_LABELS)`;
    }
    let why = placedOff;
    if (why === undefined && agent.state === 'draining') why = 'agent is draining';
    else if (why === undefined && agent.state === 'degraded') why = 'its backend does not answer';
    if (why === undefined && !right && pull?.cause === 'disk_full') why = `disk full: ${pull.error ?? 'the model does not fit'}`;
    if (placedOff !== undefined && digest !== undefined) {
      nodes.push({ agent: agent.id, state: 'extra', digest, why: placedOff });
      continue;
    }
    nodes.push({ agent: agent.id, state: 'excluded', ...(digest !== undefined && { digest }), ...(why !== undefined && { why }) });
    if (why !== undefined) continue;
    const pulling = pull !== undefined && pull.state !== 'failed';
    // A node holding another build comes before one holding none: a rollout moves the copies
    // that exist rather than deleting one and pulling afresh elsewhere.
    candidates.push({ agent: agent.id, rank: right ? 0 : pulling ? 1 : digest !== undefined ? 2 : 3, score: rendezvous(entry.name, agent.id) });
  }
  candidates.sort((a, b) => a.rank - b.rank || b.score - a.score || (a.agent < b.agent ? -1 : 1));
  const min = entry.copies?.min ?? candidates.length;
  const max = entry.copies?.max ?? Number.POSITIVE_INFINITY;
  const wanted: string[] = [];
  for (const [index, candidate] of candidates.entries()) {
    if (wanted.length >= max) break;
    if (index < min || candidate.rank === 0) wanted.push(candidate.agent);
  }
  const wantedSet = new Set(wanted);
  for (const node of nodes) {
    if (node.why !== undefined) continue;
    const agent = agents.find((a) => a.id === node.agent)!;
    const right = node.digest !== undefined && (wantDigest === undefined || node.digest === wantDigest);
    const pull = agent.pulls?.find((p) => p.model === entry.name);
    if (!wantedSet.has(node.agent)) node.state = node.digest !== undefined ? 'extra' : 'excluded';
    else if (right) node.state = 'holds';
    else if (pull !== undefined && pull.state !== 'failed') node.state = 'pulling';
    else node.state = node.digest !== undefined ? 'wrong_build' : 'to_pull';
  }
  return { wanted, eligible: candidates.map((c) => c.agent), short: Math.max(0, (entry.copies?.min ?? 0) - candidates.length), nodes };
}

/** Digests of a model across the fleet's disks: more than one is drift (the catalog's reconciler fixes it when it names a digest). */
export function fleetDigests(model: string, agents: readonly AgentHeartbeat[]): Map<string, string[]> {
  const byDigest = new Map<string, string[]>();
  for (const agent of agents) {
    const digest = heldDigest(agent, model);
    if (digest === undefined) continue;
    byDigest.set(digest, [...(byDigest.get(digest) ?? []), agent.id]);
  }
  return byDigest;
}

export type RolloutState = 'pulling' | 'canary' | 'promoting' | 'done' | 'aborted';

export interface RolloutStatus {
  state: RolloutState;
  from: string;
  to: string;
  /** Nodes the catalog places the model on, and how many of them must hold `to` before unpinned jobs move. */
  wanted: number;
  required: number;
  /** Agents holding each build: `to` under the model's name; `from` under its name or kept under a rollout copy. */
  on_to: string[];
  on_from: string[];
  /** Share of unpinned jobs sent to `to` now (0 until the gate opens, the canary's share, then 1). */
  to_share: number;
}

/**
 * Where a model stands against its catalog entry, from the live heartbeats (built by the
 * API's `modelStatus`, read by the SDK and the CLI): what `GET /admin/models` answers, what `POST /api/pull` on the broker reports as progress, and
 * what the drift metric counts.
 *
 * `state`:
 * - `ready`: every node the entry places it on holds the asked build;
 * - `pulling`: some are still downloading it (or about to);
 * - `failing`: a node's pull keeps failing (its `nodes[].pull` says why), and no other
 *   node is left to take the copy;
 * - `short`: the entry asks for more copies than eligible nodes can hold;
 * - `removing`: being deleted from the fleet (`DELETE /api/delete`);
 * - `unmanaged`: the fleet has it but the catalog has no entry (served where it is).
 */
export interface CatalogModelStatus {
  name: string;
  entry: CatalogEntry | null;
  state: 'ready' | 'pulling' | 'failing' | 'short' | 'removing' | 'unmanaged';
  /** Nodes the rule places the model on, and how many hold the asked build. */
  wanted: number;
  holding: number;
  /** Digest → agents holding that build on disk. More than one digest outside a rollout is drift. */
  digests: Record<string, string[]>;
  drift: boolean;
  /** Bytes to download and downloaded, over the nodes pulling it (for aggregated progress). */
  progress: { total_bytes: number; completed_bytes: number };
  nodes: Array<{ agent: string; state: string; digest?: string; why?: string; pull?: ModelPull }>;
  /** What keeps it from `ready`, one line each, naming the node and the cause. */
  problems: string[];
  /** The entry's last rollout, while it runs and after (GET /admin/models/:name/rollout has the detail). */
  rollout?: RolloutView;
}

/** `GET /admin/models/:name/rollout`: where a move from one build to another stands. */
export interface RolloutView extends RolloutStatus {
  model: string;
  started_at: number;
  promoted_at?: number;
  aborted_at?: number;
  finished_at?: number;
  canary?: { share: number };
  /** Each node: the build under the model's name, old builds it keeps for pinned jobs, and its download. */
  nodes: Array<{ agent: string; digest?: string; kept: string[]; pull?: ModelPull }>;
  /** Bytes of the new build to download and downloaded, over the nodes pulling it. */
  progress: { total_bytes: number; completed_bytes: number };
  /** The two builds side by side, from every agent's totals since it started: what a canary is judged on. */
  builds: Record<string, BuildFigures>;
}

export interface BuildFigures {
  jobs: number;
  failed: number;
  error_rate: number;
  /** Mean time from claim to first token of completed jobs. */
  mean_ttft_ms?: number;
  tokens_per_s?: number;
}

/** Agents that can serve `digest` of `model`: under the model's own name, or under a rollout copy (`kept_builds`). */
export function agentsWithBuild(model: string, digest: string, agents: readonly AgentHeartbeat[]): string[] {
  return agents
    .filter(
      (agent) =>
        agent.state !== 'draining' &&
        (agent.models_available.some((m) => m.name === model && normalizeDigest(m.digest) === digest) ||
          agent.kept_builds?.some((kept) => kept.model === model && normalizeDigest(kept.digest) === digest) === true),
    )
    .map((agent) => agent.id);
}

/**
 * Where a rollout stands, from the entry and the fleet's heartbeats (every reader computes the
 * same): `pulling` until `required_share` of the placed nodes hold the new build (unpinned
 * jobs stay on the old one), `canary` while a canary share runs and is not promoted,
 * `promoting` once unpinned jobs go to the new build and old copies drain, `done` when no
 * node holds the old build. `aborted` is a rollback under way (`to` is the old build).
 */
export function rolloutStatus(entry: CatalogEntry, agents: readonly AgentHeartbeat[]): RolloutStatus | undefined {
  const rollout = entry.rollout;
  if (!rollout) return undefined;
  const holders = catalogHolders(entry, agents);
  const onTo = agentsWithBuild(entry.name, rollout.to, agents);
  const onFrom = agentsWithBuild(entry.name, rollout.from, agents);
  // A node counts once it holds the new build and, where its old build is warm, has the new
  // one warm too (its agent loads it first), so opening the gate costs no cold load.
  const ready = (id: string) => {
    const agent = agents.find((candidate) => candidate.id === id);
    if (!agent || !onTo.includes(id)) return false;
    const oldWarm = agent.kept_builds?.some((kept) => kept.model === entry.name && normalizeDigest(kept.digest) === rollout.from && kept.loaded) === true;
    return !oldWarm || agent.models_loaded.some((model) => model.name === entry.name && normalizeDigest(model.digest) === rollout.to);
  };
  const wantedOnTo = holders.wanted.filter(ready).length;
  const required = holders.wanted.length === 0 ? 1 : Math.max(1, Math.ceil((entry.required_share ?? 1) * holders.wanted.length - 1e-9));
  const base = { from: rollout.from, to: rollout.to, wanted: holders.wanted.length, required, on_to: onTo, on_from: onFrom };
  const enough = wantedOnTo >= required;
  if (rollout.finished_at !== undefined || (enough && onFrom.length === 0) || (rollout.aborted_at !== undefined && onFrom.length === 0))
    return { ...base, state: rollout.aborted_at !== undefined ? 'aborted' : 'done', to_share: onTo.length > 0 ? 1 : 0 };
  if (rollout.aborted_at !== undefined) return { ...base, state: 'aborted', to_share: onTo.length > 0 ? 1 : 0 };
  const canaryOpen = entry.canary !== undefined && rollout.promoted_at === undefined;
  if (canaryOpen && onTo.length > 0) return { ...base, state: 'canary', to_share: onFrom.length > 0 ? entry.canary!.share : 1 };
  if (!enough || canaryOpen) return { ...base, state: 'pulling', to_share: onFrom.length > 0 ? 0 : onTo.length > 0 ? 1 : 0 };
  return { ...base, state: 'promoting', to_share: 1 };
}

/**
 * The build an unpinned job of a model in a rollout goes to (the API pins it to that build's
 * queue), or undefined to leave it unpinned (no rollout, or no node holds either build).
 * `random` in [0, 1) picks canary jobs.
 */
export function rolloutBuildFor(entry: CatalogEntry, agents: readonly AgentHeartbeat[], random: number): string | undefined {
  const status = rolloutStatus(entry, agents);
  if (!status || status.state === 'done') return undefined;
  if (status.to_share >= 1) return status.on_to.length > 0 ? status.to : undefined;
  if (status.to_share > 0 && random < status.to_share) return status.to;
  return status.on_from.length > 0 ? status.from : undefined;
}
