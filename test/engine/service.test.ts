/**
 * Proves the service runtime a handler sees: `ctx.readStream` (and that it lands in the read
 * set), `ctx.append` buffered and applied only at commit, `ctx.call` (the idempotency key
 * `clientId:requestId:callIndex`, its result or error journaled in the WAL before the handler
 * sees it, a thrown error reaching the handler as CALL_FAILED unless it was a TxlogError), and
 * `ctx.now()` / `ctx.random()` recorded in the commit record, checked by reading the WAL. Starting
 * call N+1 before call N resolved fails the transaction with BAD_REQUEST, recorded.
 */
import { describe, expect, it } from 'vitest';
import { TxlogError } from '../../wal/errors.js';
import { nodePlatform, type Platform } from '../../wal/platform.js';
import { defineService, type Context } from '../../engine/index.js';
import { useTempDir } from '../helpers/temp.js';
import { rejectedError } from '../helpers/wal.js';
import { commitOf, journalRecords, openQuietStore } from '../helpers/store.js';

const newDir = useTempDir('txlog-service-');

describe('ctx.readStream and ctx.append', () => {
  it('reads what is committed, buffers appends until the commit, and records the read set', async () => {
    const seenInside: number[] = [];
    const service = defineService({
      name: 'reader',
      commands: {
        async bump(ctx: Context, args: { stream: string; other: string }) {
          const before = await ctx.readStream(args.stream);
          await ctx.readStream(args.other);
          ctx.append(args.stream, [{ type: 'Bumped', data: { from: before.version } }], { expectedVersion: before.version });
          ctx.append(args.stream, [{ type: 'BumpedAgain' }]);
          // Buffered: the handler's own appends are not visible before the commit.
          seenInside.push((await ctx.readStream(args.stream)).version);
          return { before: before.version, events: before.events.map((event) => event.type) };
        },
      },
    });
    const { store } = await openQuietStore(newDir(), { service });
    try {
      await store.append('counter', [{ type: 'Started' }]);
      await store.append('elsewhere', [{ type: 'E' }, { type: 'E' }]);
      const reply = await store.execute('bump', { stream: 'counter', other: 'elsewhere' }, { clientId: 'c', requestId: 1 });
      expect(reply).toEqual({ before: 0, events: ['Started'] });
      expect(seenInside).toEqual([0]);
      const slice = await store.readStream('counter');
      expect(slice.events.map((event) => event.type)).toEqual(['Started', 'Bumped', 'BumpedAgain']);
      const commit = commitOf(store, 'c', 1);
      expect(commit?.readSet).toEqual([
        ['counter', 0],
        ['elsewhere', 1],
        ['counter', 0],
      ]);
      expect(commit?.events).toEqual([
        {
          stream: 'counter',
          expectedVersion: 0,
          firstVersion: 1,
          events: [
            { id: expect.any(String), type: 'Bumped', data: { from: 0 } },
            { id: expect.any(String), type: 'BumpedAgain', data: null },
          ],
        },
      ]);
    } finally {
      await store.close();
    }
  });
});

describe('ctx.call', () => {
  it('passes the idempotency key, journals each result before the handler sees it, and records the count', async () => {
    const keys: string[] = [];
    let journaledBeforeSeen: boolean[] = [];
    const holder: { store?: import('../../engine/index.js').Store } = {};
    const service = defineService({
      name: 'payments',
      commands: {
        async pay(ctx: Context, args: { amount: number }) {
          const first = await ctx.call('gateway.charge', (key) => {
            keys.push(key);
            return { chargeId: `ch-${key}`, amount: args.amount };
          });
          journaledBeforeSeen.push(journalRecords(holder.store!).some((entry) => entry.callIndex === 0 && entry.requestId === ctx.requestId));
          const second = await ctx.call('gateway.receipt', async (key) => {
            keys.push(key);
            await new Promise((resolve) => setTimeout(resolve, 2));
            return `receipt-${key}`;
          });
          journaledBeforeSeen.push(journalRecords(holder.store!).some((entry) => entry.callIndex === 1 && entry.requestId === ctx.requestId));
          ctx.append('payments', [{ type: 'Paid', data: { first, second } }]);
          return { first, second };
        },
      },
    });
    const { store } = await openQuietStore(newDir(), { service });
    holder.store = store;
    try {
      const reply = await store.execute('pay', { amount: 7 }, { clientId: 'client-9', requestId: 4 });
      expect(keys).toEqual(['client-9:4:0', 'client-9:4:1']);
      expect(reply).toEqual({ first: { chargeId: 'ch-client-9:4:0', amount: 7 }, second: 'receipt-client-9:4:1' });
      expect(journaledBeforeSeen).toEqual([true, true]);
      // Both entries are bound to the request that made them (one digest of its command and args).
      const request = journalRecords(store)[0]?.request;
      expect(request).toMatch(/^[0-9a-f]{32}$/);
      expect(journalRecords(store)).toEqual([
        { clientId: 'client-9', requestId: 4, callIndex: 0, name: 'gateway.charge', request, result: { chargeId: 'ch-client-9:4:0', amount: 7 } },
        { clientId: 'client-9', requestId: 4, callIndex: 1, name: 'gateway.receipt', request, result: 'receipt-client-9:4:1' },
      ]);
      expect(commitOf(store, 'client-9', 4)?.calls).toBe(2);
      // The commit names its calls' journal records, so re-execution finds them wherever they came from.
      expect(commitOf(store, 'client-9', 4)?.callLsns).toEqual([1, 2]);
      // A one-off request (no ids) gets a key too, with empty client and request 0.
      journaledBeforeSeen = [];
      await store.execute('pay', { amount: 1 });
      expect(keys.slice(2)).toEqual([':0:0', ':0:1']);
      // The journal entries of a committed request are done with: the state keeps none.
      expect(store.dumpState().journal).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('a thrown error reaches the handler as CALL_FAILED, a thrown TxlogError keeps its code, both journaled', async () => {
    const caught: Array<{ code: string; message: string; isTxlogError: boolean }> = [];
    const service = defineService({
      name: 'failing-calls',
      commands: {
        async tryBoth(ctx: Context) {
          for (const [name, fn] of [
            ['plain', () => { throw new Error('gateway down'); }],
            ['rejects', async () => Promise.reject(new Error('timeout upstream'))],
            ['ours', () => { throw new TxlogError('TOO_LARGE', 'upstream says too large'); }],
          ] as const) {
            try {
              await ctx.call(name, fn);
            } catch (error) {
              caught.push({ code: (error as TxlogError).code, message: (error as Error).message, isTxlogError: error instanceof TxlogError });
            }
          }
          return 'handled';
        },
        async letItThrow(ctx: Context) {
          await ctx.call('plain', () => { throw new Error('nope'); });
          return 'unreachable';
        },
      },
    });
    const { store } = await openQuietStore(newDir(), { service });
    try {
      expect(await store.execute('tryBoth', {}, { clientId: 'c', requestId: 1 })).toBe('handled');
      expect(caught).toEqual([
        { code: 'CALL_FAILED', message: 'gateway down', isTxlogError: true },
        { code: 'CALL_FAILED', message: 'timeout upstream', isTxlogError: true },
        { code: 'TOO_LARGE', message: 'upstream says too large', isTxlogError: true },
      ]);
      expect(journalRecords(store).map((entry) => [entry.callIndex, entry.error?.code])).toEqual([
        [0, 'CALL_FAILED'],
        [1, 'CALL_FAILED'],
        [2, 'TOO_LARGE'],
      ]);
      // Not caught by the handler: the call's error is the transaction's recorded error.
      const error = await rejectedError(() => store.execute('letItThrow', {}, { clientId: 'c', requestId: 2 }));
      expect(error.code).toBe('CALL_FAILED');
      expect(commitOf(store, 'c', 2)?.error?.code).toBe('CALL_FAILED');
    } finally {
      await store.close();
    }
  });

  it('starting call N+1 before call N resolved fails the transaction with BAD_REQUEST, recorded', async () => {
    let secondCalls = 0;
    const service = defineService({
      name: 'overlap',
      commands: {
        async overlapping(ctx: Context) {
          const first = ctx.call('first', async () => {
            await new Promise((resolve) => setTimeout(resolve, 5));
            return 1;
          });
          const second = ctx.call('second', () => ++secondCalls);
          second.catch(() => undefined); // awaited below, after the first call resolves
          ctx.append('overlap', [{ type: 'ShouldNotLand' }]);
          return [await first, await second];
        },
        async swallowed(ctx: Context) {
          const first = ctx.call('first', async () => 1);
          try {
            await ctx.call('second', () => ++secondCalls);
          } catch {
            // The handler swallows the misuse; the transaction must fail anyway.
          }
          ctx.append('overlap', [{ type: 'ShouldNotLand' }]);
          return await first;
        },
      },
    });
    const { store } = await openQuietStore(newDir(), { service });
    try {
      for (const [command, requestId] of [['overlapping', 1], ['swallowed', 2]] as const) {
        const error = await rejectedError(() => store.execute(command, {}, { clientId: 'c', requestId }));
        expect(error.code).toBe('BAD_REQUEST');
        expect(commitOf(store, 'c', requestId)?.error?.code).toBe('BAD_REQUEST');
        // A resend gets the same recorded error.
        expect((await rejectedError(() => store.execute(command, {}, { clientId: 'c', requestId }))).code).toBe('BAD_REQUEST');
      }
      expect(secondCalls).toBe(0);
      expect((await store.readStream('overlap')).version).toBe(-1);
      await store.append('still-works', [{ type: 'Yes' }]);
    } finally {
      await store.close();
    }
  });
});

describe('ctx.now and ctx.random', () => {
  it('records every value in the commit record, in order', async () => {
    let clockMs = 1_700_000_000_000;
    const randoms = [0.25, 0.5, 0.125];
    const platform: Platform = {
      ...nodePlatform,
      clock: { ...nodePlatform.clock, nowMs: () => (clockMs += 10) },
      random: { ...nodePlatform.random, float: () => randoms.shift() ?? 0.75 },
    };
    const service = defineService({
      name: 'clocky',
      commands: {
        stamp(ctx: Context) {
          const times = [ctx.now(), ctx.now()];
          const draws = [ctx.random(), ctx.random(), ctx.random(), ctx.random()];
          ctx.append('stamps', [{ type: 'Stamped', data: { times, draws } }]);
          return { times, draws };
        },
      },
    });
    const { store } = await openQuietStore(newDir(), { service, platform });
    try {
      const reply = await store.execute('stamp', null, { clientId: 'c', requestId: 1 });
      expect(reply).toEqual({ times: [1_700_000_000_010, 1_700_000_000_020], draws: [0.25, 0.5, 0.125, 0.75] });
      const commit = commitOf(store, 'c', 1);
      expect(commit?.now).toEqual([1_700_000_000_010, 1_700_000_000_020]);
      expect(commit?.random).toEqual([0.25, 0.5, 0.125, 0.75]);
    } finally {
      await store.close();
    }
  });
});
