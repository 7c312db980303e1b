import { defineConfig } from 'vitest/config';

// Tests import workspace packages from their TypeScript sources through the
// "@switchyard/source" export condition, so no build is needed to run them.
const conditions = ['@switchyard/source', 'import', 'node', 'default'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: {
    include: ['apps/*/src/**/*.test.ts', 'packages/*/src/**/*.test.ts', 'test/**/*.test.ts', 'bench/**/*.test.ts'],
    globalSetup: ['packages/testing/src/global-setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Redis errors carry the stack of the code that sent the command (packages/redis createRedis).
    env: { REDIS_FRIENDLY_ERROR_STACK: '1' },
  },
});
