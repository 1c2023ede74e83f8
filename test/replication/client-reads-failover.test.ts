/**
 * Proves the network client's paged reads across a failover, with real `txlog serve` processes:
 * an iteration of the whole log (forwards) and of a stream (backwards) that has read part of
 * its pages when the primary is killed with SIGKILL goes on at the promoted backup from where
 * it was, with no event missing or repeated; and a subscription begun before the kill delivers
 * the events committed after it, in order.
 *
 * Needs `npm run build`.
 */
import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../engine/index.js';
import { range } from '../helpers/reads.js';
import { connectClient, startPair, usePairFixture, waitFor } from './pair.js';

const fixture = usePairFixture('txlog-client-reads-failover-');

describe('paged reads across a failover', () => {
  it('go on at the promoted backup without a gap or a repeat', async () => {
    const dirs = fixture.pairDirs();
    const pair = await startPair(fixture.nodes, dirs);
    const client = await connectClient(pair.servers, { clientId: 'reader' });
    try {
      const events = (count: number): Array<{ type: string }> => Array.from({ length: count }, () => ({ type: 'Placed' }));
      await client.append('orders', events(900));
      await client.append('orders', events(900));

      const live: RecordedEvent[] = [];
      const controller = new AbortController();
      let caughtUp = false;
      const subscription = (async () => {
        for await (const event of client.subscribe({ filter: { eventTypes: ['Later'] }, signal: controller.signal, onCaughtUp: () => (caughtUp = true) })) live.push(event);
      })();
      await waitFor('the subscription to catch up', () => caughtUp, 10_000, fixture.nodes);

      const forwards: number[] = [];
      const backwards: number[] = [];
      const log = client.readAll()[Symbol.asyncIterator]();
      const stream = client.readStream('orders', { fromVersion: 'end', direction: 'backwards' })[Symbol.asyncIterator]();
      // Into the second page of each (a page is 512 events), then the primary dies.
      for (let index = 0; index < 600; index++) {
        forwards.push((await log.next()).value!.position);
        backwards.push((await stream.next()).value!.version);
      }
      await pair.primary.kill();
      for (let next = await log.next(); next.done !== true; next = await log.next()) forwards.push(next.value.position);
      for (let next = await stream.next(); next.done !== true; next = await stream.next()) backwards.push(next.value.version);
      expect(forwards).toEqual(range(0, 1799));
      expect(backwards).toEqual(range(1799, 0, -1));

      await client.append('after', [{ type: 'Later' }, { type: 'Later' }]);
      await waitFor('the subscription to deliver what came after the failover', () => live.length === 2, 20_000, fixture.nodes);
      controller.abort();
      await subscription;
      expect(live.map((event) => event.position)).toEqual([1800, 1801]);
      expect((await client.status()).role).toBe('primary');
    } finally {
      await client.close();
    }
  });
});
