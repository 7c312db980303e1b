import type { ModelEntry, SwitchyardClient } from '@switchyard/sdk';
import { EXIT } from '../exit-codes.js';
import { formatDuration, table } from '../format.js';
import type { CliIo } from '../io.js';

export interface QueueRow {
  model: string;
  servable: boolean | null;
  waiting: number;
  active: number;
  /** Seconds the oldest waiting job has waited; null when the API does not report it. */
  oldest_wait_s: number | null;
  /** Jobs finished per second; null when the API does not report it. */
  drain_rate_per_s: number | null;
  loaded_on: string[];
  /** The model's digest-pinned queues, also counted in the model's figures. */
  pinned: PinnedQueueRow[];
}

export interface PinnedQueueRow {
  digest: string;
  waiting: number;
  active: number;
  oldest_wait_s: number | null;
  drain_rate_per_s: number | null;
}

/** Hex digits of a digest shown in the table, as `docker images` shortens image ids. */
const SHORT_DIGEST = 12;

export function queueRow(model: ModelEntry): QueueRow {
  const queue = model.queue ?? {};
  return {
    model: model.id,
    servable: model.servable ?? null,
    waiting: queue.waiting ?? 0,
    active: queue.active ?? 0,
    oldest_wait_s: typeof queue.oldest_wait_s === 'number' ? queue.oldest_wait_s : null,
    drain_rate_per_s: typeof queue.drain_rate_per_s === 'number' ? queue.drain_rate_per_s : null,
    loaded_on: model.loaded_on ?? [],
    pinned: (Array.isArray(queue.pinned) ? queue.pinned : []).map((pinned) => ({
      digest: pinned.digest,
      waiting: pinned.waiting ?? 0,
      active: pinned.active ?? 0,
      oldest_wait_s: typeof pinned.oldest_wait_s === 'number' ? pinned.oldest_wait_s : null,
      drain_rate_per_s: typeof pinned.drain_rate_per_s === 'number' ? pinned.drain_rate_per_s : null,
    })),
  };
}

/**
 * `switchyard queues`: depth, oldest wait and drain rate per model, each digest-pinned queue
 * on a line of its own under its model (`digest <short hex>`): idle ones only with `all`.
 */
export async function queuesCommand(io: CliIo, client: SwitchyardClient, args: { json: boolean; all: boolean }): Promise<number> {
  const rows = (await client.models()).map(queueRow).filter((row) => args.all || row.servable !== false || row.waiting > 0 || row.active > 0);
  if (args.json) {
    io.stdout.write(`${JSON.stringify({ queues: rows }, null, 2)}\n`);
    return EXIT.ok;
  }
  if (rows.length === 0) {
    io.stdout.write('no models\n');
    return EXIT.ok;
  }
  const text = table([
    ['MODEL', 'WAITING', 'ACTIVE', 'OLDEST WAIT', 'DRAIN RATE', 'LOADED ON'],
    ...rows.flatMap((row) => [
      [row.servable === false ? `${row.model} (not servable)` : row.model, ...figures(row), row.loaded_on.length > 0 ? row.loaded_on.join(', ') : '-'],
      ...row.pinned
        .filter((pinned) => args.all || pinned.waiting > 0 || pinned.active > 0)
        .map((pinned) => [`  digest ${pinned.digest.slice(0, SHORT_DIGEST)}`, ...figures(pinned), '']),
    ]),
  ]);
  io.stdout.write(`${text}\n`);
  return EXIT.ok;
}

function figures(row: Pick<QueueRow, 'waiting' | 'active' | 'oldest_wait_s' | 'drain_rate_per_s'>): string[] {
  return [
    String(row.waiting),
    String(row.active),
    row.oldest_wait_s === null ? 'n/a' : row.waiting === 0 ? '-' : formatDuration(row.oldest_wait_s),
    row.drain_rate_per_s === null ? 'n/a' : `${row.drain_rate_per_s.toFixed(2)}/s`,
  ];
}
