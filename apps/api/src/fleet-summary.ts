import type { AgentHeartbeat, AgentState } from '@switchyard/protocol';
import type { ApiContext } from './context.js';
import type { AgentSummary, FleetSummary, ModelQueueSummary, VramSegment } from './fleet-ui/summary.js';
import { queuesByModel } from './fleet-view.js';
import { modelFigures, queueFigures } from './queue-figures.js';

export type { AgentSummary, FleetSummary, ModelQueueSummary, VramSegment };

/** Recent loads and unloads the summary lists, over all agents, newest first. */
export const SUMMARY_LIFECYCLE_EVENTS = 30;

/** The fleet page's whole view, from what the API already keeps: heartbeats, queue counts, the admission ledger and its metrics. */
export async function fleetSummary(ctx: Pick<ApiContext, 'fleet' | 'jobs' | 'admission' | 'metrics'>): Promise<FleetSummary> {
  const [agents, servable, counts, refused] = await Promise.all([ctx.fleet.agents(), ctx.fleet.servableModels(), ctx.jobs.queueCounts(), ctx.metrics.jobsRefused.get()]);
  // Where the last job waiting now starts: its position is the number of jobs ahead of it.
  const positions = new Map([...counts].filter(([, count]) => count.waiting > 0).map(([queueKey, count]) => [queueKey, [count.waiting - 1]]));
  const ledger = await ctx.admission.modelStats([...counts.keys()], positions);
  const now = Date.now();
  const figures = queueFigures(counts, ledger, now);
  const queues = queuesByModel(counts.keys());

  const names = [...new Set([...queues.keys(), ...servable.keys()])].sort();
  const models: ModelQueueSummary[] = names.map((model) => {
    const own = queues.get(model) ?? [];
    const etas = own
      .filter((queue) => (counts.get(queue.queueKey)?.waiting ?? 0) > 0)
      .map((queue) => ctx.admission.etaSeconds(ledger.get(queue.queueKey), counts.get(queue.queueKey)!.waiting - 1));
    const fleet = servable.get(model);
    return {
      model,
      ...modelFigures(own.map((queue) => figures(queue.queueKey))),
      eta_s: etas.length === 0 ? 0 : etas.some((eta) => eta === undefined) ? null : Math.max(...(etas as number[])),
      agents: fleet?.agents ?? [],
      loaded_on: fleet?.loadedOn ?? [],
      loading_on: fleet?.loadingOn ?? [],
    };
  });

  const sorted = [...agents].sort((a, b) => a.id.localeCompare(b.id));
  const byState: Record<AgentState, number> = { ready: 0, draining: 0, degraded: 0 };
  for (const agent of sorted) byState[agent.state]++;

  const byReason = new Map<string, { count: number; models: Record<string, number> }>();
  for (const value of refused.values) {
    if (value.value === 0) continue;
    const reason = String(value.labels.reason ?? 'unknown');
    const entry = byReason.get(reason) ?? { count: 0, models: {} };
    entry.count += value.value;
    const model = String(value.labels.model ?? 'unknown');
    entry.models[model] = (entry.models[model] ?? 0) + value.value;
    byReason.set(reason, entry);
  }
  const byReasonList = [...byReason].map(([reason, entry]) => ({ reason, ...entry })).sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));

  return {
    object: 'fleet_summary',
    generated_at: now,
    totals: {
      agents: sorted.length,
      by_state: byState,
      slots: sorted.reduce((sum, agent) => sum + agent.slots, 0),
      in_flight: sorted.reduce((sum, agent) => sum + agent.in_flight, 0),
      vram_total_bytes: sorted.reduce((sum, agent) => sum + (agent.vram?.total_bytes ?? 0), 0),
      vram_used_bytes: sorted.reduce((sum, agent) => sum + (agent.vram?.used_bytes ?? 0), 0),
      waiting: models.reduce((sum, model) => sum + model.waiting, 0),
    },
    agents: sorted.map((agent) => agentSummary(agent, now)),
    models,
    lifecycle: sorted
      .flatMap((agent) => (agent.lifecycle_log ?? []).map((event) => ({ ...event, agent: agent.id })))
      .sort((a, b) => b.at - a.at)
      .slice(0, SUMMARY_LIFECYCLE_EVENTS),
    refusals: { scope: 'replica', total: byReasonList.reduce((sum, entry) => sum + entry.count, 0), by_reason: byReasonList },
  };
}

export function agentSummary(agent: AgentHeartbeat, now: number): AgentSummary {
  const total = agent.vram?.total_bytes ?? agent.gpus.reduce((sum, gpu) => sum + gpu.vram_total_bytes, 0);
  const used = agent.vram?.used_bytes ?? agent.gpus.reduce((sum, gpu) => sum + gpu.vram_used_bytes, 0);
  const loaded = [...agent.models_loaded].sort((a, b) => a.name.localeCompare(b.name));
  const segments: VramSegment[] = loaded.map((model) => ({ kind: 'model', model: model.name, bytes: model.vram_bytes }));
  // The agent's used figure counts the reservation of a load under way on top of its resident models.
  const rest = Math.max(0, used - loaded.reduce((sum, model) => sum + model.vram_bytes, 0));
  const loading = agent.models_loading ?? [];
  if (rest > 0) segments.push(loading.length > 0 ? { kind: 'loading', model: loading[0]!, bytes: rest } : { kind: 'other', bytes: rest });
  const progress = new Map((agent.loads_in_progress ?? []).map((load) => [load.model, load]));
  const need = (name: string) => agent.models_available.find((model) => model.name === name)?.vram_need_bytes ?? 0;
  return {
    id: agent.id,
    state: agent.state,
    version: agent.version,
    backend: agent.backend.kind,
    slots: agent.slots,
    in_flight: agent.in_flight,
    labels: agent.labels ?? {},
    started_at: agent.started_at,
    updated_at: agent.updated_at,
    vram: { total_bytes: total, used_bytes: used, free_bytes: Math.max(0, total - used), segments },
    gpus: agent.gpus.map((gpu) => ({
      index: gpu.index,
      name: gpu.name,
      total_bytes: gpu.vram_total_bytes,
      used_bytes: gpu.vram_used_bytes,
      free_bytes: Math.max(0, gpu.vram_total_bytes - gpu.vram_used_bytes),
    })),
    models: [
      ...loaded.map((model) => ({
        name: model.name,
        state: 'loaded' as const,
        vram_bytes: model.vram_bytes,
        in_flight: model.in_flight,
        pinned: model.pinned === true,
        ...(model.loaded_at !== undefined && { loaded_at: model.loaded_at }),
      })),
      ...loading.map((name) => {
        const load = progress.get(name);
        return {
          name,
          state: 'loading' as const,
          vram_bytes: need(name),
          in_flight: 0,
          pinned: false,
          ...(load !== undefined && {
            progress: {
              started_at: load.started_at,
              expected_ms: load.expected_ms,
              // Never 1 before the agent says it is loaded: a load that overruns its estimate is still loading.
              fraction: load.expected_ms > 0 ? Math.round(Math.min(0.99, Math.max(0, (now - load.started_at) / load.expected_ms)) * 100) / 100 : 0,
            },
          }),
        };
      }),
    ],
    pulls: agent.pulls ?? [],
  };
}
