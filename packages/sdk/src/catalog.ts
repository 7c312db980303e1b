import type { CatalogModelStatus, RolloutView } from '@switchyard/protocol';

export type { BuildFigures, CatalogEntryInput, CatalogModelStatus, RolloutView } from '@switchyard/protocol';

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
