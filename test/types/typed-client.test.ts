/**
 * Proves, at the type level, that an event union flows to the network side as it does to the
 * embedded store: `connect<Events>()` types the client's `append`, `readStream`, `readAll`
 * (promise and iteration), `subscribe`, their filters and `consumer`; `startNode` takes its
 * events from the service or from `startNode<Events>()` and types `node.store`. A wrong type
 * name or data shape does not compile (each `@ts-expect-error` below fails `npm run typecheck`
 * if the line compiles); untyped use keeps compiling as before.
 *
 * The checks run in `npm run typecheck` (tsconfig.tests.json); at run time vitest only runs the
 * one test below, which calls nothing (the functions would need a running pair).
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { defineService, type Consumer, type RecordedEvent, type Store, type StreamSlice } from '../../engine/index.js';
import { connect, startNode, type Client, type TxlogNode } from '../../replication/index.js';

type ShopEvents = { type: 'Placed'; data: { sku: string; quantity: number } } | { type: 'Cancelled'; data: { reason: string } };

const shop = defineService<ShopEvents>()({
  name: 'shop',
  commands: {
    place(ctx, args: { order: string }) {
      ctx.append(`order-${args.order}`, [{ type: 'Placed', data: { sku: 'a', quantity: 1 } }]);
    },
  },
});

async function typedClient(servers: string[]): Promise<void> {
  const client = await connect<ShopEvents>({ servers });
  expectTypeOf(client).toEqualTypeOf<Client<ShopEvents>>();
  await client.append('order-1', [{ type: 'Placed', data: { sku: 'a', quantity: 2 } }], { expectedVersion: 'no_stream' });
  // @ts-expect-error: quantity is a number
  await client.append('order-1', [{ type: 'Placed', data: { sku: 'a', quantity: '2' } }]);
  // @ts-expect-error: not an event of this client
  await client.append('order-1', [{ type: 'Shipped', data: {} }]);
  const slice = await client.readStream('order-1', { fromVersion: 'end', direction: 'backwards', maxCount: 1 });
  expectTypeOf(slice).toEqualTypeOf<StreamSlice<ShopEvents>>();
  for await (const event of client.readStream('order-1', { signal: AbortSignal.timeout(1000) })) {
    expectTypeOf(event).toEqualTypeOf<RecordedEvent<ShopEvents>>();
    if (event.type === 'Cancelled') expectTypeOf(event.data.reason).toEqualTypeOf<string>();
    else expectTypeOf(event.data.quantity).toEqualTypeOf<number>();
  }
  const page = await client.readAll({ fromPosition: 'end', direction: 'backwards', filter: { eventTypes: ['Placed'] } });
  expectTypeOf(page).toEqualTypeOf<Array<RecordedEvent<ShopEvents>>>();
  for await (const event of client.readAll({ filter: { streamPrefix: 'order-' } })) expectTypeOf(event.type).toEqualTypeOf<'Placed' | 'Cancelled'>();
  for await (const event of client.subscribe({ fromPosition: 'end', filter: { eventTypes: ['Cancelled'] } })) expectTypeOf(event).toEqualTypeOf<RecordedEvent<ShopEvents>>();
  // @ts-expect-error: a filter names only event types of the client
  client.readAll({ filter: { eventTypes: ['Shipped'] } });
  // @ts-expect-error: a filter names only event types of the client
  client.subscribe({ filter: { eventTypes: ['Shipped'] } });
  // @ts-expect-error: not a direction
  client.readStream('order-1', { direction: 'up' });
  const consumer = await client.consumer({
    name: 'mailer',
    handle(event, context) {
      expectTypeOf(event).toEqualTypeOf<RecordedEvent<ShopEvents>>();
      context.append('mail', [{ type: 'Cancelled', data: { reason: 'x' } }]);
      // @ts-expect-error: the consumer's writes are of the client's events
      context.append('mail', [{ type: 'Mailed', data: null }]);
    },
  });
  expectTypeOf(consumer).toEqualTypeOf<Consumer<ShopEvents>>();
}

async function typedNodes(dir: string): Promise<void> {
  const served = await startNode({ dir, listen: '127.0.0.1:0', peers: [], role: 'primary', service: shop });
  expectTypeOf(served).toEqualTypeOf<TxlogNode<ShopEvents>>();
  expectTypeOf(served.store).toEqualTypeOf<Store<ShopEvents>>();
  const named = await startNode<ShopEvents>({ dir, listen: '127.0.0.1:0', peers: [], role: 'primary' });
  // @ts-expect-error: not an event of this node's store
  await named.store.append('a', [{ type: 'Shipped', data: {} }]);
}

async function untyped(servers: string[], dir: string): Promise<void> {
  const client = await connect({ servers });
  expectTypeOf(client).toEqualTypeOf<Client>();
  await client.append('a', [{ type: 'Anything', data: { at: 1 } }, { type: 'NoData' }]);
  const events = await client.readAll({ fromPosition: 3, maxCount: 10, waitMs: 100 });
  expectTypeOf(events[0]!.data).toEqualTypeOf<unknown>();
  const node = await startNode({ dir, listen: '127.0.0.1:0', peers: [], role: 'primary' });
  expectTypeOf(node).toEqualTypeOf<TxlogNode>();
}

describe('typed events over the network', () => {
  it('are checked by npm run typecheck (this file compiles only if every case holds)', () => {
    expect([typedClient, typedNodes, untyped].every((check) => typeof check === 'function')).toBe(true);
  });
});
