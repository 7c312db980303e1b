import type { Logger } from 'pino';
import type { FleetState } from './fleet-state.js';
import type { ModelInventory } from './model-inventory.js';

/** Records each model's `/api/show` details in the fleet as soon as the inventory has fetched them. */
export function shareModelDetails(options: { inventory: ModelInventory; fleet: Pick<FleetState, 'recordModelInfo'>; agentId: string; logger: Logger }): void {
  const { inventory, fleet, agentId, logger } = options;
  inventory.on('shown', (model) => {
    if (!model.show) return;
    fleet
      .recordModelInfo({ model: model.name, digest: model.digest, show: model.show, agent: agentId, updated_at: Date.now() })
      .catch((error) => logger.warn({ err: error, model: model.name }, 'could not share model details'));
  });
}
