import type { CatalogEntryInput, CatalogModelStatus, RolloutView, SwitchyardClient } from '@switchyard/sdk';
import { EXIT } from '../exit-codes.js';
import { formatBytes, table } from '../format.js';
import type { CliIo } from '../io.js';

export type ModelsArgs =
  | { action: 'list'; json: boolean }
  | { action: 'show'; json: boolean; name: string }
  | { action: 'set'; json: boolean; name: string; entry: CatalogEntryInput }
  | { action: 'rm'; json: boolean; name: string }
  | { action: 'rollout'; json: boolean; name: string; step?: 'promote' | 'abort' };

/** Hex digits of a digest shown, as `docker images` shortens image ids. */
const SHORT = 12;
/** Characters of a model's first problem in `models list`. */
const PROBLEM_WIDTH = 60;

export function progress(status: CatalogModelStatus): string {
  const { total_bytes: total, completed_bytes: done } = status.progress;
  return total > 0 && status.state === 'pulling' ? `${Math.floor((100 * done) / total)}% of ${formatBytes(total)}` : '-';
}

export function digests(status: CatalogModelStatus): string {
  const list = Object.keys(status.digests).map((digest) => digest.slice(0, SHORT));
  if (list.length === 0) return '-';
  return status.drift ? `${list.join(', ')} (drift)` : list.join(', ');
}

/** A model's first problem, cut to fit a table row, and how many more there are. */
export function firstProblem(problems: string[], width = PROBLEM_WIDTH): string {
  const [first] = problems;
  if (first === undefined) return '-';
  const chars = [...first];
  const cut = chars.length > width ? `${chars.slice(0, width - 1).join('')}…` : first;
  return problems.length > 1 ? `${cut} (+${problems.length - 1} more)` : cut;
}

/** `models list`: one row per model; `show` has the whole problems. */
export function modelsTable(all: CatalogModelStatus[]): string {
  const rows = all.map((status) => [
    status.name,
    status.rollout && status.rollout.finished_at === undefined ? `${status.state}, rollout ${status.rollout.state}` : status.state,
    status.entry === null ? `${status.holding}` : `${status.holding}/${status.wanted}`,
    digests(status),
    progress(status),
    firstProblem(status.problems),
  ]);
  return table([['MODEL', 'STATE', 'COPIES', 'DIGESTS', 'PROGRESS', 'PROBLEMS'], ...rows]);
}

/** A node's pull: its state and percent, and for a failed one the cause and the backend's words. */
export function pullText(pull: NonNullable<CatalogModelStatus['nodes'][number]['pull']>): string {
  const percent = pull.total_bytes ? ` ${Math.floor((100 * (pull.completed_bytes ?? 0)) / pull.total_bytes)}%` : '';
  const attempts = pull.attempts > 1 ? `, attempt ${pull.attempts}` : '';
  if (pull.state === 'failed') return `failed (${pull.cause ?? 'error'}${attempts}): ${pull.error ?? 'no detail'}`;
  return `${pull.state}${percent}${pull.cause ? ` (${pull.cause})` : ''}${attempts}`;
}

/** One line on a rollout: its state, the two builds, the gate and what the canary sends. */
export function rolloutLine(view: RolloutView): string {
  const share = view.to_share > 0 && view.to_share < 1 ? `, ${Math.round(view.to_share * 100)}% of unpinned jobs to the new build` : '';
  const pulled = view.state === 'pulling' && view.progress.total_bytes > 0 ? `, ${Math.floor((100 * view.progress.completed_bytes) / view.progress.total_bytes)}% pulled` : '';
  return `${view.model}: rollout ${view.state}, ${view.from.slice(0, SHORT)} → ${view.to.slice(0, SHORT)}; ${view.on_to.length} node(s) on the new build (${view.required} needed of ${view.wanted})${share}${pulled}`;
}

export function line(status: CatalogModelStatus): string {
  const copies = status.entry === null ? `${status.holding}` : `${status.holding}/${status.wanted}`;
  return `${status.name}: ${status.state}, ${copies} cop${status.holding === 1 ? 'y' : 'ies'}${status.problems[0] ? `; ${status.problems[0]}` : ''}`;
}

/**
 * `switchyard models list|show|set|rm|rollout` (admin key): the fleet catalog, the desired state of
 * which models the fleet holds on disk, where and at which build; agents pull and delete
 * to match it (docs/operations.md, the fleet catalog).
 */
export async function modelsCommand(io: CliIo, client: SwitchyardClient, args: ModelsArgs): Promise<number> {
  const print = (value: unknown): number => {
    io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    return EXIT.ok;
  };
  switch (args.action) {
    case 'list': {
      const all = await client.catalog();
      if (args.json) return print({ models: all });
      if (all.length === 0) {
        io.stdout.write('no models in the fleet or its catalog\n');
        return EXIT.ok;
      }
      io.stdout.write(`${modelsTable(all)}\n`);
      return EXIT.ok;
    }
    case 'show': {
      const status = await client.catalogModel(args.name);
      if (args.json) return print(status);
      io.stdout.write(`${line(status)}\n`);
      if (status.entry !== null) io.stdout.write(`entry: ${JSON.stringify({ ...status.entry, created_at: undefined, updated_at: undefined })}\n`);
      const rows = status.nodes.map((node) => [node.agent, node.state, node.digest?.slice(0, SHORT) ?? '-', node.pull ? pullText(node.pull) : '-', node.why ?? '']);
      if (rows.length > 0) io.stdout.write(`${table([['AGENT', 'STATE', 'DIGEST', 'PULL', 'WHY'], ...rows])}\n`);
      for (const problem of status.problems) io.stdout.write(`problem: ${problem}\n`);
      return EXIT.ok;
    }
    case 'set': {
      const status = await client.setCatalogModel(args.name, args.entry);
      if (args.json) return print(status);
      io.stdout.write(`${line(status)} (agents reconcile within a pass; switchyard models show ${args.name})\n`);
      return EXIT.ok;
    }
    case 'rollout': {
      const view = args.step === undefined ? await client.rollout(args.name) : await client.rolloutStep(args.name, args.step);
      if (args.json) return print(view);
      io.stdout.write(`${rolloutLine(view)}\n`);
      const rows = [view.from, view.to].map((digest) => {
        const figures = view.builds[digest];
        const nodes = digest === view.to ? view.on_to : view.on_from;
        return [
          `${digest.slice(0, SHORT)}${digest === view.to ? ' (to)' : ' (from)'}`,
          `${nodes.length}`,
          `${figures?.jobs ?? 0}`,
          figures && figures.jobs > 0 ? `${(100 * figures.error_rate).toFixed(1)}%` : '-',
          figures?.mean_ttft_ms !== undefined ? `${figures.mean_ttft_ms} ms` : '-',
          figures?.tokens_per_s !== undefined ? `${figures.tokens_per_s}` : '-',
        ];
      });
      io.stdout.write(`${table([['BUILD', 'NODES', 'JOBS', 'ERRORS', 'TTFT', 'TOKENS/S'], ...rows])}\n`);
      return EXIT.ok;
    }
    case 'rm': {
      await client.removeCatalogModel(args.name);
      if (args.json) return print({ name: args.name, deleted: true });
      io.stdout.write(`${args.name}: catalog entry removed; the model is unmanaged and stays on the nodes that hold it\n`);
      return EXIT.ok;
    }
  }
}
