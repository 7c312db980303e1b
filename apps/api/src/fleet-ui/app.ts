/**
 * The fleet page's script (served as /admin/fleet/app.js): draws the fleet summary and
 * redraws it on every `summary` event of /admin/fleet/events. Plain DOM, no framework; all
 * text goes in through textContent, never as HTML, since model names and reasons come from
 * clients and agents.
 */
import type { AgentSummary, FleetSummary, LifecycleSummary, ModelQueueSummary } from './summary.js';

const EVENTS_PATH = '/admin/fleet/events';

type Child = Node | string | null | undefined | false;

/** An element with attributes (`class`, `data-*`, `title`…) and children. */
function h(tag: string, attributes: Record<string, string | undefined> = {}, ...children: Child[]): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) if (value !== undefined) element.setAttribute(name, value);
  for (const child of children) if (child !== null && child !== undefined && child !== false) element.append(child);
  return element;
}

function byId(id: string): HTMLElement {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element;
}

function bytes(value: number): string {
  if (value === 0) return '0';
  if (value >= 1e12) return `${(value / 1e12).toFixed(1)} TB`;
  if (value >= 1e9) return `${(value / 1e9).toFixed(1)} GB`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(0)} MB`;
  return `${Math.round(value / 1e3)} kB`;
}

function seconds(value: number): string {
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 120) return `${value.toFixed(1)} s`;
  if (value < 7200) return `${Math.round(value / 60)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString(undefined, { hour12: false });
}

/** A stable colour per model, so one model has the same colour on every node. */
function colour(model: string): string {
  let hash = 0;
  for (let i = 0; i < model.length; i++) hash = (hash * 31 + model.charCodeAt(i)) >>> 0;
  return `hsl(${hash % 360} 55% 42%)`;
}

function percent(part: number, whole: number): string {
  return whole > 0 ? `${Math.max(0, Math.min(100, (part / whole) * 100)).toFixed(2)}%` : '0%';
}

function vramBar(agent: AgentSummary): HTMLElement {
  const bar = h('div', { class: 'bar', 'data-role': 'vram', 'aria-label': `VRAM of ${agent.id}` });
  for (const segment of agent.vram.segments) {
    const label = segment.kind === 'other' ? 'other' : `${segment.model}${segment.kind === 'loading' ? ' (loading)' : ''}`;
    const element = h(
      'div',
      { class: `seg ${segment.kind}`, 'data-kind': segment.kind, 'data-model': segment.model, title: `${label}: ${bytes(segment.bytes)}` },
      segment.kind === 'other' ? '' : label,
    );
    element.style.width = percent(segment.bytes, agent.vram.total_bytes);
    if (segment.kind === 'model' && segment.model) element.style.background = colour(segment.model);
    bar.append(element);
  }
  return bar;
}

function agentCard(agent: AgentSummary, now: number): HTMLElement {
  const age = Math.max(0, (now - agent.updated_at) / 1000);
  const gpus =
    agent.gpus.length === 0
      ? null
      : h(
          'div',
          { class: 'gpus' },
          ...agent.gpus.flatMap((gpu) => {
            const fill = h('div', { class: 'seg other' });
            fill.style.width = percent(gpu.used_bytes, gpu.total_bytes);
            return [
              h('span', {}, `GPU ${gpu.index} ${gpu.name}`),
              h('div', { class: 'bar small' }, fill),
              h('span', {}, `${bytes(gpu.used_bytes)} / ${bytes(gpu.total_bytes)}`),
            ];
          }),
        );
  const rows = agent.models.map((model) => {
    const swatch = h('span', { class: 'swatch' });
    swatch.style.background = model.state === 'loading' ? '#9aa5b8' : colour(model.name);
    let state: Child = 'loaded';
    if (model.state === 'loading') {
      const fill = h('div');
      fill.style.width = `${Math.round((model.progress?.fraction ?? 0) * 100)}%`;
      state = h(
        'span',
        { 'data-role': 'load-progress' },
        'loading ',
        h('span', { class: 'progress', title: model.progress ? `expected ${seconds(model.progress.expected_ms / 1000)}` : 'no estimate' }, fill),
        model.progress ? ` ${Math.round(model.progress.fraction * 100)}%` : '',
      );
    }
    return h(
      'tr',
      { 'data-model': model.name, 'data-state': model.state },
      h('td', {}, swatch, model.name, model.pinned ? h('span', { class: 'muted' }, ' (pinned)') : null),
      h('td', {}, state),
      h('td', { class: 'num' }, bytes(model.vram_bytes)),
      h('td', { class: 'num' }, String(model.in_flight)),
    );
  });
  const pulls = agent.pulls.map((pull) =>
    h(
      'div',
      { class: 'muted' },
      `pull ${pull.model}: ${pull.state}`,
      pull.total_bytes ? ` ${percent(pull.completed_bytes ?? 0, pull.total_bytes)}` : '',
      pull.error ? ` (${pull.cause ?? 'error'}: ${pull.error})` : '',
    ),
  );
  return h(
    'article',
    { class: 'card', 'data-agent': agent.id, 'data-state': agent.state },
    h(
      'div',
      { class: 'agent-head' },
      h('span', { class: 'id' }, agent.id),
      h('span', { class: `state ${agent.state}` }, agent.state),
      h('span', { class: 'meta' }, `${agent.backend} · ${agent.in_flight}/${agent.slots} slots busy · beat ${age.toFixed(1)} s ago`),
    ),
    h(
      'div',
      { class: 'bar-label' },
      h('span', {}, `VRAM ${bytes(agent.vram.used_bytes)} of ${bytes(agent.vram.total_bytes)}`),
      h('span', {}, `${bytes(agent.vram.free_bytes)} free`),
    ),
    vramBar(agent),
    gpus,
    rows.length === 0
      ? h('p', { class: 'empty' }, 'no model loaded')
      : h(
          'table',
          { class: 'models' },
          h('thead', {}, h('tr', {}, h('th', {}, 'model'), h('th', {}, 'state'), h('th', { class: 'num' }, 'VRAM'), h('th', { class: 'num' }, 'in flight'))),
          h('tbody', {}, ...rows),
        ),
    ...pulls,
  );
}

function queueTable(models: ModelQueueSummary[]): HTMLElement {
  if (models.length === 0) return h('p', { class: 'empty' }, 'no model queues yet');
  return h(
    'table',
    {},
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', {}, 'model'),
        h('th', { class: 'num' }, 'waiting'),
        h('th', { class: 'num' }, 'running'),
        h('th', { class: 'num' }, 'oldest'),
        h('th', { class: 'num' }, 'drain/s'),
        h('th', { class: 'num' }, 'ETA'),
      ),
    ),
    h(
      'tbody',
      {},
      ...models.map((model) =>
        h(
          'tr',
          { 'data-queue': model.model, title: `loaded on: ${model.loaded_on.join(', ') || 'none'}; loading on: ${model.loading_on.join(', ') || 'none'}` },
          h('td', {}, model.model, model.agents.length === 0 ? h('span', { class: 'muted' }, ' (no agent)') : null),
          h('td', { class: 'num' }, String(model.waiting)),
          h('td', { class: 'num' }, String(model.active)),
          h('td', { class: 'num' }, model.waiting > 0 ? seconds(model.oldest_wait_s) : '–'),
          h('td', { class: 'num' }, model.drain_rate_per_s.toFixed(2)),
          h(
            'td',
            { class: 'num', title: 'when the last waiting job starts, by admission’s estimate' },
            model.waiting === 0 ? '–' : model.eta_s === null ? '?' : model.eta_s < 1 ? '< 1 s' : seconds(model.eta_s),
          ),
        ),
      ),
    ),
  );
}

function lifecycleTable(events: LifecycleSummary[]): HTMLElement {
  if (events.length === 0) return h('p', { class: 'empty' }, 'no load or eviction yet');
  const word = { loaded: 'loaded', unloaded: 'unloaded', load_failed: 'load failed' } as const;
  return h(
    'table',
    {},
    h(
      'tbody',
      {},
      ...events.map((event) =>
        h(
          'tr',
          { 'data-kind': event.kind, 'data-model': event.model },
          h('td', { class: 'muted' }, clock(event.at)),
          h('td', {}, event.agent),
          h('td', { class: `kind-${event.kind}` }, word[event.kind], event.out_of_memory ? ' (out of memory)' : ''),
          h('td', {}, event.model),
          h('td', { class: 'muted wrap' }, event.reason, event.seconds !== undefined ? ` · ${seconds(event.seconds)}` : ''),
        ),
      ),
    ),
  );
}

function refusalTable(refusals: FleetSummary['refusals']): HTMLElement {
  if (refusals.total === 0) return h('p', { class: 'empty' }, 'no refusal');
  return h(
    'table',
    {},
    h(
      'tbody',
      {},
      ...refusals.by_reason.map((entry) =>
        h(
          'tr',
          { 'data-reason': entry.reason },
          h('td', {}, entry.reason),
          h('td', { class: 'num' }, String(entry.count)),
          h(
            'td',
            { class: 'muted wrap' },
            Object.entries(entry.models)
              .sort((a, b) => b[1] - a[1])
              .slice(0, 3)
              .map(([model, count]) => `${model} ${count}`)
              .join(', '),
          ),
        ),
      ),
    ),
  );
}

function render(summary: FleetSummary): void {
  const { totals } = summary;
  byId('totals').replaceChildren(
    h('span', {}, h('b', {}, String(totals.agents)), ` agents (${totals.by_state.ready} ready, ${totals.by_state.draining} draining, ${totals.by_state.degraded} degraded)`),
    h('span', {}, h('b', {}, `${totals.in_flight}/${totals.slots}`), ' slots busy'),
    h('span', {}, h('b', {}, bytes(totals.vram_used_bytes)), ` of ${bytes(totals.vram_total_bytes)} VRAM`),
    h('span', {}, h('b', {}, String(totals.waiting)), ' waiting'),
  );
  byId('agents').replaceChildren(
    ...(summary.agents.length === 0 ? [h('p', { class: 'empty' }, 'no live agent')] : summary.agents.map((agent) => agentCard(agent, summary.generated_at))),
  );
  byId('queues').replaceChildren(queueTable(summary.models));
  byId('lifecycle').replaceChildren(lifecycleTable(summary.lifecycle));
  byId('refusals').replaceChildren(refusalTable(summary.refusals));
}

function setStatus(state: 'live' | 'stale', text: string): void {
  const status = byId('status');
  status.className = state;
  status.textContent = text;
}

function showError(message: string | undefined): void {
  const banner = byId('error');
  banner.textContent = message ?? '';
  banner.style.display = message === undefined ? 'none' : 'block';
}

const source = new EventSource(EVENTS_PATH);
source.addEventListener('summary', (event) => {
  const summary = JSON.parse((event as MessageEvent<string>).data) as FleetSummary;
  render(summary);
  showError(undefined);
  setStatus('live', `live · ${clock(summary.generated_at)}`);
});
// The API could not read the fleet (Redis away): the last summary stays up, marked stale.
source.addEventListener('error', (event) => {
  const data = (event as MessageEvent<string>).data;
  if (typeof data === 'string') {
    const body = JSON.parse(data) as { error?: { message?: string } };
    showError(`the API cannot read the fleet now: ${body.error?.message ?? 'unknown error'}`);
    setStatus('stale', 'stale');
  } else {
    // The connection itself dropped; EventSource reconnects (after the stream's retry: hint).
    setStatus('stale', 'reconnecting…');
  }
});
