/**
 * Proves expected versions by name and by number: `'no_stream'` (= -1), `'stream_exists'` and
 * `'exists'` (at least one event), `'any'`, a version; each value outside them is BAD_REQUEST;
 * a conflict is a recorded WRONG_EXPECTED_VERSION with the actual version. Checks on streams a
 * transaction does not write (the built-in append's `checks`, `ctx.expectVersion`) guard the
 * whole transaction, are recorded in the commit, replay without divergence, and past
 * `checksPerTransactionMax` are TOO_LARGE.
 */
import { describe, expect, it } from 'vitest';
import { defineService, replayLog, type Context } from '../../engine/index.js';
import { commitRecords, openQuietStore } from '../helpers/store.js';
import { useTempDir } from '../helpers/temp.js';

const newDir = useTempDir('txlog-expected-version-');

async function codeOf(promise: Promise<unknown>): Promise<{ code?: string; details?: Record<string, unknown> }> {
  return promise.then(
    () => ({}),
    (error: { code?: string; details?: Record<string, unknown> }) => error,
  );
}

describe('expected versions', () => {
  it('accepts names and numbers and refuses anything else', async () => {
    const { store } = await openQuietStore(newDir(), { checksPerTransactionMax: 3 });
    try {
      const checks = (count: number): Array<{ stream: string; expectedVersion: 'any' | 'no_stream' }> =>
        Array.from({ length: count }, (_, index) => ({ stream: `missing-${index}`, expectedVersion: 'no_stream' }));
      await store.append('y', [{ type: 'A' }], { checks: checks(3) });
      expect((await codeOf(store.append('y', [{ type: 'A' }], { checks: checks(4) }))).code).toBe('TOO_LARGE');

      expect((await codeOf(store.append('s', [{ type: 'A' }], { expectedVersion: 'stream_exists' }))).details).toMatchObject({
        stream: 's',
        expectedVersion: 'stream_exists',
        actualVersion: -1,
      });
      expect((await codeOf(store.append('s', [{ type: 'A' }], { expectedVersion: 'exists' }))).code).toBe('WRONG_EXPECTED_VERSION');
      await store.append('s', [{ type: 'A' }], { expectedVersion: 'no_stream' });
      expect((await codeOf(store.append('s', [{ type: 'B' }], { expectedVersion: 'no_stream' }))).details).toMatchObject({ actualVersion: 0 });
      expect((await codeOf(store.append('s', [{ type: 'B' }], { expectedVersion: -1 }))).code).toBe('WRONG_EXPECTED_VERSION');
      await store.append('s', [{ type: 'B' }], { expectedVersion: 'stream_exists' });
      await store.append('s', [{ type: 'C' }], { expectedVersion: 'exists' });
      await store.append('s', [{ type: 'D' }], { expectedVersion: 'any' });
      await store.append('s', [{ type: 'E' }], { expectedVersion: 3 });
      expect((await codeOf(store.append('s', [{ type: 'F' }], { expectedVersion: 3 }))).details).toMatchObject({ expectedVersion: 3, actualVersion: 4 });
      for (const wrong of ['nope', -2, 1.5, null, true]) {
        // A caller without types can send anything; the store decides, never msgpack.
        const refused = await codeOf(store.append('s', [{ type: 'F' }], { expectedVersion: wrong as never }));
        expect(refused.code, String(wrong)).toBe(wrong === null ? undefined : 'BAD_REQUEST');
      }
      expect((await store.readStream('s')).events.map((event) => event.type)).toEqual(['A', 'B', 'C', 'D', 'E', 'F']);
    } finally {
      await store.close();
    }
  });

  it('guards an append with checks on streams it does not write, atomically, and records them', async () => {
    const dir = newDir();
    const { store } = await openQuietStore(dir);
    try {
      await store.append('limits', [{ type: 'Set', data: { max: 2 } }]);
      await store.append('orders', [{ type: 'Placed' }], { checks: [{ stream: 'limits', expectedVersion: 0 }] });
      await store.append('limits', [{ type: 'Set', data: { max: 1 } }]);
      const refused = await codeOf(
        store.execute('append', {
          writes: [{ stream: 'orders', events: [{ type: 'Placed' }] }, { stream: 'audit', events: [{ type: 'Seen' }] }],
          checks: [{ stream: 'limits', expectedVersion: 0 }, { stream: 'customers', expectedVersion: 'no_stream' }],
        }),
      );
      expect(refused).toMatchObject({ code: 'WRONG_EXPECTED_VERSION', details: { stream: 'limits', expectedVersion: 0, actualVersion: 1 } });
      expect((await store.readStream('orders')).version).toBe(0);
      expect((await store.readStream('audit')).version).toBe(-1);
      expect(commitRecords(store).map(({ commit }) => commit.checks)).toEqual([undefined, [['limits', 0]], undefined, [['limits', 0], ['customers', -1]]]);
      expect((await codeOf(store.append('x', [{ type: 'A' }], { checks: [{ stream: 'limits' } as never] }))).code).toBe('BAD_REQUEST');
      expect((await codeOf(store.append('x', [{ type: 'A' }], { checks: 'limits' as never }))).code).toBe('BAD_REQUEST');
    } finally {
      await store.close();
    }
    expect((await replayLog({ dir, service: undefined })).divergences).toEqual([]);
  });

  it('ctx.expectVersion guards a service decision and re-executes to the same digest', async () => {
    const service = defineService({
      name: 'transfers',
      commands: {
        async transfer(ctx: Context, args: { from: string; to: string }) {
          const source = await ctx.readStream(args.from, { maxCount: 0 });
          ctx.expectVersion(args.from, source.version);
          ctx.expectVersion(args.from, 'any');
          ctx.append(args.to, [{ type: 'Credited' }], { expectedVersion: 'any' });
          return source.version;
        },
      },
    });
    const dir = newDir();
    const { store } = await openQuietStore(dir, { service });
    try {
      await store.append('a', [{ type: 'Opened' }]);
      expect(await store.execute('transfer', { from: 'a', to: 'b' })).toBe(0);
      expect(commitRecords(store).at(-1)?.commit.checks).toEqual([['a', 0]]);
    } finally {
      await store.close();
    }
    expect((await replayLog({ dir, service })).divergences).toEqual([]);
  });
});
