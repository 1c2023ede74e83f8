/**
 * Proves the event-store surface of the embedded store: `append` with expectedVersion -1, n and
 * omitted; several streams in one transaction commit atomically or not at all (a service handler
 * appending to two streams, and the built-in `append` with `{ writes }`); WRONG_EXPECTED_VERSION
 * carries the actual version; `readStream` (fromVersion, maxCount, a missing stream); `readAll`
 * in global commit order; and `subscribe`: catch-up then live with no gap and no duplicate while
 * appends race the catch-up, the caught-up signal, and that it ends on abort and on close.
 */
import { describe, expect, it } from 'vitest';
import { defineService, type RecordedEvent, type Store } from '../../engine/index.js';
import { useTempDir } from '../helpers/temp.js';
import { rejectedError } from '../helpers/wal.js';
import { openQuietStore, settle } from '../helpers/store.js';

const newDir = useTempDir('txlog-events-');

const transfers = defineService({
  name: 'transfers',
  commands: {
    async transfer(ctx, args: { from: string; to: string; amount: number; fromVersion?: number }) {
      const source = await ctx.readStream(args.from);
      ctx.append(args.from, [{ type: 'Debited', data: { amount: args.amount } }], { expectedVersion: args.fromVersion ?? source.version });
      ctx.append(args.to, [{ type: 'Credited', data: { amount: args.amount } }]);
      return { ok: true };
    },
    async transferThenFail(ctx, args: { from: string; to: string }) {
      ctx.append(args.from, [{ type: 'Debited', data: {} }]);
      ctx.append(args.to, [{ type: 'Credited', data: {} }]);
      throw new Error('changed my mind');
    },
  },
});

function typesOf(events: readonly RecordedEvent[]): string[] {
  return events.map((event) => event.type);
}

async function withStore(run: (store: Store) => Promise<void>, options: Parameters<typeof openQuietStore>[1] = {}): Promise<void> {
  const { store } = await openQuietStore(newDir(), { service: transfers, ...options });
  try {
    await run(store);
  } finally {
    await store.close();
  }
}

describe('append and expectedVersion', () => {
  it('creates a stream with -1 and refuses -1 once it exists', () =>
    withStore(async (store) => {
      const first = await store.append('orders-1', [{ type: 'Placed', data: { id: 1 } }], { expectedVersion: -1 });
      expect(first).toEqual({ stream: 'orders-1', version: 0, position: 0 });
      const error = await rejectedError(() => store.append('orders-1', [{ type: 'Placed', data: {} }], { expectedVersion: -1 }));
      expect(error.code).toBe('WRONG_EXPECTED_VERSION');
      expect(error.details).toMatchObject({ stream: 'orders-1', expectedVersion: -1, actualVersion: 0 });
      expect((await store.readStream('orders-1')).version).toBe(0);
    }));

  it('appends at version n only when the stream is at n, and reports the actual version', () =>
    withStore(async (store) => {
      await store.append('s', [{ type: 'A' }, { type: 'B' }], { expectedVersion: -1 });
      const next = await store.append('s', [{ type: 'C' }], { expectedVersion: 1 });
      expect(next).toEqual({ stream: 's', version: 2, position: 2 });
      for (const wrong of [0, 1, 3, 100]) {
        const error = await rejectedError(() => store.append('s', [{ type: 'X' }], { expectedVersion: wrong }));
        expect(error.code).toBe('WRONG_EXPECTED_VERSION');
        expect(error.details['actualVersion']).toBe(2);
        expect(error.details['expectedVersion']).toBe(wrong);
      }
      const missing = await rejectedError(() => store.append('nope', [{ type: 'X' }], { expectedVersion: 0 }));
      expect(missing.details['actualVersion']).toBe(-1);
      expect(typesOf((await store.readStream('s')).events)).toEqual(['A', 'B', 'C']);
    }));

  it('appends whatever the version when expectedVersion is omitted', () =>
    withStore(async (store) => {
      expect((await store.append('any', [{ type: 'A' }])).version).toBe(0);
      expect((await store.append('any', [{ type: 'B' }, { type: 'C' }])).version).toBe(2);
      const slice = await store.readStream('any');
      expect(slice.version).toBe(2);
      expect(slice.events.map((event) => [event.version, event.position, event.type])).toEqual([
        [0, 0, 'A'],
        [1, 1, 'B'],
        [2, 2, 'C'],
      ]);
    }));

  it('refuses bad expected versions and empty appends as BAD_REQUEST', () =>
    withStore(async (store) => {
      expect((await rejectedError(() => store.append('s', [{ type: 'A' }], { expectedVersion: -2 }))).code).toBe('BAD_REQUEST');
      expect((await rejectedError(() => store.append('s', [{ type: 'A' }], { expectedVersion: 1.5 }))).code).toBe('BAD_REQUEST');
      expect((await rejectedError(() => store.append('s', []))).code).toBe('BAD_REQUEST');
      expect((await rejectedError(() => store.append('', [{ type: 'A' }]))).code).toBe('BAD_REQUEST');
      expect((await store.readStream('s')).version).toBe(-1);
    }));
});

describe('several streams in one transaction', () => {
  it('a handler appending to two streams commits both or neither', () =>
    withStore(async (store) => {
      await store.append('account-a', [{ type: 'Opened' }], { expectedVersion: -1 });
      await store.execute('transfer', { from: 'account-a', to: 'account-b', amount: 5 });
      expect((await store.readStream('account-a')).version).toBe(1);
      expect((await store.readStream('account-b')).version).toBe(0);

      // The first stream's expected version is wrong: neither stream moves.
      const conflict = await rejectedError(() => store.execute('transfer', { from: 'account-a', to: 'account-b', amount: 1, fromVersion: 0 }));
      expect(conflict.code).toBe('WRONG_EXPECTED_VERSION');
      expect(conflict.details['actualVersion']).toBe(1);
      // The handler throws after appending to both: neither stream moves.
      const failed = await rejectedError(() => store.execute('transferThenFail', { from: 'account-a', to: 'account-b' }));
      expect(failed.code).toBe('HANDLER_FAILED');
      expect((await store.readStream('account-a')).version).toBe(1);
      expect((await store.readStream('account-b')).version).toBe(0);
      expect((await store.readAll()).length).toBe(3);
    }));

  it('the built-in append with { writes } commits all writes or none', () =>
    withStore(async (store) => {
      const reply = await store.execute('append', {
        writes: [
          { stream: 'x', events: [{ type: 'X1' }, { type: 'X2' }], expectedVersion: -1 },
          { stream: 'y', events: [{ type: 'Y1' }] },
        ],
      });
      expect(reply).toEqual({ stream: 'y', version: 0, position: 2 });
      const error = await rejectedError(() =>
        store.execute('append', {
          writes: [
            { stream: 'y', events: [{ type: 'Y2' }], expectedVersion: 0 },
            { stream: 'z', events: [{ type: 'Z1' }] },
            { stream: 'x', events: [{ type: 'X3' }], expectedVersion: 0 },
          ],
        }),
      );
      expect(error.code).toBe('WRONG_EXPECTED_VERSION');
      expect(error.details).toMatchObject({ stream: 'x', actualVersion: 1 });
      expect((await store.readStream('y')).version).toBe(0);
      expect((await store.readStream('z')).version).toBe(-1);
      expect(typesOf(await store.readAll())).toEqual(['X1', 'X2', 'Y1']);
    }));
});

describe('reads', () => {
  it('readStream of a missing stream is { version: -1, events: [] }', () =>
    withStore(async (store) => {
      expect(await store.readStream('missing')).toEqual({ version: -1, events: [] });
      expect(await store.readStream('missing', { fromVersion: 5, maxCount: 2 })).toEqual({ version: -1, events: [] });
    }));

  it('readStream honours fromVersion and maxCount and reports the head version', () =>
    withStore(async (store) => {
      await store.append('s', Array.from({ length: 10 }, (_, index) => ({ type: `E${index}`, data: { index } })));
      await store.append('other', [{ type: 'O' }]);
      const middle = await store.readStream('s', { fromVersion: 3, maxCount: 4 });
      expect(middle.version).toBe(9);
      expect(middle.events.map((event) => event.version)).toEqual([3, 4, 5, 6]);
      expect(middle.events[0]).toEqual({ stream: 's', version: 3, position: 3, id: expect.any(String), type: 'E3', data: { index: 3 }, createdAt: expect.any(Date) });
      expect((await store.readStream('s', { fromVersion: 8 })).events.map((event) => event.version)).toEqual([8, 9]);
      expect((await store.readStream('s', { fromVersion: 10 })).events).toEqual([]);
      expect((await store.readStream('s', { maxCount: 0 })).events).toEqual([]);
      expect((await rejectedError(() => store.readStream('s', { fromVersion: -1 }))).code).toBe('BAD_REQUEST');
      expect((await rejectedError(() => store.readStream('s', { maxCount: 1.5 }))).code).toBe('BAD_REQUEST');
    }));

  it('readAll returns events in global commit order from fromPosition, maxCount at a time', () =>
    withStore(async (store) => {
      const expected: string[] = [];
      for (let index = 0; index < 30; index++) {
        const stream = `s-${index % 4}`;
        await store.append(stream, [{ type: `T${index}` }]);
        expected.push(`${stream}/T${index}`);
      }
      const all = await store.readAll();
      expect(all.map((event) => `${event.stream}/${event.type}`)).toEqual(expected);
      expect(all.map((event) => event.position)).toEqual(expected.map((_, index) => index));
      const page = await store.readAll({ fromPosition: 10, maxCount: 5 });
      expect(page.map((event) => event.position)).toEqual([10, 11, 12, 13, 14]);
      expect(await store.readAll({ fromPosition: 30 })).toEqual([]);
      expect((await rejectedError(() => store.readAll({ fromPosition: -1 }))).code).toBe('BAD_REQUEST');
    }));
});

describe('subscribe', () => {
  it('catches up then goes live with no gap and no duplicate while appends race it, and says when it caught up', () =>
    withStore(async (store) => {
      // Enough history that the catch-up takes several pages while new commits keep landing.
      for (let batch = 0; batch < 4; batch++) {
        await store.append(`history-${batch}`, Array.from({ length: 500 }, (_, index) => ({ type: 'H', data: { index } })));
      }
      const liveAppends = 300;
      const total = 2000 + liveAppends;
      const positions: number[] = [];
      let caughtUpAt: number | undefined;
      let caughtUpCalls = 0;
      const controller = new AbortController();
      const consumer = (async () => {
        for await (const event of store.subscribe({
          fromPosition: 0,
          signal: controller.signal,
          onCaughtUp: () => {
            caughtUpCalls += 1;
            caughtUpAt = positions.length;
          },
        })) {
          positions.push(event.position);
          // A consumer that yields to the event loop now and then lets appends land mid-catch-up.
          if (event.position % 97 === 0) await settle(1);
          if (positions.length === total) break;
        }
      })();
      const producer = (async () => {
        for (let index = 0; index < liveAppends; index++) {
          await store.append(`live-${index % 3}`, [{ type: 'L', data: { index } }]);
        }
      })();
      await Promise.all([consumer, producer]);
      expect(positions).toEqual(Array.from({ length: total }, (_, index) => index));
      expect(caughtUpCalls).toBe(1);
      expect(caughtUpAt).toBeGreaterThanOrEqual(2000);
      const all = await store.readAll({ fromPosition: 0, maxCount: 4096 });
      expect(all.length).toBe(total);
    }));

  it('delivers live events after the caught-up signal, from a later fromPosition', () =>
    withStore(async (store) => {
      await store.append('a', [{ type: 'A0' }, { type: 'A1' }, { type: 'A2' }]);
      const seen: string[] = [];
      let caughtUp!: () => void;
      const caughtUpSignal = new Promise<void>((resolve) => (caughtUp = resolve));
      const consumer = (async () => {
        for await (const event of store.subscribe({ fromPosition: 1, onCaughtUp: () => caughtUp() })) {
          seen.push(event.type);
          if (seen.length === 4) return;
        }
      })();
      await caughtUpSignal;
      expect(seen).toEqual(['A1', 'A2']);
      await store.append('b', [{ type: 'B0' }, { type: 'B1' }]);
      await consumer;
      expect(seen).toEqual(['A1', 'A2', 'B0', 'B1']);
    }));

  it('ends when its signal aborts, while waiting for new events', () =>
    withStore(async (store) => {
      await store.append('a', [{ type: 'A' }]);
      const controller = new AbortController();
      const seen: number[] = [];
      const consumer = (async () => {
        for await (const event of store.subscribe({ signal: controller.signal, onCaughtUp: () => setImmediate(() => controller.abort()) })) {
          seen.push(event.position);
        }
      })();
      await consumer;
      expect(seen).toEqual([0]);
      // The store is unharmed.
      await store.append('a', [{ type: 'B' }]);
      expect((await store.readStream('a')).version).toBe(1);
    }));

  it('ends when the store closes', async () => {
    const { store } = await openQuietStore(newDir());
    await store.append('a', [{ type: 'A' }]);
    let caughtUp!: () => void;
    const caughtUpSignal = new Promise<void>((resolve) => (caughtUp = resolve));
    const seen: number[] = [];
    const consumer = (async () => {
      for await (const event of store.subscribe({ onCaughtUp: () => caughtUp() })) seen.push(event.position);
    })();
    await caughtUpSignal;
    await store.close();
    await consumer;
    expect(seen).toEqual([0]);
  });
});
