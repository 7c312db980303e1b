import { isTerminalEvent, type RedisKeys } from '@switchyard/protocol';
import { rawEvent, type EventLog, type SharedSubscriber } from '@switchyard/redis';

/**
 * Waits for a job's terminal event (a cancellation's confirmation): resolves true once it is
 * seen, false after `ms`. It subscribes first and then also reads the log's last event, so an
 * agent that answers before the subscription is confirmed is still heard.
 */
export function jobEndWaiter(subscriber: SharedSubscriber, events: EventLog, keys: RedisKeys): (jobId: string, ms: number) => Promise<boolean> {
  return async (jobId, ms) => {
    let resolveEnded!: (ended: boolean) => void;
    const ended = new Promise<boolean>((resolve) => (resolveEnded = resolve));
    const unsubscribe = await subscriber.subscribe(keys.jobChannel(jobId), (message) => {
      // Only the type matters here: read it off the payload's header, as the relay does.
      const event = rawEvent(message);
      if (event && isTerminalEvent(event)) resolveEnded(true);
    });
    void events
      .last(jobId)
      .then((last) => last && isTerminalEvent(last) && resolveEnded(true))
      .catch(() => undefined);
    const timer = setTimeout(() => resolveEnded(false), ms);
    try {
      return await ended;
    } finally {
      clearTimeout(timer);
      await unsubscribe();
    }
  };
}
