/**
 * The fuzz suite (security issue: every route, method, body, path, query, header and raw
 * socket abuse, on a stack with keys). Imported by `test/fuzz` as `@switchyard/bench/fuzz`;
 * `run.ts` is the bench entry (`pnpm bench:fuzz`).
 */
export * from './cases.js';
export * from './checks.js';
export * from './http.js';
export * from './runner.js';
export * from './stack.js';
