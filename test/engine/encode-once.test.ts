/**
 * Proves that packing each value once changes no byte (engine/values.ts `packedOrSelf`,
 * `withLeadingKey`; wal/format.ts `Packed`): the commit path reuses the bytes args, events and
 * replies were checked as, and what it writes must be exactly what packing the decoded values
 * gives, or digests recorded by older versions would no longer match a replay.
 * - `Packed` bytes inside a value pack exactly as the value they stand for;
 * - an event id spliced in front of a packed event gives the bytes of the object with the id first;
 * - every commit record a live store writes (events with and without ids, metadata, expected
 *   versions, several streams, a service's reply, a failed commit) is byte for byte the encoding
 *   of its own decoded payload, and a replay of the log finds every digest as recorded.
 */
import { describe, expect, it } from 'vitest';
import { Packed, decodePayload, encodePayload } from '../../wal/format.js';
import { frameHeaderBytes } from '../../wal/format.js';
import { packedOrSelf, snapshotChecked, withLeadingKey } from '../../engine/values.js';
import { replicationHooksOf } from '../../engine/replication-hooks.js';
import { recordTypes } from '../../engine/records.js';
import { defineService, replayLog } from '../../engine/index.js';
import { openQuietStore } from '../helpers/store.js';
import { useTempDir } from '../helpers/temp.js';

const newDir = useTempDir('txlog-encode-once-');

const samples: unknown[] = [
  { type: 'Deposited', data: { amount: 12, note: 'x'.repeat(300) } },
  { type: 'T', data: null, metadata: { correlationId: 'c-1', causationId: 'c-0' } },
  { list: [1, -1, 2.5, 2 ** 40, 'é', true, null, new Uint8Array([1, 2, 3])], when: new Date(1_700_000_000_000) },
  { nested: { deeper: { deepest: ['a', { b: 'c' }] } } },
];

describe('packing once', () => {
  it('writes Packed bytes exactly as the value they stand for', () => {
    for (const sample of samples) {
      const snapshot = snapshotChecked(sample, 1 << 20, 'a sample').value;
      const reused = packedOrSelf(snapshot);
      expect(reused).toBeInstanceOf(Packed);
      expect(encodePayload({ before: 1, value: reused, after: [reused] })).toEqual(encodePayload({ before: 1, value: sample, after: [sample] }));
    }
    // Values that are not snapshots pack as themselves.
    expect(packedOrSelf({ a: 1 })).toEqual({ a: 1 });
    expect(packedOrSelf('text')).toBe('text');
  });

  it('splices a leading key in front of a packed map', () => {
    const event = snapshotChecked({ type: 'T', data: { n: 1 }, metadata: { m: 'x' } }, 1 << 20, 'an event').value;
    const withId = withLeadingKey('id', '0d5c4f3e-0b9c-4e8a-9f3b-2a1c0e9d8b7a', event);
    expect(Object.keys(withId)).toEqual(['id', 'type', 'data', 'metadata']);
    const reused = packedOrSelf(withId);
    expect(reused).toBeInstanceOf(Packed);
    expect((reused as Packed).bytes).toEqual(encodePayload({ id: '0d5c4f3e-0b9c-4e8a-9f3b-2a1c0e9d8b7a', type: 'T', data: { n: 1 }, metadata: { m: 'x' } }));
    // A map of 20 entries (whatever header msgpackr chose for it) splices as well.
    const wide = snapshotChecked(Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])), 1 << 20, 'a wide map').value;
    const wideWithId = withLeadingKey('id', 'x', wide);
    expect((packedOrSelf(wideWithId) as Packed).bytes).toEqual(encodePayload({ id: 'x', ...wide }));
    // A snapshot that already has the key is not spliced (the spread keeps its own value).
    const hasId = snapshotChecked({ id: 'mine', type: 'T' }, 1 << 20, 'an event').value;
    expect(packedOrSelf(withLeadingKey('id', 'other', hasId))).toEqual({ id: 'mine', type: 'T' });
  });

  it('writes every commit record as the encoding of its decoded payload, and a replay finds every digest', async () => {
    const dir = newDir();
    const service = defineService({
      name: 'encode-once',
      commands: {
        transfer(ctx, args: { from: string; to: string; amount: number }) {
          ctx.append(args.from, [{ type: 'Debited', data: { amount: args.amount } }], { expectedVersion: 'any' });
          ctx.append(args.to, [{ type: 'Credited', data: { amount: args.amount }, metadata: { correlationId: 'k' } }]);
          ctx.append(args.from, [{ type: 'Noted', data: { at: ctx.now() } }]);
          return { ok: true, moved: args.amount, tags: ['a', 'b'] };
        },
        refuse() {
          throw new Error('no');
        },
      },
    });
    const { store } = await openQuietStore(dir, { service });
    await store.execute('transfer', { from: 'a', to: 'b', amount: 5 }, { clientId: 'c', requestId: 1 });
    await store.append('s', [{ type: 'A', data: { x: 1 } }, { id: '0D5C4F3E-0B9C-4E8A-9F3B-2A1C0E9D8B7A', type: 'B', data: 'y', metadata: { m: 1 } }]);
    await store.append('s', [{ type: 'C' }], { expectedVersion: 1 });
    await store.append('t', [{ type: 'D', data: [1, 2] }], { expectedVersion: 'no_stream', checks: [{ stream: 's', expectedVersion: 2 }] });
    await expect(store.append('s', [{ type: 'E' }], { expectedVersion: 0 })).rejects.toMatchObject({ code: 'WRONG_EXPECTED_VERSION' });
    await expect(store.execute('refuse', {}, { clientId: 'c', requestId: 2 })).rejects.toMatchObject({ code: 'HANDLER_FAILED' });
    let commits = 0;
    for (const record of replicationHooksOf(store).readRecords(1)) {
      if (record.type !== recordTypes.commit) continue;
      commits += 1;
      const bytes = record.frame.subarray(frameHeaderBytes);
      expect(encodePayload(decodePayload(bytes))).toEqual(Buffer.from(bytes));
    }
    expect(commits).toBe(6);
    await store.close();
    const report = await replayLog({ dir, service });
    expect(report.commits).toBe(6);
    expect(report.divergences).toEqual([]);
  });
});
