/**
 * Proves that failed transactions are recorded and answered the same way on every resend without
 * running the handler again: a handler that throws (HANDLER_FAILED), an unknown command
 * (UNKNOWN_COMMAND), a reply msgpack cannot carry (a function, a Map, a class instance:
 * NOT_SERIALIZABLE), each limit + 1 (events per transaction, event bytes, calls: TOO_LARGE), and a
 * handler stuck past handlerTimeoutMs (HANDLER_FAILED, timedOut).
 * And that bad input from the caller (wrong types for command, clientId, requestId, args;
 * oversized args; a clientId without a requestId) is refused with BAD_REQUEST, TOO_LARGE or
 * NOT_SERIALIZABLE before anything runs, and the store keeps working afterwards.
 */
import { describe, expect, it } from 'vitest';
import { encodePayload } from '../../wal/format.js';
import { defineService, replayLog, type Context, type Store } from '../../engine/index.js';
import { useTempDir } from '../helpers/temp.js';
import { rejectedError } from '../helpers/wal.js';
import { commitOf, commitRecords, openQuietStore } from '../helpers/store.js';

const newDir = useTempDir('txlog-failures-');

const limits = { eventsPerTransactionMax: 5, eventBytesMax: 200, callsPerTransactionMax: 3, argsBytesMax: 300 };

class Money {
  constructor(readonly cents: number) {}
}

/** An event whose msgpack encoding (as the store checks it) is exactly `sizeBytes` long. */
function eventOfSize(sizeBytes: number): { type: string; data: string } {
  for (let length = 0; length < sizeBytes; length++) {
    const event = { type: 'E', data: 'x'.repeat(length) };
    if (encodePayload(event).length === sizeBytes) return event;
  }
  throw new Error(`no event of exactly ${sizeBytes} bytes`);
}

function makeService(invocations: Map<string, number>) {
  const count = (ctx: Context): void => {
    invocations.set(ctx.command, (invocations.get(ctx.command) ?? 0) + 1);
  };
  return defineService({
    name: 'failing',
    commands: {
      throws(ctx: Context) {
        count(ctx);
        ctx.append('never', [{ type: 'X' }]);
        throw new Error('boom');
      },
      throwsString(ctx: Context) {
        count(ctx);
        // Not even an Error: still HANDLER_FAILED, with the value as the message.
        throw 'plain string';
      },
      replyFunction(ctx: Context) {
        count(ctx);
        return { callback: () => 1 };
      },
      replyMap(ctx: Context) {
        count(ctx);
        return new Map([['a', 1]]);
      },
      replyInstance(ctx: Context) {
        count(ctx);
        return { total: new Money(5) };
      },
      manyEvents(ctx: Context, args: { count: number }) {
        count(ctx);
        ctx.append('many', Array.from({ length: args.count }, (_, index) => ({ type: 'E', data: index })));
        return args.count;
      },
      bigEvent(ctx: Context, args: { sizeBytes: number }) {
        count(ctx);
        ctx.append('big', [eventOfSize(args.sizeBytes)]);
        return args.sizeBytes;
      },
      manyCalls(ctx: Context, args: { count: number }) {
        count(ctx);
        return (async () => {
          for (let index = 0; index < args.count; index++) await ctx.call(`call-${index}`, () => index);
          return args.count;
        })();
      },
    },
  });
}

async function withStore(run: (store: Store, invocations: Map<string, number>) => Promise<void>): Promise<void> {
  const invocations = new Map<string, number>();
  const { store } = await openQuietStore(newDir(), { service: makeService(invocations), ...limits });
  try {
    await run(store, invocations);
  } finally {
    await store.close();
  }
}

/** Sends a request twice (and once more after a reopen would be the recovery test's job). */
async function failsTwiceTheSameWay(store: Store, command: string, args: unknown, requestId: number, code: string): Promise<void> {
  const first = await rejectedError(() => store.execute(command, args, { clientId: 'c', requestId }));
  expect(first.code).toBe(code);
  const resent = await rejectedError(() => store.execute(command, args, { clientId: 'c', requestId }));
  expect(resent.code).toBe(code);
  expect(resent.message).toBe(first.message);
  expect(commitOf(store, 'c', requestId)?.error?.code).toBe(code);
  expect(commitOf(store, 'c', requestId)?.events).toEqual([]);
}

describe('failed transactions are recorded', () => {
  it('handler throws → HANDLER_FAILED, its appends dropped, resend answered from the record', () =>
    withStore(async (store, invocations) => {
      await failsTwiceTheSameWay(store, 'throws', {}, 1, 'HANDLER_FAILED');
      await failsTwiceTheSameWay(store, 'throwsString', {}, 2, 'HANDLER_FAILED');
      expect((await rejectedError(() => store.execute('throwsString', {}, { clientId: 'c', requestId: 2 }))).message).toBe('plain string');
      expect(invocations.get('throws')).toBe(1);
      expect(invocations.get('throwsString')).toBe(1);
      expect((await store.readStream('never')).version).toBe(-1);
    }));

  it('a handler stuck past handlerTimeoutMs → HANDLER_FAILED (timedOut), recorded; replay skips it', async () => {
    const dir = newDir();
    let stuckCalls = 0;
    const service = defineService({
      name: 'stuck',
      commands: {
        async hang(ctx: Context) {
          ctx.append('stuck', [{ type: 'Never' }]);
          await ctx.call('never.answers', () => {
            stuckCalls += 1;
            return new Promise(() => undefined);
          });
          return 'unreachable';
        },
        quick: () => 'ok',
      },
    });
    const { store } = await openQuietStore(dir, { service, handlerTimeoutMs: 100 });
    try {
      const first = await rejectedError(() => store.execute('hang', {}, { clientId: 'c', requestId: 1 }));
      expect(first.code).toBe('HANDLER_FAILED');
      expect(first.details).toMatchObject({ timedOut: true, timeoutMs: 100 });
      const resent = await rejectedError(() => store.execute('hang', {}, { clientId: 'c', requestId: 1 }));
      expect(resent.code).toBe('HANDLER_FAILED');
      expect(stuckCalls).toBe(1);
      expect(commitOf(store, 'c', 1)?.events).toEqual([]);
      expect(await store.execute('quick', {}, { clientId: 'c', requestId: 2 })).toBe('ok');
      expect((await store.readStream('stuck')).version).toBe(-1);
    } finally {
      await store.close();
    }
    const report = await replayLog({ dir, service });
    expect(report.commits).toBe(2);
    expect(report.divergences).toEqual([]);
  });

  it('unknown command → UNKNOWN_COMMAND, recorded', () =>
    withStore(async (store) => {
      await failsTwiceTheSameWay(store, 'noSuchCommand', { a: 1 }, 1, 'UNKNOWN_COMMAND');
      // Prototype names are not commands either.
      await failsTwiceTheSameWay(store, 'toString', {}, 2, 'UNKNOWN_COMMAND');
      await failsTwiceTheSameWay(store, 'constructor', {}, 3, 'UNKNOWN_COMMAND');
    }));

  it('a reply msgpack cannot carry (function, Map, class instance) → NOT_SERIALIZABLE', () =>
    withStore(async (store, invocations) => {
      await failsTwiceTheSameWay(store, 'replyFunction', {}, 1, 'NOT_SERIALIZABLE');
      await failsTwiceTheSameWay(store, 'replyMap', {}, 2, 'NOT_SERIALIZABLE');
      await failsTwiceTheSameWay(store, 'replyInstance', {}, 3, 'NOT_SERIALIZABLE');
      expect([...invocations.values()]).toEqual([1, 1, 1]);
    }));

  it('each limit + 1 → TOO_LARGE; the limit itself passes', () =>
    withStore(async (store, invocations) => {
      expect(await store.execute('manyEvents', { count: 5 }, { clientId: 'c', requestId: 1 })).toBe(5);
      await failsTwiceTheSameWay(store, 'manyEvents', { count: 6 }, 2, 'TOO_LARGE');
      expect(await store.execute('bigEvent', { sizeBytes: 200 }, { clientId: 'c', requestId: 3 })).toBe(200);
      await failsTwiceTheSameWay(store, 'bigEvent', { sizeBytes: 201 }, 4, 'TOO_LARGE');
      expect(await store.execute('manyCalls', { count: 3 }, { clientId: 'c', requestId: 5 })).toBe(3);
      await failsTwiceTheSameWay(store, 'manyCalls', { count: 4 }, 6, 'TOO_LARGE');
      expect(invocations.get('manyEvents')).toBe(2);
      expect(invocations.get('bigEvent')).toBe(2);
      expect(invocations.get('manyCalls')).toBe(2);
      expect((await store.readStream('many')).version).toBe(4);
      expect((await store.readStream('big')).version).toBe(0);
      // The built-in append is held to the same limits.
      const tooMany = await rejectedError(() => store.append('s', Array.from({ length: 6 }, () => ({ type: 'E' }))));
      expect(tooMany.code).toBe('TOO_LARGE');
      const tooBig = await rejectedError(() => store.execute('append', { stream: 's', events: [eventOfSize(201)] }));
      expect(tooBig.code).toBe('TOO_LARGE');
    }));

  it('failures keep the store and its global order intact', () =>
    withStore(async (store) => {
      await store.append('a', [{ type: 'A' }]);
      await rejectedError(() => store.execute('throws', {}));
      await rejectedError(() => store.execute('nope', {}));
      await store.append('a', [{ type: 'B' }]);
      expect((await store.readAll()).map((event) => [event.position, event.type])).toEqual([
        [0, 'A'],
        [1, 'B'],
      ]);
      expect(commitRecords(store).length).toBe(4);
    }));
});

describe('bad input from the caller', () => {
  it('is refused before anything runs or is recorded, and the store keeps working', () =>
    withStore(async (store, invocations) => {
      const cases: Array<[string, () => Promise<unknown>, string]> = [
        ['command a number', () => store.execute(42 as unknown as string, {}), 'BAD_REQUEST'],
        ['command empty', () => store.execute('', {}), 'BAD_REQUEST'],
        ['command too long', () => store.execute('x'.repeat(129), {}), 'BAD_REQUEST'],
        ['clientId a number', () => store.execute('throws', {}, { clientId: 7 as unknown as string, requestId: 1 }), 'BAD_REQUEST'],
        ['clientId too long', () => store.execute('throws', {}, { clientId: 'c'.repeat(129), requestId: 1 }), 'BAD_REQUEST'],
        ['requestId a string', () => store.execute('throws', {}, { clientId: 'c', requestId: '1' as unknown as number }), 'BAD_REQUEST'],
        ['requestId negative', () => store.execute('throws', {}, { clientId: 'c', requestId: -1 }), 'BAD_REQUEST'],
        ['requestId fractional', () => store.execute('throws', {}, { clientId: 'c', requestId: 1.5 }), 'BAD_REQUEST'],
        ['requestId NaN', () => store.execute('throws', {}, { clientId: 'c', requestId: Number.NaN }), 'BAD_REQUEST'],
        ['clientId without requestId', () => store.execute('throws', {}, { clientId: 'c' }), 'BAD_REQUEST'],
        ['requestId without clientId', () => store.execute('throws', {}, { requestId: 3 }), 'BAD_REQUEST'],
        ['ids null', () => store.execute('throws', {}, null as unknown as {}), 'BAD_REQUEST'],
        ['ids a string', () => store.execute('throws', {}, 'c:1' as unknown as {}), 'BAD_REQUEST'],
        ['args a function', () => store.execute('throws', () => 1), 'NOT_SERIALIZABLE'],
        ['args hold a Map', () => store.execute('throws', { map: new Map() }), 'NOT_SERIALIZABLE'],
        ['args hold a class instance', () => store.execute('throws', { money: new Money(1) }), 'NOT_SERIALIZABLE'],
        ['args a symbol', () => store.execute('throws', Symbol('s')), 'NOT_SERIALIZABLE'],
        ['args too large', () => store.execute('throws', { blob: 'x'.repeat(400) }), 'TOO_LARGE'],
        ['append args not an object', () => store.execute('append', 'stream'), 'BAD_REQUEST'],
        ['append writes empty', () => store.execute('append', { writes: [] }), 'BAD_REQUEST'],
        ['append event without type', () => store.execute('append', { stream: 's', events: [{ data: 1 }] }), 'BAD_REQUEST'],
        ['append stream not a string', () => store.execute('append', { stream: 5, events: [{ type: 'E' }] }), 'BAD_REQUEST'],
        ['append expectedVersion a string', () => store.execute('append', { stream: 's', events: [{ type: 'E' }], expectedVersion: '0' }), 'BAD_REQUEST'],
      ];
      const before = store.lastLsn;
      for (const [name, send, code] of cases) {
        const error = await rejectedError(send);
        expect(`${name}: ${error.code}`).toBe(`${name}: ${code}`);
      }
      // The built-in append's own checks run as a handler, so those are recorded failures; the
      // request checks before them recorded nothing.
      const recorded = commitRecords(store).filter(({ lsn }) => lsn > before);
      expect(recorded.every(({ commit }) => commit.command === 'append')).toBe(true);
      expect(invocations.get('throws')).toBeUndefined();
      // Still working: a good request runs, and a clientId whose request was refused may send it properly.
      expect(await store.append('s', [{ type: 'E' }])).toMatchObject({ version: 0 });
      expect(await store.execute('manyEvents', { count: 1 }, { clientId: 'c', requestId: 1 })).toBe(1);
    }));
});
