/**
 * Proves, with the stream index's entries waiting in memory and written to its table (layout 4),
 * that the state finds stream heads without a streams table: after a reopen (no head cached
 * in memory) every stream's head is the last key of its stream index, also for a long name whose
 * index keys interleave with another stream's (ordered-binary writes names of 64 characters or
 * more raw, so `name + U+0000…` sorts among `name`'s keys); appends at the expected version go
 * on from there; and `streamsWithPrefix` skips through the index a stream at a time, in name
 * order, up to its maximum.
 */
import { describe, expect, it } from 'vitest';
import { State } from '../../engine/state.js';
import { flushEntriesDefault } from '../../engine/stream-index.js';
import { openQuietStore, stateDirOf } from '../helpers/store.js';
import { useTempDir } from '../helpers/temp.js';

const newDir = useTempDir('txlog-state-');

const long = 'a'.repeat(70);
/** Its index keys sort between `[long, 5]` and `[long, MAX_SAFE_INTEGER]`. */
const longExtended = `${long}\u0000\u0014\u0020`;
const heads: Array<[string, number]> = [
  ['a', 2],
  [long, 5],
  [longExtended, 2],
  ['a\u0001', 0],
  ['ab', 3],
  ['b', 1],
];

/** Events enough to make the stream index write what waits to its table (`stream-index.ts`), on a stream of its own. */
async function flushTheIndex(store: Awaited<ReturnType<typeof openQuietStore>>['store']): Promise<void> {
  for (let round = 0; round * 1000 < flushEntriesDefault; round++) {
    await store.append(filler, Array.from({ length: 1000 }, () => ({ type: 'Filler' })));
  }
  await store.readStream(filler, { maxCount: 0 }); // a read applies what was released
  expect(store.resourceUsage()['streamIndexWaiting']!.size).toBeLessThan(1000);
}

const filler = 'zz-filler';

describe.each([
  ['waiting in memory', false],
  ['in the table', true],
])('stream heads from the stream index, its entries %s', (_, flushed) => {
  it('reads every head after a reopen, appends on from it, and lists streams by prefix', async () => {
    const dir = newDir();
    let { store } = await openQuietStore(dir);
    for (const [stream, head] of heads) {
      for (let version = 0; version <= head; version++) await store.append(stream, [{ type: 'E', data: { version } }]);
    }
    if (flushed) await flushTheIndex(store);
    await store.close();

    ({ store } = await openQuietStore(dir));
    try {
      for (const [stream, head] of heads) expect((await store.readStream(stream)).version, stream).toBe(head);
      expect((await store.readStream('never')).version).toBe(-1);
      const byName = [...heads].sort(([left], [right]) => Buffer.compare(Buffer.from(left), Buffer.from(right)));
      expect((store.dumpState().streams as Array<[string, number]>).filter(([stream]) => stream !== filler)).toEqual(byName);
      for (const [stream, head] of heads) {
        expect(await store.append(stream, [{ type: 'Next' }], { expectedVersion: head })).toMatchObject({ stream, version: head + 1 });
      }
      for (const [stream, head] of heads) {
        const events = (await store.readStream(stream)).events;
        expect(events.map((event) => [event.stream, event.version]), stream).toEqual(Array.from({ length: head + 2 }, (_, version) => [stream, version]));
      }
    } finally {
      await store.close();
    }

    const state = State.open(stateDirOf(dir), 1024 ** 3);
    try {
      expect(state.streamsWithPrefix('a', 100).map(([stream]) => stream)).toEqual(['a', 'a\u0001', long, longExtended, 'ab']);
      expect(state.streamsWithPrefix('ab', 100)).toEqual([['ab', 4]]);
      expect(state.streamsWithPrefix('a', 2)).toEqual([['a', 3], ['a\u0001', 1]]);
      expect(state.streamsWithPrefix('c', 100)).toEqual([]);
    } finally {
      await state.close();
    }
  });
  it('reads only a stream\'s own events when another name\'s index keys sort inside its versions', async () => {
    // `[long, v]` is long's bytes, 0x00, then v; `long + U+0000 U+0014` writes 0x00 0x14 right
    // after long's bytes, so its keys fall between `[long, 0]` and `[long, 5]` (0x14 0x01 0x40).
    const inside = `${long}\u0000\u0014`;
    const { store } = await openQuietStore(newDir());
    try {
      for (let version = 0; version < 10; version++) await store.append(long, [{ type: 'Long', data: { version } }]);
      await store.append(inside, [{ type: 'Inside' }]);
      if (flushed) await flushTheIndex(store);
      const read = await store.readStream(long);
      expect(read.version).toBe(9);
      expect(read.events.map((event) => [event.stream, event.version])).toEqual(Array.from({ length: 10 }, (_, version) => [long, version]));
      expect((await store.readStream(long, { fromVersion: 3, maxCount: 2 })).events.map((event) => event.version)).toEqual([3, 4]);
      expect((await store.readStream(inside)).events.map((event) => [event.stream, event.type])).toEqual([[inside, 'Inside']]);
    } finally {
      await store.close();
    }
  });
});
