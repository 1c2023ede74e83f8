/**
 * Proves the network client's reads (replication/client-reads.ts) against a real pair on
 * loopback sockets (in this process), with nodes whose `readEventsMax` is 100:
 * - `readStream` and `readAll` iterate every event past that cap, forwards and backwards, from a
 *   version or position or `'end'`, with `maxCount`, and `readAll` with a filter the node
 *   applies, both ways; the promise forms keep one page as before (capped by the node), and a
 *   filtered promise gathers its matches; bad options are BAD_REQUEST, iterated or not;
 * - an `AbortSignal` rejects an aborted read with the signal's reason (AbortError, as the
 *   embedded store), stops an iteration with it, and ends a subscription waiting in its long
 *   poll at once; `subscribe` from `'end'` gets only new events;
 * - `client.consumers()` lists what the primary's store lists, and a consumer started from
 *   `'end'` over the network handles only later events.
 */
import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../engine/index.js';
import type { Client } from '../../replication/client.js';
import { useInProcessNodes, waitForInProcess } from '../helpers/in-process-pair.js';
import { collect, expectAbortsWithReason, range, writeHistory } from '../helpers/reads.js';

const nodes = useInProcessNodes('txlog-client-reads-');

/** 1,300 events on `long` (Even/Odd), `other-1` at position 600 and `other-2` at 1301. */
async function withHistory(run: (client: Client, pair: Awaited<ReturnType<typeof nodes.startPair>>) => Promise<void>): Promise<void> {
  const pair = await nodes.startPair({ both: { readEventsMax: 100 } });
  const client = await nodes.connect(pair.servers);
  await writeHistory(client);
  await run(client, pair);
}

const versions = async (events: AsyncIterable<RecordedEvent>): Promise<number[]> => (await collect(events)).map((event) => event.version);
const positions = async (events: AsyncIterable<RecordedEvent>): Promise<number[]> => (await collect(events)).map((event) => event.position);

describe('network reads', () => {
  it('iterate a stream past the node cap, both ways, from a version or the end, with maxCount', () =>
    withHistory(async (client) => {
      expect(await versions(client.readStream('long'))).toEqual(range(0, 1299));
      expect(await versions(client.readStream('long', { direction: 'backwards' }))).toEqual(range(1299, 0, -1));
      expect(await versions(client.readStream('long', { fromVersion: 1000, maxCount: 5 }))).toEqual(range(1000, 1004));
      expect(await versions(client.readStream('long', { fromVersion: 700, direction: 'backwards', maxCount: 600 }))).toEqual(range(700, 101, -1));
      expect(await versions(client.readStream('long', { fromVersion: 'end' }))).toEqual([1299]);
      expect(await collect(client.readStream('missing', { direction: 'backwards' }))).toEqual([]);
      const page = await client.readStream('long', { fromVersion: 50 });
      expect(page.version).toBe(1299);
      expect(page.events.map((event) => event.version)).toEqual(range(50, 149));
      const last = await client.readStream('long', { fromVersion: 'end', direction: 'backwards', maxCount: 2 });
      expect(last.events.map((event) => event.version)).toEqual([1299, 1298]);
    }));

  it('iterate the log both ways, filtered by the node, and keep the promise forms', () =>
    withHistory(async (client) => {
      expect(await positions(client.readAll())).toEqual(range(0, 1301));
      expect(await positions(client.readAll({ direction: 'backwards', maxCount: 250 }))).toEqual(range(1301, 1052, -1));
      expect(await positions(client.readAll({ fromPosition: 'end', direction: 'backwards', filter: { streamPrefix: 'other-' } }))).toEqual([1301, 600]);
      expect(await positions(client.readAll({ fromPosition: 1200, filter: { streamPrefix: ['other-'], eventTypes: ['Other'] } }))).toEqual([1301]);
      const odd = await collect(client.readAll({ filter: { eventTypes: ['Odd'] }, maxCount: 300 }));
      expect(odd).toHaveLength(300);
      expect(odd.every((event) => event.type === 'Odd')).toBe(true);
      expect((await client.readAll({ fromPosition: 10 })).map((event) => event.position)).toEqual(range(10, 109));
      expect((await client.readAll({ filter: { streamPrefix: 'other-' } })).map((event) => event.position)).toEqual([600, 1301]);
      expect((await client.readAll({ fromPosition: 'end', direction: 'backwards', maxCount: 1 })).map((event) => event.position)).toEqual([1301]);
      await expect(client.readAll({ direction: 'up' as never })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
      for (const maxCount of [-1, 1.5, Number.NaN]) {
        await expect(collect(client.readAll({ maxCount })), String(maxCount)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
        await expect(collect(client.readStream('long', { maxCount })), String(maxCount)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
      }
      await expect(collect(client.readStream('long', { fromVersion: -2 }))).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    }));

  it('abort with the signal reason, and end a waiting subscription at once', () =>
    withHistory(async (client) => {
      await expectAbortsWithReason(client);

      const live = new AbortController();
      const delivered: RecordedEvent[] = [];
      let caughtUp = false;
      const subscription = (async () => {
        for await (const event of client.subscribe({ fromPosition: 'end', signal: live.signal, onCaughtUp: () => (caughtUp = true) })) delivered.push(event);
      })();
      await waitForInProcess('the subscription to catch up', () => caughtUp, 10_000);
      await client.append('new', [{ type: 'New' }]);
      await waitForInProcess('the new event', () => delivered.length === 1, 10_000);
      expect(delivered[0]).toMatchObject({ stream: 'new', position: 1302 });
      // Now waiting in a long poll of a second: aborting ends it well before the poll would.
      const abortedAt = Date.now();
      live.abort();
      await subscription;
      expect(Date.now() - abortedAt).toBeLessThan(800);
    }));

  it('list consumers as the primary does, and start one from the end', () =>
    withHistory(async (client, pair) => {
      expect(await client.consumers()).toEqual({ lastPosition: 1301, consumers: [] });
      const handled: number[] = [];
      const consumer = await client.consumer({ name: 'tail', from: 'end', handle: (event) => void handled.push(event.position) });
      await client.append('later', [{ type: 'Later' }]);
      await waitForInProcess('the consumer to handle the later event', () => consumer.position >= 1302, 10_000);
      await consumer.stop();
      expect(handled).toEqual([1302]);
      const listed = await client.consumers();
      expect(listed).toEqual(pair.primary.store.consumers());
      expect(listed.consumers).toEqual([expect.objectContaining({ name: 'tail', position: 1302, lag: 0 })]);
    }));
});
