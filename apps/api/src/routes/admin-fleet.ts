import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { CachedRead } from '@switchyard/redis';
import { ApiErrorCode } from '@switchyard/protocol';
import { access } from '../access.js';
import type { ApiContext } from '../context.js';
import { ApiError } from '../errors.js';
import { fleetSummary, type FleetSummary } from '../fleet-summary.js';
import { errorAnswer } from '../wire-errors.js';

export const FLEET_PAGE_PATH = '/admin/fleet';
/**
 * The page's script, compiled by `tsc -p tsconfig.fleet-ui.json` from src/fleet-ui/ (a
 * browser build of its own: DOM types, no Node). Resolved from this module's place, which is
 * `src/routes/` under the tests and `dist/routes/` when built: both are two levels below the
 * package, so the one built file serves both.
 */
const SCRIPT_URL = new URL('../../dist/fleet-ui/app.js', import.meta.url);

/**
 * Only this origin's script and styles, and the stream it opens; no framing. The page's
 * styles are inline in its one HTML answer (no second request before it renders).
 */
const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * The live fleet page (admin): `GET /admin/fleet` (HTML), its script, the summary it draws
 * (`GET /admin/fleet/summary`, JSON) and the stream that keeps it live
 * (`GET /admin/fleet/events`, SSE: an `event: summary` whenever the summary changed, checked
 * every FLEET_SUMMARY_INTERVAL_MS). A browser signs in as for Bull Board: one visit with
 * `?key=<admin key>` trades the key for the admin session cookie (plugins/access-control.ts).
 *
 * Every open stream and every request share one summary read per interval, so a wall of
 * screens costs Redis what one does.
 */
export function registerAdminFleetRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const interval = ctx.config.fleetSummaryIntervalMs;
  const summary = new CachedRead(() => fleetSummary(ctx), Math.max(50, interval / 2));
  const streams = new Set<ServerResponse>();
  let script: Promise<string> | undefined;

  app.get(FLEET_PAGE_PATH, access('admin'), async (_request, reply) =>
    reply.header('Content-Type', 'text/html; charset=utf-8').header('Cache-Control', 'no-store').header('Content-Security-Policy', PAGE_CSP).send(PAGE_HTML),
  );

  app.get(`${FLEET_PAGE_PATH}/app.js`, access('admin'), async (_request, reply) => {
    script ??= readFile(SCRIPT_URL, 'utf8').catch((error: unknown) => {
      script = undefined;
      throw error;
    });
    let body: string;
    try {
      body = await script;
    } catch {
      throw new ApiError(ApiErrorCode.internalError, `the fleet page's script is not built (${SCRIPT_URL.pathname}): run pnpm build`);
    }
    return reply.header('Content-Type', 'text/javascript; charset=utf-8').header('Cache-Control', 'no-cache').send(body);
  });

  app.get(`${FLEET_PAGE_PATH}/summary`, access('admin'), async (_request, reply) => reply.header('Cache-Control', 'no-store').send(await summary.get()));

  app.get(`${FLEET_PAGE_PATH}/events`, access('admin'), async (request, reply) => {
    reply.hijack();
    const response = reply.raw;
    response.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    // A HEAD has its headers and nothing to stream.
    if (request.method === 'HEAD') return void response.end();
    response.flushHeaders();
    // A lost connection (an API restart) is retried by the browser's EventSource after this long.
    response.write(`retry: 2000\n\n`);
    streams.add(response);
    let last = '';
    let lastWriteAt = Date.now();
    let reading = false;
    let failure: string | undefined;
    const tick = async () => {
      if (reading || response.writableEnded) return;
      reading = true;
      try {
        const current = await summary.get();
        failure = undefined;
        // `generated_at` moves every read; a summary is news only when something else did.
        const { generated_at: _at, ...content } = current;
        const key = JSON.stringify(content);
        if (key !== last) {
          last = key;
          write(`event: summary\ndata: ${JSON.stringify(current)}\n\n`);
        } else if (Date.now() - lastWriteAt >= ctx.config.sseHeartbeatMs) write(': keep-alive\n\n');
      } catch (error) {
        // Redis away: say so once (the page shows its last summary as stale; classified and
        // logged once per outage, not every tick) and keep trying; the next good read is news.
        last = '';
        if (failure === undefined) {
          failure = JSON.stringify(errorAnswer('native', error, request).body);
          write(`event: error\ndata: ${failure}\n\n`);
        } else if (Date.now() - lastWriteAt >= ctx.config.sseHeartbeatMs) write(': keep-alive\n\n');
      } finally {
        reading = false;
      }
    };
    const write = (chunk: string) => {
      if (response.writableEnded) return;
      response.write(chunk);
      lastWriteAt = Date.now();
    };
    const timer = setInterval(() => void tick(), interval);
    timer.unref();
    response.on('close', () => {
      clearInterval(timer);
      streams.delete(response);
    });
    void tick();
  });

  // Open streams would hold a graceful close forever: end them first (their EventSource reconnects, to another replica).
  app.addHook('preClose', async () => {
    for (const response of streams) if (!response.writableEnded) response.end();
  });
}

export type { FleetSummary };

/** The page's frame; app.js draws everything in it from the summary. */
const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Switchyard fleet</title>
<style>
  :root { --bg: #f6f7f9; --card: #fff; --ink: #1d2330; --muted: #5d6575; --line: #dde1e8; --free: #e8ebf0;
          --ready: #1f8f4e; --draining: #b7791f; --degraded: #c53030; --loading: repeating-linear-gradient(45deg, #9aa5b8 0 6px, #c3cad6 6px 12px); }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg); }
  header { display: flex; align-items: baseline; gap: 24px; padding: 12px 20px; background: #1d2330; color: #fff; }
  header h1 { font-size: 18px; margin: 0; }
  header .totals { display: flex; gap: 18px; color: #cfd5df; }
  header .totals b { color: #fff; }
  #status { margin-left: auto; font-size: 13px; }
  #status.live::before { content: "● "; color: #48bb78; }
  #status.stale::before { content: "● "; color: #f56565; }
  main { display: grid; grid-template-columns: minmax(0, 1fr) 420px; gap: 16px; padding: 16px 20px; }
  section h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 0 0 8px; }
  .agents { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 12px; }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
  .agent-head { display: flex; align-items: center; gap: 10px; margin-bottom: 8px; }
  .agent-head .id { font-weight: 600; font-size: 15px; }
  .agent-head .meta { color: var(--muted); font-size: 12px; margin-left: auto; }
  .state { font-size: 12px; font-weight: 600; padding: 1px 8px; border-radius: 10px; color: #fff; }
  .state.ready { background: var(--ready); } .state.draining { background: var(--draining); } .state.degraded { background: var(--degraded); }
  .bar { display: flex; height: 22px; border-radius: 4px; overflow: hidden; background: var(--free); border: 1px solid var(--line); }
  .bar.small { height: 8px; }
  .seg { height: 100%; min-width: 2px; color: #fff; font-size: 11px; line-height: 22px; padding: 0 4px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  .seg.loading { background: var(--loading); color: var(--ink); }
  .seg.other { background: #8a94a6; }
  .bar-label { display: flex; justify-content: space-between; font-size: 12px; color: var(--muted); margin: 6px 0 2px; }
  .gpus { display: grid; grid-template-columns: auto 1fr auto; gap: 2px 8px; align-items: center; font-size: 12px; color: var(--muted); margin-top: 6px; }
  table { width: 100%; border-collapse: collapse; font-size: 13px; }
  th { text-align: left; font-weight: 600; color: var(--muted); font-size: 12px; border-bottom: 1px solid var(--line); padding: 4px 6px; }
  td { border-bottom: 1px solid var(--line); padding: 4px 6px; vertical-align: middle; white-space: nowrap; }
  td.wrap { white-space: normal; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  .models td:first-child { display: flex; align-items: center; gap: 6px; }
  .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; flex: none; }
  .progress { width: 90px; height: 8px; background: var(--free); border-radius: 4px; overflow: hidden; display: inline-block; vertical-align: middle; }
  .progress > div { height: 100%; background: #4a6fa5; }
  .side { display: flex; flex-direction: column; gap: 16px; }
  .empty { color: var(--muted); font-style: italic; }
  .kind-loaded { color: var(--ready); } .kind-unloaded { color: var(--muted); } .kind-load_failed { color: var(--degraded); }
  .muted { color: var(--muted); }
  .scope { text-transform: none; letter-spacing: 0; }
  #error { display: none; margin: 12px 20px 0; padding: 8px 12px; border-radius: 6px; background: #fff5f5; border: 1px solid #feb2b2; color: #9b2c2c; }
</style>
</head>
<body>
<header>
  <h1>Switchyard fleet</h1>
  <div class="totals" id="totals"></div>
  <div id="status">connecting…</div>
</header>
<div id="error" role="alert"></div>
<main>
  <section><h2>Agents</h2><div class="agents" id="agents"><p class="empty">waiting for the first summary…</p></div></section>
  <div class="side">
    <section class="card"><h2>Queues</h2><div id="queues"></div></section>
    <section class="card"><h2>Loads and evictions</h2><div id="lifecycle"></div></section>
    <section class="card"><h2>Refusals <span class="scope">(this API replica)</span></h2><div id="refusals"></div></section>
  </div>
</main>
<script type="module" src="${FLEET_PAGE_PATH}/app.js"></script>
</body>
</html>
`;
