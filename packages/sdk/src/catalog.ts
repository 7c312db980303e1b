import type { CatalogEntry, CatalogEntryInput, ModelPull } from '@switchyard/protocol';

/** Where a model stands against the fleet catalog: what `GET /admin/models/:name` answers (apps/api/src/catalog-status.ts). */
export interface CatalogModelStatus {
  name: string;
  entry: CatalogEntry | null;
  state: 'ready' | 'pulling' | 'failing' | 'short' | 'removing' | 'unmanaged';
  wanted: number;
  holding: number;
  digests: Record<string, string[]>;
  drift: boolean;
  progress: { total_bytes: number; completed_bytes: number };
  nodes: Array<{ agent: string; state: string; digest?: string; why?: string; pull?: ModelPull }>;
  problems: string[];
  /** The entry's last rollout, while it runs and after. */
  rollout?: RolloutView;
}

export type { CatalogEntryInput };

/** `GET /admin/models/:name/rollout` (apps/api/src/catalog-status.ts `rolloutView`). */
export interface RolloutView {
  model: string;
  state: 'pulling' | 'canary' | 'promoting' | 'done' | 'aborted';
  from: string;
  to: string;
  wanted: number;
  required: number;
  on_to: string[];
  on_from: string[];
  to_share: number;
  started_at: number;
  promoted_at?: number;
  aborted_at?: number;
  finished_at?: number;
  canary?: { share: number };
  nodes: Array<{ agent: string; digest?: string; kept: string[]; pull?: ModelPull }>;
  progress: { total_bytes: number; completed_bytes: number };
  builds: Record<string, { jobs: number; failed: number; error_rate: number; mean_ttft_ms?: number; tokens_per_s?: number }>;
}

export function rolloutViewProblem(value: unknown): string | undefined {
  const view = value as Partial<RolloutView> | null;
  if (typeof view !== 'object' || view === null) return 'not an object';
  if (typeof view.state !== 'string') return 'state is not a string';
  if (typeof view.from !== 'string' || typeof view.to !== 'string') return 'from/to are not strings';
  if (!Array.isArray(view.on_to) || !Array.isArray(view.on_from)) return 'on_to/on_from are not arrays';
  if (typeof view.builds !== 'object' || view.builds === null) return 'builds is not an object';
  return undefined;
}

export function catalogStatusProblem(value: unknown): string | undefined {
  const status = value as Partial<CatalogModelStatus> | null;
  if (typeof status !== 'object' || status === null) return 'not an object';
  if (typeof status.name !== 'string') return 'name is not a string';
  if (typeof status.state !== 'string') return 'state is not a string';
  if (!Array.isArray(status.nodes)) return 'nodes is not an array';
  if (!Array.isArray(status.problems)) return 'problems is not an array';
  return undefined;
}
