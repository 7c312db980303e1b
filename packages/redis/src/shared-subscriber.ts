import type { Redis } from 'ioredis';

export type MessageListener = (message: string, channel: string) => void;

/**
 * One Redis subscriber connection shared by every listener in a process.
 *
 * Thousands of SSE clients must not mean thousands of Redis connections: each channel is
 * subscribed once and reference-counted; the last listener to leave unsubscribes it.
 * `subscribe` resolves once Redis has confirmed the subscription, so a caller that
 * subscribes and then reads a log cannot miss an event published in between.
 */
export class SharedSubscriber {
  private readonly listeners = new Map<string, Set<MessageListener>>();
  private readonly pending = new Map<string, Promise<unknown>>();

  constructor(private readonly connection: Redis) {
    connection.on('message', (channel: string, message: string) => {
      const set = this.listeners.get(channel);
      if (!set) return;
      for (const listener of set) listener(message, channel);
    });
  }

  /** Number of channels currently subscribed (for metrics and leak tests). */
  get channelCount(): number {
    return this.listeners.size;
  }

  async subscribe(channel: string, listener: MessageListener): Promise<() => Promise<void>> {
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      const subscribing = this.connection.subscribe(channel);
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
        if (this.connection.status === 'ready') await this.connection.unsubscribe(channel).catch(() => undefined);
      }
    };
  }
}
