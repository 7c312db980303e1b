import type { RedisConnection } from '@switchyard/redis';
import type { Logger } from 'pino';
import type { AgentHeartbeat, ModelInfoRecord, RedisKeys } from '@switchyard/protocol';
import { CachedRead, defineScripts, type FleetRegistry } from '@switchyard/redis';

/** The derived view of the fleet, cached as one read. */
interface FleetView {
  /** Other live, ready agents. */
  peers: AgentHeartbeat[];
  /** `model@digest` → measured VRAM bytes; this agent's own measurements are added as it makes them. */
  measured: Map<string, number>;
}

/**
 * What this agent knows of the rest of the fleet: other agents' heartbeats (where each
 * model is loaded or loading), VRAM figures measured anywhere, and the warm leases that let
 * only one agent at a time load a cold model.
 */
export class FleetState {
  private view: FleetView = { peers: [], measured: new Map() };
  private readonly snapshot: CachedRead<FleetView>;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: RedisKeys,
    registry: FleetRegistry,
    private readonly selfId: string,
    private readonly logger: Logger,
    maxAgeMs = 500,
  ) {
    this.snapshot = new CachedRead(async () => {
      const [agents, measured] = await Promise.all([registry.live(), redis.hgetall(keys.measuredVram)]);
      return {
        peers: agents.filter((agent) => agent.id !== this.selfId && agent.state === 'ready'),
        measured: new Map(Object.entries(measured).map(([key, value]) => [key, Number(value)])),
      };
    }, maxAgeMs);
  }

  /** Re-reads heartbeats and measured VRAM if the cached view is older than `maxAgeMs` (or `force`). */
  async refresh(force = false): Promise<void> {
    try {
      this.view = await this.snapshot.get(force);
    } catch (error) {
      this.logger.warn({ err: error }, 'could not read the fleet state');
    }
  }

  /** Live peers with `model` loaded (with that digest, when one is given). */
  copiesElsewhere(model: string, digest?: string): AgentHeartbeat[] {
    return this.view.peers.filter((agent) => agent.models_loaded.some((loaded) => loaded.name === model && (digest === undefined || loaded.digest === digest)));
  }

  /**
   * Live peers that have `model` (that digest) on disk and report enough free VRAM to load
   * it without evicting anything.
   */
  roomElsewhere(model: string, digest: string, needBytes: number): AgentHeartbeat[] {
    return this.view.peers.filter(
      (agent) =>
        (agent.vram?.free_bytes ?? 0) >= needBytes &&
        agent.models_available.some((available) => available.name === model && available.digest === digest && available.fits !== false),
    );
  }

  /** Peers that report loading `model` right now. */
  loadingElsewhere(model: string): number {
    return this.view.peers.filter((agent) => agent.models_loading?.includes(model)).length;
  }

  /**
   * The median load throughput live peers measured (`load_bytes_per_s` in their
   * heartbeats), if any has: the best guess for a node that has not loaded anything yet,
   * better than a configured constant (2 GB/s against a real 20 made `queue_too_old` wait
   * four times too long for a second copy: issue 17).
   */
  peerLoadBytesPerS(): number | undefined {
    const speeds = this.view.peers
      .map((agent) => agent.load_bytes_per_s)
      .filter((speed): speed is number => speed !== undefined && speed > 0)
      .sort((a, b) => a - b);
    if (speeds.length === 0) return undefined;
    const mid = Math.floor(speeds.length / 2);
    return speeds.length % 2 === 1 ? speeds[mid] : (speeds[mid - 1]! + speeds[mid]!) / 2;
  }

  /** VRAM measured for this model and digest on any agent, if it was ever loaded. */
  measuredVram(model: string, digest: string): number | undefined {
    const bytes = this.view.measured.get(`${model}@${digest}`);
    return bytes !== undefined && Number.isFinite(bytes) && bytes > 0 ? bytes : undefined;
  }

  /** Shares a measured figure (from this backend's `/api/ps`) with the fleet. */
  async recordMeasuredVram(model: string, digest: string, bytes: number): Promise<void> {
    if (this.view.measured.get(`${model}@${digest}`) === bytes) return;
    this.view.measured.set(`${model}@${digest}`, bytes);
    await this.redis.hset(this.keys.measuredVram, `${model}@${digest}`, String(bytes));
  }

  /** Publishes a model's `/api/show` answer for the API and other agents. */
  async recordModelInfo(record: ModelInfoRecord): Promise<void> {
    await this.redis.set(this.keys.modelInfo(record.model), JSON.stringify(record));
  }

  /**
   * Takes one of the first `holders` warm lease slots of a model, so at most that many
   * agents load it at once: the slot taken, or undefined when another agent holds each one.
   * One slot (the default) is one loader fleet-wide; more are for jobs or demand that one
   * copy loading cannot serve (`needsAnotherCopy`, `shouldSpread`). A slot is a key of its
   * own, one command each, so it holds under Redis Cluster.
   */
  async acquireWarmLease(model: string, ttlMs: number, holders = 1): Promise<number | undefined> {
    for (let slot = 0; slot < Math.max(1, holders); slot++) {
      const result = await this.redis.set(this.keys.warmLease(model, slot), this.selfId, 'PX', Math.max(1_000, Math.ceil(ttlMs)), 'NX');
      if (result === 'OK') return slot;
    }
    return undefined;
  }

  async releaseWarmLease(model: string, slot = 0): Promise<void> {
    // Only if this agent still holds it: it may have expired and been taken (lua/delete-if-equal-1.lua).
    await defineScripts(this.redis).sy_delete_if_equal_v1(this.keys.warmLease(model, slot), this.selfId);
  }
}
