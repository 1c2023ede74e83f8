/**
 * Proves durable consumers in one process (engine/consumer.ts): every event in order, each
 * handler's writes committed with the checkpoint; a restart resumes after the last committed
 * event; a handler that throws writes nothing, stops the consumer (`done` rejects) and its event
 * is handled again next run; filters, `from: 'end'`, the caught-up hook and the checkpoint of
 * passed-over events; two consumers of one name racing (one gets CONSUMER_ACTIVE, or waits and
 * continues where the other stopped: every event once); a checkpoint moved by another writer
 * fences the consumer (CONSUMER_ACTIVE, nothing of its event written).
 */
import { describe, expect, it } from 'vitest';
import type { ConsumerOptions, RecordedEvent, Store } from '../../engine/index.js';
import { openQuietStore } from '../helpers/store.js';
import { useTempDir } from '../helpers/temp.js';

const newDir = useTempDir('txlog-consumer-');

/** A handler that records what it handles in the stream `handled`, with the source position. */
const project: ConsumerOptions['handle'] = (event, context) => {
  context.append('handled', [{ type: 'Handled', data: { position: event.position } }]);
};

async function handledPositions(store: Store): Promise<number[]> {
  const positions: number[] = [];
  for await (const event of store.readStream('handled')) positions.push((event.data as { position: number }).position);
  return positions;
}

/** Runs a consumer until it has caught up, then stops it. */
async function runUntilCaughtUp(store: Store, options: Omit<ConsumerOptions, 'onCaughtUp'>): Promise<void> {
  let caughtUp!: () => void;
  const reached = new Promise<void>((resolve) => (caughtUp = resolve));
  const consumer = await store.consumer({ ...options, onCaughtUp: () => caughtUp() });
  await Promise.race([reached, consumer.done]);
  await consumer.stop();
  await consumer.done;
}

async function sourceEvents(store: Store, count: number, stream = 'orders'): Promise<void> {
  await store.append(stream, Array.from({ length: count }, (_, index) => ({ type: index % 3 === 0 ? 'Placed' : 'Paid', data: { index } })));
}

describe('consumer', () => {
  it('handles every event in order and resumes after the last committed one', async () => {
    const dir = newDir();
    let { store } = await openQuietStore(dir);
    try {
      await sourceEvents(store, 20);
      await runUntilCaughtUp(store, { name: 'projector', filter: { streamPrefix: 'orders' }, handle: project });
      expect(await handledPositions(store)).toEqual(Array.from({ length: 20 }, (_, index) => index));
      await store.close();
      ({ store } = await openQuietStore(dir));
      await sourceEvents(store, 5);
      const seen: number[] = [];
      await runUntilCaughtUp(store, {
        name: 'projector',
        filter: { streamPrefix: 'orders' },
        handle: (event, context) => {
          seen.push(event.position);
          project(event, context);
        },
      });
      const orderPositions = (await store.readStream('orders')).events.map((event) => event.position);
      expect(seen).toEqual(orderPositions.slice(20));
      expect(await handledPositions(store)).toEqual(orderPositions);
    } finally {
      await store.close();
    }
  });

  it('a throwing handler writes nothing, stops the consumer, and its event comes again', async () => {
    const { store } = await openQuietStore(newDir());
    try {
      await sourceEvents(store, 5);
      const consumer = await store.consumer({
        name: 'fragile',
        filter: { streamPrefix: 'orders' },
        handle: (event, context) => {
          context.append('handled', [{ type: 'Handled', data: { position: event.position } }]);
          if (event.position === 2) throw new Error('cannot handle 2');
        },
      });
      await expect(consumer.done).rejects.toThrow('cannot handle 2');
      expect(consumer.position).toBe(1);
      expect(await handledPositions(store)).toEqual([0, 1]);
      const again: number[] = [];
      await runUntilCaughtUp(store, { name: 'fragile', filter: { streamPrefix: 'orders' }, handle: (event, context) => (again.push(event.position), project(event, context)) });
      expect(again).toEqual([2, 3, 4]);
      expect(await handledPositions(store)).toEqual([0, 1, 2, 3, 4]);
    } finally {
      await store.close();
    }
  });

  it('filters by type, starts at the end when asked, and checkpoints passed-over events when idle', async () => {
    const { store } = await openQuietStore(newDir());
    try {
      await sourceEvents(store, 9);
      const placed: number[] = [];
      await runUntilCaughtUp(store, { name: 'placed', filter: { eventTypes: ['Placed'] }, handle: (event) => void placed.push(event.position) });
      expect(placed).toEqual([0, 3, 6]);
      const checkpoint = await store.readStream('$consumer-placed', { direction: 'backwards', maxCount: 1 });
      // Past 8, the last source event: the three checkpoints (9, 10, 11) are covered too.
      expect(checkpoint.events[0]?.data).toEqual({ position: 11 });
      const fromEnd: RecordedEvent[] = [];
      const consumer = await store.consumer({ name: 'late', from: 'end', handle: (event) => void fromEnd.push(event) });
      await sourceEvents(store, 1, 'later');
      while (fromEnd.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      await consumer.stop();
      expect(fromEnd.map((event) => event.stream)).toEqual(['later']);
    } finally {
      await store.close();
    }
  });

  it('two consumers of one name race: the second fails with CONSUMER_ACTIVE, or waits and continues', async () => {
    const { store } = await openQuietStore(newDir());
    try {
      await sourceEvents(store, 30);
      const results = await Promise.allSettled([0, 1].map(() => store.consumer({ name: 'racer', filter: { streamPrefix: 'orders' }, handle: project })));
      expect(results.map((result) => result.status).sort()).toEqual(['fulfilled', 'rejected']);
      const rejected = results.find((result) => result.status === 'rejected');
      expect(rejected?.reason).toMatchObject({ code: 'CONSUMER_ACTIVE' });
      const first = results.find((result) => result.status === 'fulfilled')!.value;
      let caughtUp!: () => void;
      const reached = new Promise<void>((resolve) => (caughtUp = resolve));
      const waiting = store.consumer({ name: 'racer', whenActive: 'wait', filter: { streamPrefix: 'orders' }, handle: project, onCaughtUp: () => caughtUp() });
      while (first.position < 10) await new Promise((resolve) => setTimeout(resolve, 1));
      await first.stop();
      const second = await waiting;
      await sourceEvents(store, 10);
      await reached;
      while (second.position < 39) await new Promise((resolve) => setTimeout(resolve, 5));
      await second.stop();
      const orderPositions = (await store.readStream('orders')).events.map((event) => event.position);
      expect(await handledPositions(store)).toEqual(orderPositions);
    } finally {
      await store.close();
    }
  });

  it('a checkpoint moved by another writer fences the consumer before its writes commit', async () => {
    const { store } = await openQuietStore(newDir());
    try {
      await sourceEvents(store, 3);
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const consumer = await store.consumer({
        name: 'fenced',
        handle: async (event, context) => {
          project(event, context);
          if (event.position === 1) await held;
        },
      });
      while (consumer.position < 0) await new Promise((resolve) => setTimeout(resolve, 1));
      // Another consumer of the same name (over another connection, say) moves the checkpoint.
      await store.append('$consumer-fenced', [{ type: 'Checkpoint', data: { position: 1 } }]);
      release();
      await expect(consumer.done).rejects.toMatchObject({ code: 'CONSUMER_ACTIVE' });
      expect(await handledPositions(store)).toEqual([0]);
    } finally {
      await store.close();
    }
  });

  it('refuses bad options', async () => {
    const { store } = await openQuietStore(newDir());
    try {
      for (const options of [{ name: '', handle: project }, { name: 'x' }, { name: 'x', handle: project, from: -1 }, { name: 'x', handle: project, whenActive: 'maybe' }]) {
        await expect(store.consumer(options as never), JSON.stringify(options)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
      }
    } finally {
      await store.close();
    }
  });
});
