/**
 * Proves, at the type level, that an event union flows from `defineService<Events>()` (or
 * `openStore<Events>()`) to `ctx.append`, `ctx.readStream`, `store.append`, `readStream`,
 * `readAll`, `subscribe` and their filters: a wrong type name or a wrong data shape does not
 * compile (each `@ts-expect-error` below fails `npm run typecheck` if the line compiles), and
 * reads narrow `data` by `type`. Untyped use keeps compiling as before.
 *
 * The checks run in `npm run typecheck` (tsconfig.tests.json); at run time vitest only runs the
 * one test below, which calls nothing (the functions would need a directory).
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { defineService, openStore, type RecordedEvent, type Store, type StreamSlice } from '../../engine/index.js';

type BankEvents =
  | { type: 'Deposited'; data: { amount: number } }
  | { type: 'Withdrawn'; data: { amount: number; reason?: string }; metadata?: { correlationId: string } };

const bank = defineService<BankEvents>()({
  name: 'bank',
  commands: {
    async deposit(ctx, args: { account: string; amount: number }) {
      const slice = await ctx.readStream(`account-${args.account}`);
      expectTypeOf(slice).toEqualTypeOf<StreamSlice<BankEvents>>();
      expectTypeOf(slice.events[0]!.type).toEqualTypeOf<'Deposited' | 'Withdrawn'>();
      ctx.append(`account-${args.account}`, [{ type: 'Deposited', data: { amount: args.amount } }], { expectedVersion: slice.version });
      ctx.append(`account-${args.account}`, [{ type: 'Withdrawn', data: { amount: 1 }, metadata: { correlationId: 'c' }, id: 'a-uuid' }]);
      // @ts-expect-error: the data of a Deposited event has an amount that is a number
      ctx.append('a', [{ type: 'Deposited', data: { amount: 'five' } }]);
      // @ts-expect-error: not an event of this service
      ctx.append('a', [{ type: 'Closed', data: {} }]);
      // @ts-expect-error: a Deposited event needs its data
      ctx.append('a', [{ type: 'Deposited' }]);
      // @ts-expect-error: not an expected version
      ctx.append('a', [{ type: 'Deposited', data: { amount: 1 } }], { expectedVersion: 'sometimes' });
      ctx.expectVersion('limits', 'stream_exists');
      return { ok: true };
    },
  },
});

async function typedThroughTheService(dir: string): Promise<void> {
  const store = await openStore({ dir, service: bank });
  expectTypeOf(store).toEqualTypeOf<Store<BankEvents>>();
  await store.append('account-a', [{ type: 'Withdrawn', data: { amount: 2, reason: 'rent' } }], { expectedVersion: 'no_stream' });
  // @ts-expect-error: reason is a string
  await store.append('account-a', [{ type: 'Withdrawn', data: { amount: 2, reason: 3 } }]);
  for await (const event of store.readStream('account-a', { direction: 'backwards' })) {
    expectTypeOf(event).toEqualTypeOf<RecordedEvent<BankEvents>>();
    if (event.type === 'Withdrawn') expectTypeOf(event.data.reason).toEqualTypeOf<string | undefined>();
    else expectTypeOf(event.data).toEqualTypeOf<{ amount: number }>();
    expectTypeOf(event.id).toEqualTypeOf<string>();
    expectTypeOf(event.createdAt).toEqualTypeOf<Date | undefined>();
  }
  const page = await store.readAll({ fromPosition: 'end', direction: 'backwards', maxCount: 10 });
  expectTypeOf(page).toEqualTypeOf<Array<RecordedEvent<BankEvents>>>();
  for await (const event of store.subscribe({ filter: { eventTypes: ['Deposited'] } })) {
    expectTypeOf(event.type).toEqualTypeOf<'Deposited' | 'Withdrawn'>();
  }
  // @ts-expect-error: a filter names only event types of the store
  store.subscribe({ filter: { eventTypes: ['Closed'] } });
  // @ts-expect-error: a filter names only event types of the store
  store.readAll({ filter: { eventTypes: ['Closed'] } });
}

async function typedByName(dir: string): Promise<void> {
  const store = await openStore<BankEvents>({ dir });
  expectTypeOf(store).toEqualTypeOf<Store<BankEvents>>();
  // @ts-expect-error: not an event of this store
  await store.append('a', [{ type: 'Opened', data: null }]);
}

async function untyped(dir: string): Promise<void> {
  const store = await openStore({ dir });
  await store.append('a', [{ type: 'Anything', data: { at: 1 } }, { type: 'NoData' }]);
  const slice = await store.readStream('a');
  expectTypeOf(slice.events[0]!.type).toEqualTypeOf<string>();
  expectTypeOf(slice.events[0]!.data).toEqualTypeOf<unknown>();
  const plain = defineService({ name: 'plain', commands: { noop: (ctx) => ctx.append('a', [{ type: 'Any' }]) } });
  const withPlain: Store = await openStore({ dir, service: plain });
  expectTypeOf(withPlain).toEqualTypeOf<Store>();
}

describe('typed events', () => {
  it('are checked by npm run typecheck (this file compiles only if every case holds)', () => {
    expect([typedThroughTheService, typedByName, untyped].every((check) => typeof check === 'function')).toBe(true);
  });
});
