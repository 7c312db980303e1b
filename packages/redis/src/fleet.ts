import type { RedisConnection } from './connection.js';
import { AgentHeartbeat, type RedisKeys } from '@switchyard/protocol';

/**
 * Agent heartbeats: each agent's record is a JSON string with a TTL, and a sorted set
 * indexes agent ids by last beat so readers find records without SCAN. A record that
 * expired means the agent is gone; stale index entries are pruned by readers. Records and
 * index share the hash tag `{fleet}`, so the MULTI that writes both and the MGET that reads
 * every record stay in one slot under Redis Cluster.
 */
export class FleetRegistry {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: RedisKeys,
  ) {}

  async publish(heartbeat: AgentHeartbeat, ttlMs: number): Promise<void> {
    await this.redis
      .multi()
      .set(this.keys.agentHeartbeat(heartbeat.id), JSON.stringify(heartbeat), 'PX', ttlMs)
      .zadd(this.keys.agents, heartbeat.updated_at, heartbeat.id)
      .exec();
  }

  async remove(agentId: string): Promise<void> {
    await this.redis.multi().del(this.keys.agentHeartbeat(agentId)).zrem(this.keys.agents, agentId).exec();
  }

  /** Live agents: those whose heartbeat record has not expired. Invalid records are skipped. */
  async live(): Promise<AgentHeartbeat[]> {
    const ids = await this.redis.zrange(this.keys.agents, '0', '-1');
    if (ids.length === 0) return [];
    const records = await this.redis.mget(ids.map((id) => this.keys.agentHeartbeat(id)));
    const live: AgentHeartbeat[] = [];
    const gone: string[] = [];
    records.forEach((record, index) => {
      if (record === null) {
        gone.push(ids[index]!);
        return;
      }
      try {
        const parsed = AgentHeartbeat.safeParse(JSON.parse(record));
        if (parsed.success) live.push(parsed.data);
      } catch {
        // A record another version wrote badly must not break the fleet view.
      }
    });
    // Keep the index from growing without bound; only ids whose record has long expired.
    if (gone.length > 0) {
      const cutoff = Date.now() - 24 * 3600_000;
      this.redis.zremrangebyscore(this.keys.agents, '-inf', String(cutoff)).catch(() => undefined);
    }
    return live;
  }
}
