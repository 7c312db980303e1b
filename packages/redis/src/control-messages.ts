import { z } from 'zod';

/** Published on the cancel channel; every agent hears it and the one running the job aborts it. */
export const CancelMessage = z.object({
  job_id: z.string().min(1),
  model: z.string(),
  reason: z.string(),
});
export type CancelMessage = z.infer<typeof CancelMessage>;

export function cancelMessage(message: CancelMessage): string {
  return JSON.stringify(message);
}

/**
 * Published on the control channel: an operator's drain (`POST /admin/agents/:id/drain`) or
 * undrain of one agent, which only that agent acts on. A drained agent claims nothing, says
 * `draining` in its heartbeat and lets its running jobs finish; it stays up.
 */
export const AgentControlMessage = z.object({
  agent_id: z.string().min(1),
  action: z.enum(['drain', 'undrain']),
});
export type AgentControlMessage = z.infer<typeof AgentControlMessage>;
