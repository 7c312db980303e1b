export { startAgent, AGENT_VERSION, type RunningAgent, type AgentDeps } from './agent.js';
export { AgentConfig, loadConfig, parseConfig, type AgentConfigInput } from './config.js';
export { parseNvidiaSmi, discoverGpus } from './gpu-discovery.js';
