import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the Redis the global setup provides for the whole run. */
    redisUrl: string;
  }
}

/** A key prefix no other test uses, so tests can share one Redis without seeing each other. */
export function uniquePrefix(label = 't'): string {
  return `${label.replace(/[^A-Za-z0-9_-]/g, '_')}-${randomBytes(4).toString('hex')}`;
}

/** The URL of the Redis provided by the global setup. */
export function testRedis(): string {
  return inject('redisUrl');
}
