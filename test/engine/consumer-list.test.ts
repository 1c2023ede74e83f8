/**
 * Proves the two listings of durable consumers (engine/consumer-list.ts) agree: `Store.consumers`
 * (the applied state: what a node answers `txlog consumers --servers` with) gives the same names,
 * positions, checkpoint versions, lags and times as `listConsumers` over the same store's WAL,
 * with consumers at different positions interleaving their checkpoints with other events; a
 * store without consumers lists none; past `consumersListedMax` it is TOO_LARGE.
 */
import { describe, expect, it } from 'vitest';
import { consumersListedMax, listConsumers } from '../../engine/consumer-list.js';
import { checkpointStreamOf } from '../../engine/consumer.js';
import { openQuietStore } from '../helpers/store.js';
import { useTempDir } from '../helpers/temp.js';

const newDir = useTempDir('txlog-consumer-list-');

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 1));
}

describe('consumers of a running store', () => {
  it('match the listing from the log', async () => {
    const dir = newDir();
    const { store } = await openQuietStore(dir);
    try {
      expect(store.consumers()).toEqual({ lastPosition: -1, consumers: [] });
      await store.append('orders', Array.from({ length: 10 }, (_, index) => ({ type: 'Placed', data: { index } })));
      const ahead = await store.consumer({ name: 'ahead', handle: () => undefined });
      await until(() => ahead.position >= 9);
      const behind = await store.consumer({ name: 'behind', filter: { eventTypes: ['Placed'] }, handle: () => undefined });
      await until(() => behind.position >= 3);
      await behind.stop();
      await store.append('orders', [{ type: 'Placed' }, { type: 'Paid' }]);
      await until(() => ahead.position >= 11);
      await ahead.stop();
      const live = store.consumers();
      expect(live.consumers.map((consumer) => consumer.name)).toEqual(['ahead', 'behind']);
      expect(live.consumers[0]).toMatchObject({ lag: 0 });
      expect(live.consumers[1]!.lag).toBe(12 - 1 - live.consumers[1]!.position);
      expect(live).toEqual(await listConsumers(dir));
    } finally {
      await store.close();
    }
  });

  it('refuses to list more than consumersListedMax', async () => {
    const { store } = await openQuietStore(newDir());
    try {
      const writes = Array.from({ length: consumersListedMax + 1 }, (_, index) => ({ stream: checkpointStreamOf(`c${index}`), events: [{ type: 'Checkpoint', data: { position: -1 } }] }));
      await store.execute('append', { writes });
      await expect(Promise.resolve().then(() => store.consumers())).rejects.toMatchObject({ code: 'TOO_LARGE' });
    } finally {
      await store.close();
    }
  });
});
