import { isCluster, type RedisConnection } from './connection.js';

export type MessageListener = (message: string, channel: string) => void;

/**
 * One Redis subscriber connection shared by every listener in a process, for shard channels
 * (`SSUBSCRIBE`): the job channels, which the event scripts `SPUBLISH` in the job's slot.
 * Under Redis Cluster each channel is heard from the master of its slot (the connection must
 * be created with `shardedSubscribers`), so the relay's load spreads over the shards; on a
 * single Redis (7.0 or later) shard channels behave as plain ones.
 *
 * Thousands of SSE clients must not mean thousands of Redis connections: each channel is
 * subscribed once and reference-counted; the last listener to leave unsubscribes it.
 * `subscribe` resolves once Redis has confirmed the subscription, so a caller that
 * subscribes and then reads a log cannot miss an event published in between.
 *
 * A connection that drops loses every message published until it is subscribed again
 * (ioredis resubscribes by itself once it is `ready`). `onResubscribed` tells listeners
 * when that happened, so they can read what they missed from their logs: a chaos run saw
 * streams hang after a Redis restart, their jobs' `done` published to nobody.
 */
export class SharedSubscriber {
  private readonly listeners = new Map<string, Set<MessageListener>>();
  private readonly pending = new Map<string, Promise<unknown>>();
  private readonly resubscribedListeners = new Set<() => void>();
  /** Channels given up while the connection was down: RedisConnection may still hold them afterwards. */
  private readonly leftOffline = new Set<string>();

  constructor(private readonly connection: RedisConnection) {
    connection.on('smessage', (channel: string, message: string) => {
      const set = this.listeners.get(channel);
      if (!set) return;
      for (const listener of set) listener(message, channel);
    });
    // A cluster client is `ready` before its shard subscribers are; they say so themselves.
    connection.on(isCluster(connection) ? 'subscribersReady' : 'ready', () => void this.resubscribed());
  }

  /** Number of channels currently subscribed (for metrics and leak tests). */
  get channelCount(): number {
    return this.listeners.size;
  }

  /**
   * Calls `listener` each time the connection is ready again after it (re)connected, once
   * Redis has confirmed every channel this process listens to: a log read from then on
   * cannot miss an event that is not also heard live. Returns the function that removes it.
   */
  onResubscribed(listener: () => void): () => void {
    this.resubscribedListeners.add(listener);
    return () => void this.resubscribedListeners.delete(listener);
  }

  /**
   * ioredis emits `ready` after it has sent its own resubscription (on the next tick of its
   * ready handler) but does not say when Redis confirmed it; subscribing the same channels
   * again on this connection is answered after that, so it is the confirmation. One channel
   * per call: under Cluster one SSUBSCRIBE takes channels of one slot only.
   */
  private async resubscribed(): Promise<void> {
    const channels = [...this.listeners.keys()];
    // ioredis resubscribes every channel it had when the connection dropped, also those the
    // last listener left while it was down (nothing could be unsubscribed then): a channel
    // nobody hears would still count in PUBSUB SHARDNUMSUB and receive the job's events.
    const stale = [...this.leftOffline].filter((channel) => !this.listeners.has(channel));
    this.leftOffline.clear();
    try {
      await Promise.all(channels.map((channel) => this.connection.ssubscribe(channel)));
      await Promise.all(stale.map((channel) => this.connection.sunsubscribe(channel)));
    } catch {
      // The connection dropped again: its next `ready` comes back here.
      for (const channel of stale) this.leftOffline.add(channel);
      return;
    }
    for (const listener of [...this.resubscribedListeners]) listener();
  }

  async subscribe(channel: string, listener: MessageListener): Promise<() => Promise<void>> {
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      const subscribing = this.connection.ssubscribe(channel);
      this.pending.set(channel, subscribing);
      try {
        await subscribing;
      } catch (error) {
        this.listeners.delete(channel);
        throw error;
      } finally {
        this.pending.delete(channel);
      }
    } else {
      await this.pending.get(channel);
    }
    set.add(listener);
    let removed = false;
    return async () => {
      if (removed) return;
      removed = true;
      const current = this.listeners.get(channel);
      if (!current) return;
      current.delete(listener);
      if (current.size === 0) {
        this.listeners.delete(channel);
        if (this.connection.status !== 'ready') this.leftOffline.add(channel);
        else await this.connection.sunsubscribe(channel).catch(() => void this.leftOffline.add(channel));
      }
    };
  }
}
