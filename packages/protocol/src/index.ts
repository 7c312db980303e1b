export * from './model-name.js';
export * from './keys.js';
export * from './job.js';
export * from './events.js';
export * from './heartbeat.js';
export * from './api-error.js';
export * from './job-failure.js';
export * from './byte-size.js';
