/**
 * Proves the event API over a primary/backup pair (real processes): the client appends with
 * expected versions by name and with `checks`; reads return each event's id and createdAt; a
 * subscription with a filter is filtered by the primary (`readAllPage`) and moves past what it
 * passes over, live too; and the backup holds the very same records, ids included. Durable
 * consumers over the network: two clients run a consumer of the same name at once; the one
 * fenced by the other's checkpoint stops with CONSUMER_ACTIVE, and every event's writes are
 * in txlog exactly once. A consumer keeps going across a kill -9 of the primary at a seeded
 * moment (its commits are requests of its client, resent to the promoted backup), and every
 * event is still handled exactly once as its writes show.
 *
 * Needs `npm run build`.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../engine/index.js';
import type { Client } from '../../replication/client.js';
import { seededRandom, testSeed } from '../helpers/random.js';
import { useTempDir } from '../helpers/temp.js';
import { connectClient, expectIdenticalLogs, requireFreshBuild, startPair, statusOf, useNodes, waitFor } from './pair.js';

requireFreshBuild();
const newDir = useTempDir('txlog-event-api-');
const nodes = useNodes();

describe('the event API over a pair', () => {
  it('appends by name with checks, reads ids and times, and subscribes with a filter', async () => {
    const root = newDir();
    const dirs = { primary: path.join(root, 'a'), backup: path.join(root, 'b') };
    const pair = await startPair(nodes, dirs);
    const client = await connectClient(pair.servers, { clientId: 'event-api' });
    try {
      await client.append('limits', [{ type: 'Set', data: { max: 3 } }], { expectedVersion: 'no_stream' });
      await client.append('orders-1', [{ type: 'Placed' }], { expectedVersion: 'no_stream', checks: [{ stream: 'limits', expectedVersion: 0 }] });
      await expect(client.append('orders-1', [{ type: 'Placed' }], { expectedVersion: 'no_stream' })).rejects.toMatchObject({ code: 'WRONG_EXPECTED_VERSION' });
      await expect(client.append('orders-2', [{ type: 'Placed' }], { checks: [{ stream: 'limits', expectedVersion: 'no_stream' }] })).rejects.toMatchObject({
        code: 'WRONG_EXPECTED_VERSION',
      });
      for (let index = 0; index < 30; index++) await client.append(`noise-${index % 3}`, [{ type: 'Noise' }], { expectedVersion: 'any' });
      await client.append('orders-1', [{ type: 'Paid' }], { expectedVersion: 'stream_exists' });

      const slice = await client.readStream('orders-1');
      expect(slice.events.map((event) => event.type)).toEqual(['Placed', 'Paid']);
      for (const event of slice.events) {
        expect(event.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        expect(event.createdAt).toBeInstanceOf(Date);
      }

      const seen: RecordedEvent[] = [];
      let caughtUp = false;
      const controller = new AbortController();
      const subscription = (async () => {
        for await (const event of client.subscribe({ filter: { streamPrefix: 'orders-' }, signal: controller.signal, onCaughtUp: () => (caughtUp = true) })) {
          seen.push(event);
          if (seen.length === 3) controller.abort();
        }
      })();
      await waitFor('the subscription to catch up', () => caughtUp, 10_000);
      expect(seen.map((event) => event.type)).toEqual(['Placed', 'Paid']);
      await client.append('noise-0', [{ type: 'Noise' }]);
      await client.append('orders-3', [{ type: 'Placed' }]);
      await subscription;
      expect(seen.map((event) => event.stream)).toEqual(['orders-1', 'orders-1', 'orders-3']);
      expect(seen[0]?.id).toBe(slice.events[0]?.id);

      await waitFor('the backup to hold everything', async () => (await statusOf(pair.servers[0]!)).lastLsn === (await statusOf(pair.servers[1]!)).lastLsn, 10_000);
    } finally {
      await client.close();
    }
    await expectIdenticalLogs(dirs.primary, dirs.backup);
  });

  it('runs durable consumers over clients: two of one name race, every event handled once', async () => {
    const root = newDir();
    const pair = await startPair(nodes, { primary: path.join(root, 'a'), backup: path.join(root, 'b') });
    const clients = await Promise.all(['racer-1', 'racer-2', 'writer'].map((clientId) => connectClient(pair.servers, { clientId })));
    const [first, second, writer] = clients as [Client, Client, Client];
    try {
      for (let index = 0; index < 20; index++) await writer.append(`orders-${index % 4}`, [{ type: 'Placed', data: { index } }]);
      const started = await Promise.all(
        [first, second].map((client) =>
          client.consumer({
            name: 'projector',
            filter: { streamPrefix: 'orders-' },
            handle: (event, context) => context.append('handled', [{ type: 'Handled', data: { position: event.position } }]),
          }),
        ),
      );
      for (let index = 20; index < 30; index++) await writer.append(`orders-${index % 4}`, [{ type: 'Placed', data: { index } }]);
      const sources: number[] = [];
      for (const event of await writer.readAll({ maxCount: 4096 })) if (event.stream.startsWith('orders-')) sources.push(event.position);
      await waitFor('one consumer to have handled everything', () => started.some((consumer) => consumer.position >= sources.at(-1)!), 20_000);
      const outcomes = await Promise.all(started.map((consumer) => consumer.stop().then(() => consumer.done.then(() => 'stopped', (error: { code?: string }) => error.code))));
      // Both handle the same event sooner or later; the later commit is fenced.
      expect(outcomes.sort()).toEqual(['CONSUMER_ACTIVE', 'stopped']);
      const handled = (await writer.readStream('handled', { maxCount: 4096 })).events.map((event) => (event.data as { position: number }).position);
      expect(handled).toEqual(sources);
      await expect(first.consumer({ name: 'projector', handle: () => undefined }).then((consumer) => consumer.stop())).resolves.toBeUndefined();
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });

  it('keeps a consumer exactly-once across a kill -9 of the primary', async () => {
    const random = seededRandom(testSeed('consumer failover'));
    const root = newDir();
    const pair = await startPair(nodes, { primary: path.join(root, 'a'), backup: path.join(root, 'b') });
    const writer = await connectClient(pair.servers, { clientId: 'writer', deadlineMs: 20_000 });
    const reader = await connectClient(pair.servers, { clientId: 'consumer', deadlineMs: 20_000 });
    try {
      for (let index = 0; index < 60; index++) await writer.append(`orders-${index % 3}`, [{ type: 'Placed', data: { index } }]);
      const consumer = await reader.consumer({
        name: 'projector',
        filter: { streamPrefix: 'orders-' },
        handle: (event, context) => context.append('handled', [{ type: 'Handled', data: { position: event.position } }]),
      });
      const killAt = random.integer(0, 55);
      await waitFor(`the consumer to pass position ${killAt}`, () => consumer.position >= killAt, 20_000);
      await pair.primary.kill();
      for (let index = 60; index < 80; index++) await writer.append(`orders-${index % 3}`, [{ type: 'Placed', data: { index } }]);
      const sources: number[] = [];
      for (const event of await writer.readAll({ maxCount: 4096 })) if (event.stream.startsWith('orders-')) sources.push(event.position);
      await waitFor('the consumer to handle everything', () => consumer.position >= sources.at(-1)!, 30_000);
      await consumer.stop();
      await consumer.done;
      const handled = (await writer.readStream('handled', { maxCount: 4096 })).events.map((event) => (event.data as { position: number }).position);
      expect(handled).toEqual(sources);
    } finally {
      await Promise.all([writer.close(), reader.close()]);
    }
  });
});
