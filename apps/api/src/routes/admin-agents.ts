import type { FastifyInstance } from 'fastify';
import { AgentControlMessage } from '@switchyard/redis';
import { access } from '../access.js';
import type { ApiContext } from '../context.js';
import { ApiError, quoteInput } from '../errors.js';

/**
 * Operators' verbs on an agent (admin key), for maintenance without stopping its process:
 *
 * - `POST /admin/agents/:id/drain`: the agent stops claiming, says `draining` in its
 *   heartbeat (admission and placement stop counting on it) and lets its running jobs finish;
 *   it stays up, and its models stay loaded.
 * - `POST /admin/agents/:id/undrain`: it claims again.
 *
 * Told over pub/sub (the control channel); the answer is 202 with the agent's heartbeat as
 * read now, since the agent applies it within a message's delivery and shows it in its next
 * beat. 404 `agent_not_found` for an agent the fleet does not list.
 */
export function registerAdminAgentRoutes(app: FastifyInstance, ctx: ApiContext): void {
  for (const action of ['drain', 'undrain'] as const) {
    app.post<{ Params: { id: string } }>(`/admin/agents/:id/${action}`, access('admin'), async (request, reply) => {
      const agentId = request.params.id;
      const agent = (await ctx.fleet.agents()).find((candidate) => candidate.id === agentId);
      if (!agent) throw new ApiError('agent_not_found', `no live agent with id ${quoteInput(agentId)} (GET /v1/agents lists them)`);
      const message: AgentControlMessage = { agent_id: agentId, action };
      await ctx.redis.publish(ctx.keys.controlChannel, JSON.stringify(message));
      request.log.info({ agentId, action }, `agent ${action} requested by an operator`);
      return reply.status(202).send({ id: agentId, action, state: agent.state, in_flight: agent.in_flight });
    });
  }
}
