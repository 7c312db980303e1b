import type { FastifyInstance } from 'fastify';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { QueueRegistry } from '@switchyard/redis';

export const BULL_BOARD_PATH = '/admin/queues';

/**
 * Bull Board at /admin/queues, listing every model queue. Queues this process opens later
 * (a model first submitted after start-up, or one another replica created, found by the
 * periodic `discover`) are added as they appear; each shows the model name, not the
 * encoded queue name.
 */
export async function registerBullBoard(app: FastifyInstance, queues: QueueRegistry): Promise<void> {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  const board = createBullBoard({
    queues: [],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'Switchyard queues' } },
  });
  const add = (model: string, queue: ConstructorParameters<typeof BullMQAdapter>[0]) =>
    board.addQueue(new BullMQAdapter(queue, { displayName: model, description: `jobs for model ${model}` }));
  for (const [model, queue] of queues.opened()) add(model, queue);
  queues.on('queue', add);
  await app.register(serverAdapter.registerPlugin(), { prefix: BULL_BOARD_PATH });
}
