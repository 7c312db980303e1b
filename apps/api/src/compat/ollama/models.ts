import type { FastifyInstance } from 'fastify';
import { ApiErrorCode, canonicalModelName, OllamaCompatShowRequest, type AgentHeartbeat, type ModelInfoRecord } from '@switchyard/protocol';
import type { ApiContext } from '../../context.js';
import { CompatError, fromZodError } from '../compat-error.js';
import { readModelInfos } from '../../model-infos.js';
import { modifiedAtMs } from '../model-info.js';
import { access } from '../../access.js';
import { truncateInput } from '../../errors.js';

/**
 * The Ollama API version Switchyard speaks. Clients (Open WebUI, ollama-js) gate features on
 * it; this is the version whose wire format the endpoints follow.
 */
export const OLLAMA_API_VERSION = '0.12.6';

/**
 * `expires_at` for loaded models. No per-node timer decides when a model leaves a GPU here:
 * the agents evict by policy, so models report the far-future time Ollama itself shows for
 * `keep_alive: -1` (its max duration lands in 2318).
 */
const NO_TIMER_EXPIRY = '2318-01-01T00:00:00Z';

const EMPTY_DETAILS = { parent_model: '', format: 'gguf', family: '', families: null, parameter_size: '', quantization_level: '' };

function details(info: ModelInfoRecord | undefined): unknown {
  const value = info?.show['details'];
  return value !== null && typeof value === 'object' ? value : EMPTY_DETAILS;
}

function liveAgents(agents: readonly AgentHeartbeat[]): AgentHeartbeat[] {
  return agents.filter((agent) => agent.state === 'ready').sort((a, b) => a.id.localeCompare(b.id));
}

/** `GET /api/tags`, `GET /api/ps`, `POST /api/show`, `GET /api/version` (under the `/api` prefix). */
export function registerOllamaModels(scope: FastifyInstance, ctx: ApiContext): void {
  scope.get('/version', access('tenant'), async (request) => {
    await ctx.tenantOf(request);
    return { version: OLLAMA_API_VERSION };
  });

  /**
   * The union of every live agent's models; `switchyard.agents` says which nodes hold each,
   * `switchyard.agents_by_digest` which nodes hold which build (after a fleet pull, every
   * node the catalog places the model on).
   */
  scope.get('/tags', access('tenant'), async (request) => {
    await ctx.tenantOf(request);
    const agents = liveAgents(await ctx.fleet.agents());
    const models = new Map<string, { size: number; digests: string[]; agents: string[]; byDigest: Record<string, string[]>; since: number }>();
    for (const agent of agents) {
      for (const model of agent.models_available) {
        const entry = models.get(model.name) ?? { size: model.size_bytes, digests: [], agents: [], byDigest: {}, since: agent.started_at };
        if (!entry.digests.includes(model.digest)) entry.digests.push(model.digest);
        entry.agents.push(agent.id);
        (entry.byDigest[model.digest] ??= []).push(agent.id);
        entry.since = Math.min(entry.since, agent.started_at);
        models.set(model.name, entry);
      }
    }
    const names = [...models.keys()].sort();
    const infos = await readModelInfos(ctx, names);
    return {
      models: names.map((name) => {
        const entry = models.get(name)!;
        const info = infos.get(name);
        return {
          name,
          model: name,
          modified_at: new Date(modifiedAtMs(info) ?? entry.since).toISOString(),
          size: entry.size,
          digest: entry.digests[0] ?? '',
          details: details(info),
          // Non-standard: the agents that have the model, every digest seen (drift shows as
          // more than one), and which agents hold each digest.
          switchyard: { agents: entry.agents, digests: entry.digests, agents_by_digest: entry.byDigest },
        };
      }),
    };
  });

  /** Models loaded anywhere in the fleet, one entry per model, with where they are loaded. */
  scope.get('/ps', access('tenant'), async (request) => {
    await ctx.tenantOf(request);
    const agents = liveAgents(await ctx.fleet.agents());
    const loaded = new Map<string, { digest: string; size: number; agents: Array<{ id: string; size_vram: number; in_flight: number; last_used_at: string }> }>();
    for (const agent of agents) {
      for (const model of agent.models_loaded) {
        const entry = loaded.get(model.name) ?? { digest: model.digest, size: 0, agents: [] };
        entry.size = Math.max(entry.size, model.vram_bytes);
        entry.agents.push({
          id: agent.id,
          size_vram: model.vram_bytes,
          in_flight: model.in_flight,
          last_used_at: new Date(model.last_used_at).toISOString(),
        });
        loaded.set(model.name, entry);
      }
    }
    const names = [...loaded.keys()].sort();
    const infos = await readModelInfos(ctx, names);
    return {
      models: names.map((name) => {
        const entry = loaded.get(name)!;
        return {
          name,
          model: name,
          size: entry.size,
          digest: entry.digest,
          details: details(infos.get(name)),
          expires_at: NO_TIMER_EXPIRY,
          size_vram: entry.size,
          switchyard: { agents: entry.agents },
        };
      }),
    };
  });

  /** Answered from the `/api/show` body an agent that has the model shared through Redis. */
  scope.post('/show', access('tenant'), async (request) => {
    await ctx.tenantOf(request);
    const parsed = OllamaCompatShowRequest.safeParse(request.body ?? {});
    if (!parsed.success) throw fromZodError(parsed.error);
    const requested = parsed.data.model ?? parsed.data.name;
    if (!requested) throw new CompatError(400, ApiErrorCode.invalidRequest, 'model is required');
    const name = canonicalModelName(requested);
    const [infos, servable] = await Promise.all([readModelInfos(ctx, [name]), ctx.fleet.servableModels()]);
    const info = infos.get(name);
    if (!info || !servable.has(name)) throw new CompatError(404, ApiErrorCode.modelNotFound, `model '${truncateInput(requested)}' not found`);
    return info.show;
  });
}
