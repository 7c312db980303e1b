import { EventEmitter } from 'node:events';
import type { RedisConnection } from '@switchyard/redis';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { cancelMessage } from '@switchyard/redis';
import { splitQueueModel } from '@switchyard/protocol';
import { ControlListener } from './control-listener.js';

const keys = { workChannel: 'sy:work', cancelChannel: 'sy:cancel', controlChannel: 'sy:control' };

/** A listener over a fake subscriber and recording parts; `warm` and `known` say what the inventory has. */
function listener(inventory: { warm: string[]; known: string[] }) {
  const subscriber = Object.assign(new EventEmitter(), { subscribe: vi.fn(async () => 2) });
  const calls = {
    demand: [] as string[],
    wake: [] as string[],
    noted: [] as string[],
    announced: [] as string[],
    cancelled: [] as string[],
    cancelJob: [] as unknown[],
    control: [] as string[],
  };
  const control = new ControlListener({
    subscriber: subscriber as unknown as RedisConnection,
    keys,
    demand: { record: (model) => void calls.demand.push(model) },
    inventory: {
      isLoaded: (model) => inventory.warm.includes(model),
      modelOfQueue: (queueKey) => splitQueueModel(queueKey).model,
      get: (model) => (inventory.known.includes(model) ? ({ name: model } as never) : undefined),
    },
    scheduler: { wake: (queueKey) => void calls.wake.push(queueKey!), noteWork: (queueKey) => void calls.noted.push(queueKey) },
    lifecycle: { workAnnounced: (model) => void calls.announced.push(model) },
    cancelled: { add: (jobId) => void calls.cancelled.push(jobId) },
    workers: {
      cancelJob: (model, jobId, reason) => {
        calls.cancelJob.push([model, jobId, reason]);
        return jobId === 'running' ? ['m'] : [];
      },
    },
    logger: pino({ level: 'silent' }),
    agentId: 'agent-1',
    onControl: (action) => void calls.control.push(action),
  });
  return { control, subscriber, calls };
}

describe('the control listener', () => {
  it('subscribes the work, cancel and control channels and routes their messages', async () => {
    const { control, subscriber, calls } = listener({ warm: ['m'], known: ['m'] });
    await control.start();
    expect(subscriber.subscribe).toHaveBeenCalledWith('sy:work', 'sy:cancel', 'sy:control');
    subscriber.emit('message', 'sy:work', 'm@sha256-1');
    subscriber.emit('message', 'sy:cancel', cancelMessage({ job_id: 'running', model: 'm', reason: 'client' }));
    subscriber.emit('message', 'sy:other', 'm');
    expect(calls).toMatchObject({ demand: ['m'], wake: ['m@sha256-1'], announced: ['m'], cancelled: ['running'] });
    expect(calls.cancelJob).toEqual([['m', 'running', 'client']]);
  });

  it('counts work for a cold model as demand and tells placement, without waking the scheduler (which notes the queue has work)', () => {
    const { control, calls } = listener({ warm: [], known: ['m'] });
    control.onWork('m');
    expect(calls).toMatchObject({ demand: ['m'], wake: [], noted: ['m'], announced: ['m'] });
  });

  it('only counts demand for a model the backend does not have', () => {
    const { control, calls } = listener({ warm: [], known: [] });
    control.onWork('elsewhere');
    expect(calls).toMatchObject({ demand: ['elsewhere'], wake: [], announced: [] });
  });

  it('remembers a cancellation for a job not running here, and ignores a malformed one', () => {
    const { control, calls } = listener({ warm: [], known: [] });
    control.onCancel(cancelMessage({ job_id: 'later', model: 'm', reason: 'client' }));
    control.onCancel('{not json');
    control.onCancel(JSON.stringify({ model: 'm' }));
    expect(calls.cancelled).toEqual(['later']);
    expect(calls.cancelJob).toHaveLength(1);
  });

  it('acts on an operator’s drain and undrain only when they name this agent, and ignores malformed ones', () => {
    const { control, calls } = listener({ warm: [], known: [] });
    control.onControlMessage(JSON.stringify({ agent_id: 'agent-1', action: 'drain' }));
    control.onControlMessage(JSON.stringify({ agent_id: 'agent-2', action: 'drain' }));
    control.onControlMessage(JSON.stringify({ agent_id: 'agent-1', action: 'explode' }));
    control.onControlMessage('not json');
    control.onControlMessage(JSON.stringify({ agent_id: 'agent-1', action: 'undrain' }));
    expect(calls.control).toEqual(['drain', 'undrain']);
  });
});
