/**
 * The shape of `GET /admin/fleet/summary` (and of each `summary` event of
 * `GET /admin/fleet/events`), shared by the API that builds it (fleet-summary.ts) and the
 * page's script that draws it (app.ts). Type-only and free of imports, so the browser build
 * of this directory needs nothing from Node or the server; the server's build checks that
 * what it fills in from heartbeats matches.
 */

export type AgentState = 'ready' | 'draining' | 'degraded';

/** A model download on an agent (protocol ModelPull, the fields the page shows). */
export interface PullSummary {
  model: string;
  state: 'queued' | 'pulling' | 'verifying' | 'failed';
  total_bytes?: number;
  completed_bytes?: number;
  cause?: string;
  error?: string;
}

/** One load, failed load or unload (protocol LifecycleEvent) and the agent it happened on. */
export interface LifecycleSummary {
  agent: string;
  at: number;
  kind: 'loaded' | 'load_failed' | 'unloaded';
  model: string;
  reason: string;
  seconds?: number;
  out_of_memory?: boolean;
}

/** A slice of a node's VRAM bar: a resident model, the reservation of a load under way, or used by nothing this agent accounts. */
export interface VramSegment {
  kind: 'model' | 'loading' | 'other';
  model?: string;
  bytes: number;
}

export interface AgentSummary {
  id: string;
  state: AgentState;
  version: string;
  backend: string;
  slots: number;
  in_flight: number;
  labels: Record<string, string>;
  started_at: number;
  updated_at: number;
  /**
   * The node's VRAM as the agent accounts it (all GPUs: the backend spreads a model over
   * them, so placement treats the node as one pool and a heartbeat does not say which GPU
   * holds which model), split by model; `free_bytes` is the rest.
   */
  vram: { total_bytes: number; used_bytes: number; free_bytes: number; segments: VramSegment[] };
  /** Each GPU's own figures (nvidia-smi's when the agent reads it; configured GPUs show the agent's account on the first). */
  gpus: Array<{ index: number; name: string; total_bytes: number; used_bytes: number; free_bytes: number }>;
  models: Array<{
    name: string;
    state: 'loaded' | 'loading';
    vram_bytes: number;
    in_flight: number;
    pinned: boolean;
    loaded_at?: number;
    /** A load under way: its start, the agent's expected duration, and the fraction elapsed (below 1 until it ends). */
    progress?: { started_at: number; expected_ms: number; fraction: number };
  }>;
  pulls: PullSummary[];
}

/** One queue's backpressure figures (the API's queue-figures.ts). */
export interface QueueFigures {
  waiting: number;
  active: number;
  depth: number;
  oldest_wait_s: number;
  drain_rate_per_s: number;
}

export interface ModelQueueSummary extends QueueFigures {
  model: string;
  /** Seconds until the last job waiting now starts, by admission's own estimate; null while there is no drain rate to estimate from. */
  eta_s: number | null;
  /** Ready agents that hold it, have it loaded, are loading it (as `GET /v1/models`). */
  agents: string[];
  loaded_on: string[];
  loading_on: string[];
}

export interface FleetSummary {
  object: 'fleet_summary';
  generated_at: number;
  totals: {
    agents: number;
    by_state: Record<AgentState, number>;
    slots: number;
    in_flight: number;
    vram_total_bytes: number;
    vram_used_bytes: number;
    waiting: number;
  };
  agents: AgentSummary[];
  /** Every model with a queue or a ready agent serving it, by name. */
  models: ModelQueueSummary[];
  /** The agents' last loads and unloads (each agent's heartbeat keeps its last 20), newest first. */
  lifecycle: LifecycleSummary[];
  /**
   * Admission refusals counted by this API replica since it started (`switchyard_jobs_refused_total`
   * is per process: with several replicas, Prometheus sums them).
   */
  refusals: { scope: 'replica'; total: number; by_reason: Array<{ reason: string; count: number; models: Record<string, number> }> };
}
