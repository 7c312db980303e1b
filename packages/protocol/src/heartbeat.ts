import { z } from 'zod';

export const GpuInfo = z.object({
  index: z.number().int().nonnegative(),
  name: z.string(),
  vram_total_bytes: z.number().nonnegative(),
  vram_used_bytes: z.number().nonnegative(),
});
export type GpuInfo = z.infer<typeof GpuInfo>;

export const LoadedModel = z.object({
  name: z.string(),
  digest: z.string(),
  vram_bytes: z.number().nonnegative(),
  in_flight: z.number().int().nonnegative(),
  last_used_at: z.number().int().nonnegative(),
});
export type LoadedModel = z.infer<typeof LoadedModel>;

export const AvailableModel = z.object({
  name: z.string(),
  digest: z.string(),
  size_bytes: z.number().nonnegative(),
});
export type AvailableModel = z.infer<typeof AvailableModel>;

export const AgentState = z.enum(['ready', 'draining']);
export type AgentState = z.infer<typeof AgentState>;

/** The record each agent writes to Redis with a TTL; a missing record means the agent is gone. */
export const AgentHeartbeat = z.object({
  id: z.string().min(1),
  version: z.string(),
  state: AgentState,
  backend: z.object({ kind: z.enum(['ollama', 'openai']), url: z.string() }),
  gpus: z.array(GpuInfo),
  slots: z.number().int().positive(),
  in_flight: z.number().int().nonnegative(),
  models_loaded: z.array(LoadedModel),
  models_available: z.array(AvailableModel),
  started_at: z.number().int(),
  updated_at: z.number().int(),
});
export type AgentHeartbeat = z.infer<typeof AgentHeartbeat>;
