import type { CatalogEntryInput, CatalogModelStatus, SwitchyardClient } from '@switchyard/sdk';
import { EXIT } from '../exit-codes.js';
import { formatBytes, table } from '../format.js';
import type { CliIo } from '../io.js';

export type ModelsArgs =
  | { action: 'list'; json: boolean }
  | { action: 'show'; json: boolean; name: string }
  | { action: 'set'; json: boolean; name: string; entry: CatalogEntryInput }
  | { action: 'rm'; json: boolean; name: string };

/** Hex digits of a digest shown, as `docker images` shortens image ids. */
const SHORT = 12;

function progress(status: CatalogModelStatus): string {
  const { total_bytes: total, completed_bytes: done } = status.progress;
  return total > 0 && status.state === 'pulling' ? `${Math.floor((100 * done) / total)}% of ${formatBytes(total)}` : '-';
}

function digests(status: CatalogModelStatus): string {
  const list = Object.keys(status.digests).map((digest) => digest.slice(0, SHORT));
  if (list.length === 0) return '-';
  return status.drift ? `${list.join(', ')} (drift)` : list.join(', ');
}

function line(status: CatalogModelStatus): string {
  const copies = status.entry === null ? `${status.holding}` : `${status.holding}/${status.wanted}`;
  return `${status.name}: ${status.state}, ${copies} cop${status.holding === 1 ? 'y' : 'ies'}${status.problems[0] ? `; ${status.problems[0]}` : ''}`;
}

/**
 * `switchyard models list|show|set|rm` (admin key): the fleet catalog, the desired state of
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
      const rows = all.map((status) => [
        status.name,
        status.state,
        status.entry === null ? `${status.holding}` : `${status.holding}/${status.wanted}`,
        digests(status),
        progress(status),
        status.problems[0] ?? '-',
      ]);
      io.stdout.write(`${table([['MODEL', 'STATE', 'COPIES', 'DIGESTS', 'PROGRESS', 'PROBLEMS'], ...rows])}\n`);
      return EXIT.ok;
    }
    case 'show': {
      const status = await client.catalogModel(args.name);
      if (args.json) return print(status);
      io.stdout.write(`${line(status)}\n`);
      if (status.entry !== null) io.stdout.write(`entry: ${JSON.stringify({ ...status.entry, created_at: undefined, updated_at: undefined })}\n`);
      const rows = status.nodes.map((node) => [
        node.agent,
        node.state,
        node.digest?.slice(0, SHORT) ?? '-',
        node.pull
          ? `${node.pull.state}${node.pull.total_bytes ? ` ${Math.floor((100 * (node.pull.completed_bytes ?? 0)) / node.pull.total_bytes)}%` : ''}${node.pull.cause ? ` (${node.pull.cause})` : ''}`
          : '-',
        node.why ?? '',
      ]);
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
    case 'rm': {
      await client.removeCatalogModel(args.name);
      if (args.json) return print({ name: args.name, deleted: true });
      io.stdout.write(`${args.name}: catalog entry removed; the model is unmanaged and stays on the nodes that hold it\n`);
      return EXIT.ok;
    }
  }
}
