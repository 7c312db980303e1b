import type { TestProject } from 'vitest/node';
import { provideRedis } from './redis-server.js';

import './test-redis.js';

/** Vitest global setup: one Redis for the whole run; tests isolate themselves by key prefix. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await provideRedis();
  project.provide('redisUrl', redis.url);
  return () => redis.stop();
}
