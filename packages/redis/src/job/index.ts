export { JobLifecycle, type Attempt, type EnqueueRequest, type EnqueuedJob, type JobLifecycleOptions, type TransitionOutcome } from './lifecycle.js';
export { JobRecords, type StoredJob } from './records.js';
export { ScriptedJobs } from './scripted-job.js';
