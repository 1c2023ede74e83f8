/**
 * Proves that a commit record read from its bytes (`readCommitForApply`, recovery's way) gives
 * the apply exactly what the decoded record gives it (`commitForApply`, every other node's way):
 * the same fields and the same bytes for each event and for the outcome, so the state a
 * recovery builds is the state the live apply built. Over random records of every shape (the
 * generator of test/engine/commit-encoding.test.ts), records packed by msgpackr with keys in
 * another order, extra fields and undefined fields, and the built-in append's record. Also that
 * `MsgpackCursor` skips every msgpack value whole and reads numbers as msgpackr does, and that
 * bytes which are not a commit record are refused rather than misread. Randomised: prints its
 * seed, `TXLOG_SEED` replays it.
 */
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { commitForApply, readCommitForApply } from '../../engine/commit-for-apply.js';
import { encodeCommit, encodeCommitForApply } from '../../engine/commit-encoding.js';
import type { CommitPayload } from '../../engine/records.js';
import { decodeStoredEvent, encodeStoredEvent } from '../../engine/stored-event.js';
import { decodePayload, encodePayload } from '../../wal/format.js';
import { MalformedMsgpack, MsgpackCursor } from '../../wal/msgpack-cursor.js';
import { base, edgeNumbers, randomCommit, randomValue } from '../helpers/random-commits.js';
import { seededRandom, testSeed } from '../helpers/random.js';

const msgpackr = new Packr({ useRecords: false, moreTypes: false });
/** Maps with the shortest header (fixmap, map 16, map 32), which the WAL's writer does not use. */
const variableMaps = new Packr({ useRecords: false, variableMapSize: true });

/** What the apply is given, every event and the outcome as bytes (packed when given as values), as plain arrays that `toEqual` compares. */
function comparable(commit: ReturnType<typeof commitForApply>): unknown {
  const bytesOf = (packed: Uint8Array | undefined, value: unknown): number[] => [...(packed ?? encodePayload(value))];
  return {
    ...commit,
    outcomeValue: undefined,
    writes: commit.writes.map((write) => ({
      stream: write.stream,
      firstVersion: write.firstVersion,
      events: write.events.map((event) => (event instanceof Uint8Array ? bytesOf(event, undefined) : bytesOf(undefined, event))),
    })),
    outcome: bytesOf(commit.outcome, commit.outcomeValue),
  };
}

describe('readCommitForApply', () => {
  it('reads the built-in append and a failure as the decoded record gives them', () => {
    const appended = base({
      events: [{ stream: 'orders-1', firstVersion: 3, events: [{ id: '6a48e987-17cb-4235-b5d2-7f7834eac20b', type: 'Placed', data: { total: 12.5 } }] }],
      firstPosition: 1000,
      createdAtMs: 1_796_301_072_182,
      reply: { stream: 'orders-1', version: 3, position: 1000 },
    });
    const read = readCommitForApply(encodeCommit(appended, undefined));
    expect(comparable(read)).toEqual(comparable(commitForApply(appended)));
    expect(read).toMatchObject({ clientId: 'client-1', requestId: 7, calls: 0, firstPosition: 1000, createdAtMs: 1_796_301_072_182, failed: false });
    expect(decodePayload(read.outcome!)).toEqual({ stream: 'orders-1', version: 3, position: 1000 });
    // The event stored from the record's bytes reads back as the event.
    const stored = encodeStoredEvent('orders-1', 3, read.createdAtMs, read.writes[0]!.events[0]!);
    expect(stored.equals(encodeStoredEvent('orders-1', 3, read.createdAtMs, appended.events[0]!.events[0]!))).toBe(true);
    expect(decodeStoredEvent(1000, stored)).toMatchObject({ stream: 'orders-1', version: 3, position: 1000, type: 'Placed', data: { total: 12.5 } });
    expect(stored.equals(encodePayload(['orders-1', 3, 1_796_301_072_182, appended.events[0]!.events[0]]))).toBe(true);

    const failed = base({ error: { code: 'WRONG_EXPECTED_VERSION', message: 'no', retryable: false, details: {} } as never, calls: 2 });
    const readFailed = readCommitForApply(encodeCommit(failed, undefined));
    expect(comparable(readFailed)).toEqual(comparable(commitForApply(failed)));
    expect(readFailed.failed).toBe(true);
    expect(decodePayload(readFailed.outcome!)).toMatchObject({ code: 'WRONG_EXPECTED_VERSION' });
  });

  it('gives what commitForApply gives for random records, in any key order, with extra and undefined fields', () => {
    const seed = testSeed('commit-for-apply');
    const random = seededRandom(seed);
    for (let round = 0; round < 2000; round++) {
      const payload = randomCommit(random);
      if (round % 3 === 1) (payload as unknown as Record<string, unknown>)['extra'] = randomValue(random, 0);
      if (round % 5 === 2) payload.reply = undefined;
      const bytes = round % 2 === 0 ? encodeCommit(payload, undefined) : msgpackr.pack(reversedKeys(payload));
      // What a node applies is the decoded record, as msgpackr gives it back.
      const expected = comparable(commitForApply(decodePayload(bytes) as CommitPayload));
      const read = comparable(readCommitForApply(bytes));
      if (JSON.stringify(read) !== JSON.stringify(expected)) throw new Error(`seed ${seed}, round ${round}: read ${JSON.stringify(read).slice(0, 300)}, decoded ${JSON.stringify(expected).slice(0, 300)}`);
    }
  });

  it('refuses bytes that are not a commit record', () => {
    expect(() => readCommitForApply(encodePayload([1, 2]))).toThrow(/not a map/);
    expect(() => readCommitForApply(encodePayload({ clientId: 5 }))).toThrow(/clientId has an unexpected type/);
    expect(() => readCommitForApply(encodePayload({ events: { stream: 's' } }))).toThrow(/events are not an array/);
    const whole = encodeCommit(base({ reply: { a: 'b'.repeat(40) } }), undefined);
    for (const cut of [1, 5, whole.length - 20, whole.length - 1]) {
      expect(() => readCommitForApply(whole.subarray(0, cut))).toThrow(MalformedMsgpack);
    }
    expect(() => readCommitForApply(Buffer.concat([whole, Buffer.of(0xc0)]))).toThrow(/bytes after its map/);
    expect(() => readCommitForApply(Buffer.of(0x81, 0xa1, 0x78, 0xc1))).toThrow(MalformedMsgpack);
  });
});

describe('encodeCommitForApply', () => {
  it("gives the record's bytes and, as views of them, what commitForApply packs", () => {
    const seed = testSeed('encode-commit-for-apply');
    const random = seededRandom(seed);
    for (let round = 0; round < 2000; round++) {
      const payload = randomCommit(random);
      if (round % 5 === 2) payload.reply = undefined;
      const packedArgs = round % 2 === 0 ? msgpackr.pack(payload.args) : undefined;
      const { packed, forApply } = encodeCommitForApply(payload, packedArgs);
      if (!packed.equals(encodeCommit(payload, packedArgs))) throw new Error(`seed ${seed}, round ${round}: the record's bytes differ`);
      if (forApply === undefined) throw new Error(`seed ${seed}, round ${round}: no view of the record`);
      const expected = JSON.stringify(comparable(commitForApply(payload)));
      if (JSON.stringify(comparable(forApply)) !== expected) throw new Error(`seed ${seed}, round ${round}: ${JSON.stringify(comparable(forApply)).slice(0, 300)} against ${expected.slice(0, 300)}`);
    }
  });

  it('gives no view of a record whose events were not written as events', () => {
    const odd = base({ events: { not: 'an array' } as never });
    expect(encodeCommitForApply(odd, undefined).forApply).toBeUndefined();
    const oddWrite = base({ events: [{ stream: 's', firstVersion: 0, events: 'none' as never }] });
    expect(encodeCommitForApply(oddWrite, undefined).forApply).toBeUndefined();
    expect(encodeCommitForApply(odd, undefined).packed.equals(msgpackr.pack(odd))).toBe(true);
  });
});

describe('MsgpackCursor', () => {
  it('skips every kind of value whole and reads numbers as msgpackr does', () => {
    const random = seededRandom(testSeed('msgpack-cursor'));
    const values: unknown[] = [...edgeNumbers, 2 ** 64 - 2 ** 11, -(2 ** 63), new Date(5), new Date(-5), new Date(2 ** 40 * 1000 + 1), undefined, new Uint8Array(300), new Uint8Array(70000), 'é'.repeat(40000), Array.from({ length: 70000 }, (_, index) => index % 3)];
    for (let round = 0; round < 500; round++) values.push(randomValue(random, 0));
    const bigMap: Record<string, number> = {};
    for (let index = 0; index < 70000; index++) bigMap[`k${index}`] = index;
    values.push(bigMap, { a: 1.5 }, new Float32Array(1));
    for (const value of values) {
      const packed = Buffer.concat([variableMaps.pack(value), Buffer.of(0xc3)]);
      const cursor = new MsgpackCursor(packed);
      expect(cursor.slice().length).toBe(packed.length - 1);
      expect(cursor.nil()).toBe(false);
      expect(cursor.atEnd).toBe(false);
      cursor.skip();
      expect(cursor.atEnd).toBe(true);
      if (typeof value === 'number') {
        const number = new MsgpackCursor(packed).number();
        expect(Object.is(number, variableMaps.unpack(packed.subarray(0, packed.length - 1)))).toBe(true);
      }
    }
    // float32 (msgpackr writes none with these options): read all the same.
    const float32 = Buffer.of(0xca, 0x3f, 0xc0, 0x00, 0x00);
    expect(new MsgpackCursor(float32).number()).toBe(1.5);
    expect(new MsgpackCursor(float32).string()).toBeUndefined();
  });
});

/** The record with its keys, and its stream writes' keys, in reverse order. */
function reversedKeys(payload: CommitPayload): Record<string, unknown> {
  const reversed: Record<string, unknown> = {};
  for (const key of Object.keys(payload).reverse()) reversed[key] = (payload as unknown as Record<string, unknown>)[key];
  if (Array.isArray(payload.events)) {
    reversed['events'] = payload.events.map((write) => Object.fromEntries(Object.entries(write).reverse()));
  }
  return reversed;
}
