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
}

export type { CatalogEntryInput };

export function catalogStatusProblem(value: unknown): string | undefined {
  const status = value as Partial<CatalogModelStatus> | null;
  if (typeof status !== 'object' || status === null) return 'not an object';
  if (typeof status.name !== 'string') return 'name is not a string';
  if (typeof status.state !== 'string') return 'state is not a string';
  if (!Array.isArray(status.nodes)) return 'nodes is not an array';
  if (!Array.isArray(status.problems)) return 'problems is not an array';
  return undefined;
}
