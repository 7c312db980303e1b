import { describe, expect, it } from 'vitest';
import type { AgentHeartbeat } from './heartbeat.js';
import { CatalogEntryInput, catalogHolders, fleetDigests, type CatalogEntry } from './model-catalog.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

function agent(id: string, extra: Partial<AgentHeartbeat> & { holds?: Record<string, string> } = {}): AgentHeartbeat {
  const { holds = {}, ...rest } = extra;
  return {
    id,
    version: 't',
    state: 'ready',
    backend: { kind: 'ollama', url: 'http://x' },
    gpus: [],
    slots: 4,
    in_flight: 0,
    models_loaded: [],
    models_available: Object.entries(holds).map(([name, digest]) => ({ name, digest, size_bytes: 1 })),
    started_at: 0,
    updated_at: 0,
    ...rest,
  };
}

const entry = (fields: Partial<CatalogEntry> = {}): CatalogEntry => ({ name: 'm:latest', created_at: 0, updated_at: 0, ...fields });
const fleet = ['n1', 'n2', 'n3', 'n4'].map((id) => agent(id));

describe('catalogHolders', () => {
  it('places a model on every eligible node by default', () => {
    expect(catalogHolders(entry(), fleet).wanted.sort()).toEqual(['n1', 'n2', 'n3', 'n4']);
  });

  it('takes copies.min nodes, the ones holding the right build first, and the same answer from any order of heartbeats', () => {
    const agents = [agent('n1'), agent('n2', { holds: { 'm:latest': A } }), agent('n3'), agent('n4')];
    const holders = catalogHolders(entry({ copies: { min: 2 }, digest: A }), agents);
    expect(holders.wanted).toHaveLength(2);
    expect(holders.wanted[0]).toBe('n2');
    expect(catalogHolders(entry({ copies: { min: 2 }, digest: A }), [...agents].reverse()).wanted).toEqual(holders.wanted);
  });

  it('keeps extra copies up to max, and marks those beyond it extra', () => {
    const agents = ['n1', 'n2', 'n3'].map((id) => agent(id, { holds: { 'm:latest': A } }));
    const holders = catalogHolders(entry({ copies: { min: 1, max: 2 } }), agents);
    expect(holders.wanted).toHaveLength(2);
    expect(holders.nodes.filter((node) => node.state === 'extra')).toHaveLength(1);
    expect(catalogHolders(entry({ copies: { min: 1 } }), agents).wanted).toHaveLength(3);
  });

  it('a node with another build is to be fixed (wrong_build), one without it to pull', () => {
    const agents = [agent('n1', { holds: { 'm:latest': B } }), agent('n2')];
    const states = Object.fromEntries(catalogHolders(entry({ digest: A }), agents).nodes.map((node) => [node.agent, node.state]));
    expect(states).toEqual({ n1: 'wrong_build', n2: 'to_pull' });
  });

  it('matches on.labels and on.agents, and excludes draining and degraded agents with the reason', () => {
    const agents = [
      agent('n1', { labels: { gpu: 'a100' } }),
      agent('n2', { labels: { gpu: 'l4' } }),
      agent('n3', { labels: { gpu: 'a100' }, state: 'draining' }),
      agent('n4', { state: 'degraded', labels: { gpu: 'a100' } }),
    ];
    const holders = catalogHolders(entry({ on: { labels: { gpu: 'a100' } } }), agents);
    expect(holders.wanted).toEqual(['n1']);
    expect(holders.nodes.find((node) => node.agent === 'n2')?.why).toMatch(/label gpu=a100/);
    expect(holders.nodes.find((node) => node.agent === 'n3')?.why).toMatch(/draining/);
    expect(catalogHolders(entry({ on: { agents: ['n2'] } }), agents).wanted).toEqual(['n2']);
    // A copy where the entry does not place the model is extra (deleted); one on a draining node stays.
    const held = [agent('n1', { holds: { 'm:latest': A } }), agent('n2', { holds: { 'm:latest': A }, state: 'draining' })];
    const states = catalogHolders(entry({ on: { agents: ['n3'] } }), held).nodes.map((node) => node.state);
    expect(states).toEqual(['extra', 'extra']);
    expect(catalogHolders(entry(), held).nodes.map((node) => node.state)).toEqual(['holds', 'excluded']);
  });

  it('moves a copy off a node whose disk cannot take it, and counts what no node can hold as short', () => {
    const full = agent('n1', { pulls: [{ model: 'm:latest', state: 'failed', cause: 'disk_full', error: 'no room', attempts: 1, started_at: 0 }] });
    const holders = catalogHolders(entry({ copies: { min: 2 } }), [full, agent('n2'), agent('n3')]);
    expect(holders.wanted.sort()).toEqual(['n2', 'n3']);
    expect(catalogHolders(entry({ copies: { min: 5 } }), fleet).short).toBe(1);
  });

  it('a model being removed is wanted nowhere', () => {
    const agents = [agent('n1', { holds: { 'm:latest': A } })];
    const holders = catalogHolders(entry({ removing: true }), agents);
    expect(holders.wanted).toEqual([]);
    expect(holders.nodes[0]).toMatchObject({ state: 'extra', why: expect.stringMatching(/removed/) });
  });

  it('spreads single copies of many models over the nodes', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const [chosen] = catalogHolders(entry({ name: `model-${i}:latest`, copies: { min: 1 } }), fleet).wanted;
      counts.set(chosen!, (counts.get(chosen!) ?? 0) + 1);
    }
    for (const count of counts.values()) expect(count).toBeGreaterThan(25);
  });
});

describe('fleetDigests', () => {
  it('groups the nodes by the build they hold', () => {
    const agents = [agent('n1', { holds: { 'm:latest': A } }), agent('n2', { holds: { 'm:latest': `sha256:${B}` } }), agent('n3')];
    expect(Object.fromEntries(fleetDigests('m:latest', agents))).toEqual({ [A]: ['n1'], [B]: ['n2'] });
  });
});

describe('CatalogEntryInput', () => {
  it('normalises a digest and names what is wrong', () => {
    expect(CatalogEntryInput.parse({ digest: `sha256:${A.toUpperCase()}` }).digest).toBe(A);
    expect(CatalogEntryInput.safeParse({ digest: 'abc' }).error?.issues[0]?.message).toMatch(/64 hex/);
    expect(CatalogEntryInput.safeParse({ copies: { min: 3, max: 1 } }).error?.issues[0]?.path).toEqual(['copies', 'max']);
    expect(CatalogEntryInput.safeParse({ copies: { min: 1 }, extra: true }).success).toBe(false);
    expect(CatalogEntryInput.safeParse({ on: { labels: { 'bad key!': 'x' } } }).success).toBe(false);
  });
});
