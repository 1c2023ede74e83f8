/**
 * Proves the fixes of five holes found by trying to break exactly-once and error reporting
 * (issue 8), in one process; the ones that need a real crash are in crash.test.ts and the
 * replication tests:
 * 1. A request id with any trace (a journaled call of a request that never committed) is never
 *    handed out again, and a journaled result is given back only to the request that made it.
 * 2. A disk failure answers callers whose commits reached the WAL with OUTCOME_UNKNOWN (resend),
 *    never with a definite failure; a resend after reopening finds them committed.
 * 4. An infrastructure code thrown by service code is recorded as HANDLER_FAILED (or
 *    CALL_FAILED inside `ctx.call`), final, with the original code in `details.thrownCode`.
 * 5. Values are recorded as they were when checked: lone surrogates and own `__proto__` keys are
 *    refused, and mutating args, an event or a reply after the check changes nothing recorded.
 */
import { describe, expect, it } from 'vitest';
import { defineService, type Context } from '../../engine/index.js';
import { replayLog } from '../../engine/replay.js';
import { TxlogError } from '../../wal/errors.js';
import { failingSyncPlatform } from '../helpers/faulty-platform.js';
import { useTempDir } from '../helpers/temp.js';
import { commitOf, journalRecords, openQuietStore } from '../helpers/store.js';
import { rejectedError } from '../helpers/wal.js';

const newDir = useTempDir('txlog-holes-');

/** A gateway that counts its calls and can be told to hang on one of them. */
function gateway(): { calls: string[]; hangOn: Set<string>; charge: (key: string, amount: number) => Promise<string> } {
  const calls: string[] = [];
  const hangOn = new Set<string>();
  return {
    calls,
    hangOn,
    charge: async (key, amount) => {
      calls.push(`${key}=${amount}`);
      if (hangOn.has(key)) await new Promise(() => undefined);
      return `receipt:${key}:${amount}`;
    },
  };
}

function shopService(payments: ReturnType<typeof gateway>) {
  return defineService({
    name: 'shop',
    commands: {
      async charge(ctx: Context, args: { amount: number }) {
        const first = await ctx.call('gateway.charge', (key) => payments.charge(key, args.amount));
        const second = await ctx.call('gateway.confirm', (key) => payments.charge(key, args.amount));
        ctx.append('charges', [{ type: 'Charged', data: { amount: args.amount, first, second } }]);
        return { first, second };
      },
    },
  });
}

describe('hole 1: request ids and journaled calls', () => {
  it('counts a journaled call of an uncommitted request when handing out ids, and refuses it to another request', async () => {
    const dir = newDir();
    const payments = gateway();
    payments.hangOn.add('shop:1:1');
    const { store } = await openQuietStore(dir, { service: shopService(payments) });
    // Request 1 journals its first call, then hangs in its second: it never commits.
    void store.execute('charge', { amount: 10 }, { clientId: 'shop', requestId: 1 }).catch(() => undefined);
    await expect.poll(() => journalRecords(store).length).toBe(1);
    expect(store.latestRequestId('shop')).toBe(1);
    await store.close();

    // The process that ran it is gone; a new one asks which id comes next.
    const reopened = await openQuietStore(dir, { service: shopService(payments) });
    try {
      expect(reopened.store.latestRequestId('shop')).toBe(1);
      expect(reopened.store.latestRequestId('sho')).toBe(0);
      // Reusing id 1 for a different charge by hand: refused before the handler runs.
      const reused = await rejectedError(() => reopened.store.execute('charge', { amount: 99 }, { clientId: 'shop', requestId: 1 }));
      expect(reused.code).toBe('REQUEST_ID_REUSED');
      expect(reused.retryable).toBe(false);
      expect(payments.calls).toEqual(['shop:1:0=10', 'shop:1:1=10']);
      expect(commitOf(reopened.store, 'shop', 1)).toBeUndefined();
      // The original request, resent, still completes with its journaled first result.
      payments.hangOn.clear();
      const reply = await reopened.store.execute('charge', { amount: 10 }, { clientId: 'shop', requestId: 1 });
      expect(reply).toEqual({ first: 'receipt:shop:1:0:10', second: 'receipt:shop:1:1:10' });
      expect(payments.calls).toEqual(['shop:1:0=10', 'shop:1:1=10', 'shop:1:1=10']);
      // And the next id is a fresh one.
      expect(reopened.store.latestRequestId('shop')).toBe(1);
      expect(await reopened.store.execute('charge', { amount: 5 }, { clientId: 'shop', requestId: 2 })).toEqual({
        first: 'receipt:shop:2:0:5',
        second: 'receipt:shop:2:1:5',
      });
    } finally {
      await reopened.store.close();
    }
  });

  it('counts calls journaled but not yet applied when handing out ids', async () => {
    const payments = gateway();
    payments.hangOn.add('late:7:1');
    const { store } = await openQuietStore(newDir(), { service: shopService(payments) });
    try {
      void store.execute('charge', { amount: 1 }, { clientId: 'late', requestId: 7 }).catch(() => undefined);
      await expect.poll(() => payments.calls.length).toBe(2);
      expect(store.latestRequestId('late')).toBe(7);
    } finally {
      await store.close();
    }
  });
});

describe('hole 2: a failed disk', () => {
  it('answers commits that reached the WAL with OUTCOME_UNKNOWN, and a resend after reopening finds them', async () => {
    const dir = newDir();
    const faulty = failingSyncPlatform();
    const { store } = await openQuietStore(dir, { fsync: 'always', platform: faulty.platform });
    await store.append('s', [{ type: 'Before', data: 0 }], { clientId: 'c', requestId: 1 });
    faulty.arm();
    const attempts = [2, 3, 4].map((requestId) =>
      rejectedError(() => store.append('s', [{ type: 'During', data: requestId }], { clientId: 'c', requestId })),
    );
    for (const error of await Promise.all(attempts)) {
      expect(error.code).toBe('OUTCOME_UNKNOWN');
      expect(error.retryable).toBe(true);
      expect(error.outcomeUnknown).toBe(true);
    }
    // A request after the failure did nothing and says so: definite, and not "unknown".
    const refused = await rejectedError(() => store.append('s', [{ type: 'After', data: 5 }], { clientId: 'c', requestId: 5 }));
    expect(refused.outcomeUnknown).toBe(false);
    await store.close().catch(() => undefined);

    // The process kept the written bytes (the page cache has them): reopening finds each commit once.
    const reopened = await openQuietStore(dir);
    try {
      for (const requestId of [2, 3, 4]) {
        const result = await reopened.store.append('s', [{ type: 'During', data: requestId }], { clientId: 'c', requestId });
        expect(result.stream).toBe('s');
      }
      const events = (await reopened.store.readStream('s')).events.map((event) => event.data);
      expect(events.slice().sort()).toEqual([0, 2, 3, 4]);
    } finally {
      await reopened.store.close();
    }
  });
});

describe('hole 4: infrastructure codes thrown by service code', () => {
  it('records them as HANDLER_FAILED or CALL_FAILED, final, with the original code in details', async () => {
    const service = defineService({
      name: 'relay',
      commands: {
        async forward() {
          throw new TxlogError('NOT_PRIMARY', 'the other system said: not primary');
        },
        async callOut(ctx: Context) {
          return ctx.call('other.system', () => {
            throw new TxlogError('TIMEOUT', 'the other system timed out');
          });
        },
        async conflict() {
          throw new TxlogError('WRONG_EXPECTED_VERSION', 'decided by the handler', { details: { actualVersion: 3 } });
        },
      },
    });
    const { store } = await openQuietStore(newDir(), { service });
    try {
      for (const requestId of [1, 2]) {
        const error = await rejectedError(() => store.execute('forward', {}, { clientId: 'r', requestId: 1 }));
        expect([requestId, error.code, error.retryable, error.details['thrownCode']]).toEqual([requestId, 'HANDLER_FAILED', false, 'NOT_PRIMARY']);
      }
      expect(commitOf(store, 'r', 1)?.error?.code).toBe('HANDLER_FAILED');
      const called = await rejectedError(() => store.execute('callOut', {}, { clientId: 'r', requestId: 2 }));
      expect([called.code, called.details['thrownCode']]).toEqual(['CALL_FAILED', 'TIMEOUT']);
      expect(journalRecords(store).at(-1)?.error?.code).toBe('CALL_FAILED');
      // A code about the transaction itself keeps its code.
      const conflict = await rejectedError(() => store.execute('conflict', {}, { clientId: 'r', requestId: 3 }));
      expect([conflict.code, conflict.details['actualVersion']]).toEqual(['WRONG_EXPECTED_VERSION', 3]);
    } finally {
      await store.close();
    }
  });
});

describe('hole 5: values recorded as they were checked', () => {
  it('refuses names and values that are not well-formed Unicode, and own __proto__ keys', async () => {
    const service = defineService({
      name: 'names',
      commands: {
        async write(ctx: Context, args: { stream: string; data: unknown }) {
          ctx.append(args.stream, [{ type: 'T', data: args.data }]);
          return null;
        },
      },
    });
    const { store } = await openQuietStore(newDir(), { service });
    try {
      const cases: Array<[() => Promise<unknown>, string]> = [
        [() => store.append('a\uD800', [{ type: 'T' }]), 'BAD_REQUEST'],
        [() => store.readStream('a\uDC00'), 'BAD_REQUEST'],
        // Inside args (the built-in append's event) the value cannot be stored faithfully.
        [() => store.append('a', [{ type: 'T\uD800' }]), 'NOT_SERIALIZABLE'],
        [() => store.execute('write', { stream: 'b\uD800', data: 1 }), 'NOT_SERIALIZABLE'],
        [() => store.execute('write', { stream: 'b', data: 'x\uDFFF' }), 'NOT_SERIALIZABLE'],
        [() => store.execute('write', JSON.parse('{"stream":"b","data":{"__proto__":{"admin":true}}}')), 'NOT_SERIALIZABLE'],
        [() => store.execute('write\uD800', {}), 'BAD_REQUEST'],
        [() => store.execute('write', { stream: 'b', data: 1 }, { clientId: 'c\uD800', requestId: 1 }), 'BAD_REQUEST'],
      ];
      for (const [action, code] of cases) expect((await rejectedError(action)).code).toBe(code);
      await store.execute('write', { stream: 'ok', data: 'fine' }, { clientId: 'c', requestId: 1 });
      expect((await store.readStream('ok')).events.map((event) => event.data)).toEqual(['fine']);
    } finally {
      await store.close();
    }
  });

  it('records args, events and replies as checked, whatever the handler does to them later', async () => {
    const dir = newDir();
    const big = 'x'.repeat(700 * 1024);
    const escaped: { event?: { data: { note: string } }; reply?: { note: string } } = {};
    const service = defineService({
      name: 'mutating',
      commands: {
        async mutate(ctx: Context, args: { items: string[] }) {
          args.items.push('added by the handler');
          const event = { type: 'Noted', data: { note: 'small' } };
          ctx.append('notes', [event]);
          // Grown after the check: neither the limit nor the record may see it.
          event.data.note = big;
          escaped.event = event;
          const reply = { note: 'reply' };
          escaped.reply = reply;
          setImmediate(() => (reply.note = 'changed after return'));
          return reply;
        },
      },
    });
    const { store } = await openQuietStore(dir, { service });
    try {
      const args = { items: ['one'] };
      const reply = await store.execute('mutate', args, { clientId: 'm', requestId: 1 });
      expect(reply).toEqual({ note: 'reply' });
      // The caller's object is not the handler's copy either.
      expect(args.items).toEqual(['one']);
      const commit = commitOf(store, 'm', 1);
      expect(commit?.args).toEqual({ items: ['one'] });
      expect(commit?.events[0]?.events[0]?.data).toEqual({ note: 'small' });
      expect((await store.readStream('notes')).events[0]?.data).toEqual({ note: 'small' });
      expect(await store.execute('mutate', args, { clientId: 'm', requestId: 1 })).toEqual({ note: 'reply' });
    } finally {
      await store.close();
    }
    const report = await replayLog({ dir, service });
    expect(report.commits).toBe(1);
    expect(report.divergences).toEqual([]);
  });
});
