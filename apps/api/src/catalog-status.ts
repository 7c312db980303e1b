import {
  catalogHolders,
  fleetDigests,
  normalizeDigest,
  rolloutStatus,
  type AgentHeartbeat,
  type BuildFigures,
  type CatalogEntry,
  type CatalogModelStatus,
  type RolloutView,
} from '@switchyard/protocol';

function buildFigures(model: string, digest: string, agents: readonly AgentHeartbeat[]): BuildFigures {
  const sum = { jobs: 0, failed: 0, ttft: 0, tokens: 0, generateMs: 0 };
  for (const agent of agents) {
    for (const stats of agent.build_stats ?? []) {
      if (stats.model !== model || normalizeDigest(stats.digest) !== digest) continue;
      sum.jobs += stats.jobs;
      sum.failed += stats.failed;
      sum.ttft += stats.ttft_ms_sum;
      sum.tokens += stats.completion_tokens;
      sum.generateMs += stats.generate_ms_sum;
    }
  }
  const completed = sum.jobs - sum.failed;
  return {
    jobs: sum.jobs,
    failed: sum.failed,
    error_rate: sum.jobs === 0 ? 0 : sum.failed / sum.jobs,
    ...(completed > 0 && { mean_ttft_ms: Math.round(sum.ttft / completed) }),
    ...(sum.generateMs > 0 && { tokens_per_s: Math.round((sum.tokens / (sum.generateMs / 1000)) * 10) / 10 }),
  };
}

/** The rollout of `entry`, or undefined when it never had one. */
export function rolloutView(entry: CatalogEntry, agents: readonly AgentHeartbeat[]): RolloutView | undefined {
  const status = rolloutStatus(entry, agents);
  const rollout = entry.rollout;
  if (!status || !rollout) return undefined;
  const progress = { total_bytes: 0, completed_bytes: 0 };
  const nodes = agents.map((agent) => {
    const own = agent.models_available.find((model) => model.name === entry.name);
    const pull = agent.pulls?.find((candidate) => candidate.model === entry.name);
    if (pull?.total_bytes !== undefined) {
      progress.total_bytes += pull.total_bytes;
      progress.completed_bytes += pull.completed_bytes ?? 0;
    }
    const kept = (agent.kept_builds ?? []).filter((build) => build.model === entry.name).map((build) => normalizeDigest(build.digest));
    return { agent: agent.id, ...(own && { digest: normalizeDigest(own.digest) }), kept, ...(pull && { pull }) };
  });
  return {
    model: entry.name,
    ...status,
    started_at: rollout.started_at,
    ...(rollout.promoted_at !== undefined && { promoted_at: rollout.promoted_at }),
    ...(rollout.aborted_at !== undefined && { aborted_at: rollout.aborted_at }),
    ...(rollout.finished_at !== undefined && { finished_at: rollout.finished_at }),
    ...(entry.canary && { canary: entry.canary }),
    nodes: nodes.filter((node) => node.digest !== undefined || node.kept.length > 0 || node.pull !== undefined),
    progress,
    builds: { [rollout.from]: buildFigures(entry.name, rollout.from, agents), [rollout.to]: buildFigures(entry.name, rollout.to, agents) },
  };
}

/**
 * The rollout a `PUT /admin/models/:name` starts, keeps or ends: a new digest moves the fleet
 * from the build it serves now (the entry's, else the one most nodes hold); the old build
 * again while a rollout runs is a rollback (`aborted`); the same digest keeps the rollout as it is.
 */
export function nextRollout(
  name: string,
  existing: CatalogEntry | undefined,
  digest: string | undefined,
  agents: readonly AgentHeartbeat[],
  now: number,
): CatalogEntry['rollout'] {
  if (digest === undefined) return undefined;
  const current = existing?.rollout;
  if (existing?.digest === digest) return current;
  if (current && current.finished_at === undefined && current.from === digest) return { from: current.to, to: digest, started_at: now, aborted_at: now };
  let from = existing?.digest;
  if (from === undefined) {
    // No build named before: the one most nodes hold is what the fleet serves.
    const held = [...fleetDigests(name, agents)].sort((a, b) => b[1].length - a[1].length);
    from = held[0]?.[0];
  }
  return from === undefined || from === digest ? undefined : { from, to: digest, started_at: now };
}

export function modelStatus(name: string, entry: CatalogEntry | undefined, agents: readonly AgentHeartbeat[]): CatalogModelStatus {
  const digests = Object.fromEntries(fleetDigests(name, agents));
  const rollout = entry ? rolloutView(entry, agents) : undefined;
  // Two builds are what a rollout is; drift is more than one outside it.
  const rolling = rollout !== undefined && rollout.state !== 'done' && (rollout.state !== 'aborted' || rollout.on_from.length > 0);
  const drift = Object.keys(digests).length > 1 && !rolling;
  if (!entry) {
    const nodes = Object.entries(digests).flatMap(([digest, ids]) => ids.map((agent) => ({ agent, state: 'holds', digest })));
    return {
      name,
      entry: null,
      state: 'unmanaged',
      wanted: 0,
      holding: nodes.length,
      digests,
      drift,
      progress: { total_bytes: 0, completed_bytes: 0 },
      nodes,
      problems: drift ? [`drift: ${Object.keys(digests).length} builds in the fleet and no catalog entry names one`] : [],
    };
  }
  const holders = catalogHolders(entry, agents);
  const pulls = new Map(agents.flatMap((agent) => (agent.pulls ?? []).filter((pull) => pull.model === name).map((pull) => [agent.id, pull] as const)));
  const nodes = holders.nodes.map((node) => {
    const pull = pulls.get(node.agent);
    return { ...node, ...(pull !== undefined && { pull }) };
  });
  const problems: string[] = [];
  const wanted = new Set(holders.wanted);
  for (const node of nodes) {
    if (node.pull?.state === 'failed') problems.push(`${node.agent}: pull failed (${node.pull.cause ?? 'error'}): ${node.pull.error ?? 'no detail'}`);
    else if (node.why?.startsWith('disk full')) problems.push(`${node.agent}: ${node.why}`);
  }
  if (holders.short > 0) problems.push(`asks for ${entry.copies?.min} copies; ${holders.eligible.length} eligible node(s) can hold it (${holders.short} short)`);
  if (drift && entry.digest !== undefined) {
    const other = Object.keys(digests).filter((digest) => digest !== entry.digest);
    problems.push(`drift: ${other.map((d) => `${d.slice(0, 12)} on ${digests[d]!.join(', ')}`).join('; ')}; the catalog asks for ${entry.digest.slice(0, 12)}`);
  } else if (drift) problems.push(`drift: ${Object.keys(digests).length} builds in the fleet; set a digest to choose one`);
  const holding = nodes.filter((node) => node.state === 'holds').length;
  const progress = { total_bytes: 0, completed_bytes: 0 };
  for (const node of nodes) {
    if (!wanted.has(node.agent) || node.pull?.total_bytes === undefined) continue;
    progress.total_bytes += node.pull.total_bytes;
    progress.completed_bytes += node.pull.completed_bytes ?? 0;
  }
  const failing = nodes.some((node) => wanted.has(node.agent) && node.pull?.state === 'failed');
  const state: CatalogModelStatus['state'] = entry.removing
    ? 'removing'
    : holders.short > 0 || (holders.wanted.length === 0 && entry.copies?.min !== 0)
      ? 'short'
      : holding >= holders.wanted.length && holders.wanted.every((agent) => nodes.find((n) => n.agent === agent)?.state === 'holds')
        ? 'ready'
        : failing
          ? 'failing'
          : 'pulling';
  return { name, entry, state, wanted: holders.wanted.length, holding, digests, drift, progress, nodes, problems, ...(rollout && { rollout }) };
}
