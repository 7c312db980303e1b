import { ApiErrorCode, formatGB, jobContextVramBytes, normalizeDigest, pinnedQueueModel, type AgentHeartbeat, type GenerationOptions } from '@switchyard/protocol';
import { ApiError } from './errors.js';

export interface ModelPlacement {
  /** The queue the job goes to: the model's, or its digest-pinned queue. */
  queueKey: string;
  /** The full digest the job is pinned to, if any. */
  digest?: string;
}

/** VRAM of a node as its agent accounts it (all GPUs together), else its largest GPU (agents before `vram`). */
function nodeVramBytes(agent: AgentHeartbeat): number {
  return agent.vram?.total_bytes ?? Math.max(0, ...agent.gpus.map((gpu) => gpu.vram_total_bytes));
}

/**
 * Whether the live fleet can ever run a job of a model (and a pinned digest of it), and which
 * queue it waits on. Refuses with a message that says why: no agent has the model, none has
 * that digest, or it needs more VRAM than the largest GPU node has — the model itself, or
 * with the context the job asks (`options.num_ctx`), judged by the rule the agents use.
 */
export function placeModel(agents: AgentHeartbeat[], model: string, digest?: string, options?: GenerationOptions): ModelPlacement {
  const keeps = (agent: AgentHeartbeat) => digest !== undefined && agent.kept_builds?.some((kept) => kept.model === model) === true;
  const holders = agents.filter((agent) => agent.state === 'ready' && (agent.models_available.some((m) => m.name === model) || keeps(agent)));
  if (holders.length === 0) {
    const names = [...new Set(agents.flatMap((agent) => agent.models_available.map((m) => m.name)))].sort();
    throw new ApiError(ApiErrorCode.modelNotFound, `model ${JSON.stringify(model)} is not served by any live agent; available: ${names.length ? names.join(', ') : '(none)'}`);
  }
  // An old build kept under a rollout copy serves jobs pinned to it; it fits where the model did.
  let candidates = holders.flatMap((agent): Array<{ agent: AgentHeartbeat; entry: AgentHeartbeat['models_available'][number] }> => {
    const own = agent.models_available.find((m) => m.name === model);
    const kept = (digest === undefined ? [] : (agent.kept_builds ?? []).filter((k) => k.model === model)).map((k) => ({
      agent,
      entry: { ...(own ?? { name: model, vram_need_bytes: k.size_bytes }), digest: k.digest, size_bytes: k.size_bytes },
    }));
    return [...(own ? [{ agent, entry: own }] : []), ...kept];
  });
  let fullDigest: string | undefined;
  if (digest !== undefined) {
    const wanted = normalizeDigest(digest);
    const matching = candidates.filter(({ entry }) => normalizeDigest(entry.digest).startsWith(wanted));
    const digests = [...new Set(matching.map(({ entry }) => normalizeDigest(entry.digest)))];
    if (digests.length === 0) {
      const known = [...new Set(candidates.map(({ entry }) => normalizeDigest(entry.digest).slice(0, 12)))].join(', ');
      throw new ApiError(ApiErrorCode.modelNotFound, `no live agent has ${model} with digest ${wanted}; digests in the fleet: ${known}`);
    }
    if (digests.length > 1) throw new ApiError(ApiErrorCode.invalidRequest, `digest ${wanted} is ambiguous for ${model}: give more digits`);
    fullDigest = digests[0]!;
    candidates = matching;
  }
  const judged = candidates.map((candidate) => ({ ...candidate, contextBytes: jobContextVramBytes(candidate.entry.vram_profile, options) }));
  const fitting = judged.filter(({ agent, entry, contextBytes }) => entry.fits !== false && (contextBytes ?? 0) <= nodeVramBytes(agent));
  if (fitting.length === 0) {
    const need = Math.min(...judged.map(({ entry, contextBytes }) => Math.max(entry.vram_need_bytes ?? entry.size_bytes, contextBytes ?? 0)));
    const largest = Math.max(...judged.map(({ agent }) => nodeVramBytes(agent)));
    const asked = judged.some(({ contextBytes }) => contextBytes !== undefined) ? ` with num_ctx ${options?.num_ctx}` : '';
    throw new ApiError(
      ApiErrorCode.modelTooLarge,
      `model ${model}${asked} needs ${formatGB(need)} GB of VRAM; the largest GPU node that has it offers ${formatGB(largest)} GB`,
    );
  }
  return fullDigest === undefined ? { queueKey: model } : { queueKey: pinnedQueueModel(model, fullDigest), digest: fullDigest };
}
