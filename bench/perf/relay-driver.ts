import { fork } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Agent } from 'undici';
import { consumeSse } from '../common/sse.js';

export interface RelayStats {
  events: number;
  tokens: number;
  delaysMs: number[];
  seconds: number;
  sent: number;
}

/**
 * Opens one SSE stream per job on the API, runs `producers` token producer processes for
 * `durationMs`, and collects what arrived: tokens, events, and each event's delivery delay.
 */
export async function driveRelay(options: {
  apiUrl: string;
  redisUrl: string;
  /** A Redis Cluster's nodes: the producers write there instead of `redisUrl`. */
  clusterNodes?: Array<{ host: string; port: number }>;
  prefix: string;
  jobIds: string[];
  eventsPerS: number;
  tokensPerEvent: number;
  durationMs: number;
  producers: number;
  /** Skip delays recorded before this many ms (warm-up). */
  warmupMs?: number;
  onStreamsOpen?: () => Promise<void>;
}): Promise<RelayStats> {
  const dispatcher = new Agent({ connections: options.jobIds.length + 10, pipelining: 1, bodyTimeout: 0, headersTimeout: 0 });
  const stats: RelayStats = { events: 0, tokens: 0, delaysMs: [], seconds: 0, sent: 0 };
  const controller = new AbortController();
  // One signal ends every stream at once.
  setMaxListeners(0, controller.signal);
  let measuring = false;
  const opened: Promise<void>[] = [];
  const streams = options.jobIds.map(
    (id) =>
      new Promise<void>((resolveStream) => {
        const open = dispatcher
          .request({
            origin: options.apiUrl,
            path: `/v1/jobs/${id}/events`,
            method: 'GET',
            headers: { accept: 'text/event-stream', 'last-event-id': '1' },
            signal: controller.signal,
          })
          .then(async (response) => {
            const consumed = consumeSse(response.body, (event) => {
              if (event.type !== 'token' || !measuring) return;
              const received = performance.timeOrigin + performance.now();
              const text = event.text;
              const sentAt = Number(text.slice(0, text.indexOf(' ') === -1 ? undefined : text.indexOf(' ')));
              stats.events++;
              stats.tokens += text.split(' ').length;
              stats.delaysMs.push(received - sentAt);
            }).catch(() => undefined);
            return consumed;
          })
          .catch(() => undefined)
          .finally(resolveStream);
        opened.push(open.then(() => undefined));
      }),
  );
  // Give every stream time to be established before producing.
  const waitStart = Date.now();
  while (Date.now() - waitStart < 30_000) {
    const response = await fetch(`${options.apiUrl}/metrics`).then((r) => r.text());
    const open = Number(/^switchyard_sse_streams (\d+)/m.exec(response)?.[1] ?? 0);
    if (open >= options.jobIds.length) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await options.onStreamsOpen?.();

  const perProducer = Math.ceil(options.jobIds.length / options.producers);
  const script = fileURLToPath(new URL('./token-producer.js', import.meta.url));
  const children = Array.from({ length: options.producers }, (_, p) => {
    const child = fork(script);
    child.send({
      redisUrl: options.redisUrl,
      clusterNodes: options.clusterNodes,
      prefix: options.prefix,
      jobIds: options.jobIds.slice(p * perProducer, (p + 1) * perProducer),
      eventsPerS: options.eventsPerS,
      tokensPerEvent: options.tokensPerEvent,
      durationMs: options.durationMs,
    });
    return child;
  });
  const warmup = options.warmupMs ?? 1_000;
  setTimeout(() => (measuring = true), warmup);
  const started = performance.now() + warmup;
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          child.on('message', (message: { sent: number }) => (stats.sent += message.sent));
          child.on('exit', () => resolve());
        }),
    ),
  );
  // Let in-flight events arrive.
  await new Promise((resolve) => setTimeout(resolve, 300));
  stats.seconds = (performance.now() - started - 300) / 1000;
  measuring = false;
  controller.abort();
  await Promise.allSettled(streams);
  await dispatcher.close().catch(() => undefined);
  return stats;
}
