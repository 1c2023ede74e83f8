/**
 * Proves that `encodeCommit` and `encodePayload` (both written by `wal/plain-msgpack.ts`) give
 * exactly the bytes msgpackr gives a commit record, so the WAL's bytes do not depend on which
 * packed it: for every shape a record takes (appends, failures, checks, calls, a too-large
 * record's replacement), strings of every header size and of any Unicode (lone surrogates
 * included), numbers at every encoding's edges, fields of unexpected types, extra fields, keys in
 * any order, values msgpackr alone writes (Buffers, Dates, undefined, deep nesting), and args
 * given as already-packed bytes or not; what msgpackr refuses is refused too. Randomised: prints
 * its seed, `TXLOG_SEED` replays it.
 */
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { encodeCommit } from '../../engine/commit-encoding.js';
import type { CommitPayload } from '../../engine/records.js';
import { decodePayload, encodePayload } from '../../wal/format.js';
import { base, edgeNumbers, edgeStrings, randomCommit } from '../helpers/random-commits.js';
import { seededRandom, testSeed } from '../helpers/random.js';

/** msgpackr itself, with the WAL's options (`wal/format.ts`): the reference for the bytes. */
const msgpackr = new Packr({
  useRecords: false,
  moreTypes: false,
  writeFunction: () => {
    throw new TypeError('a function cannot be encoded as msgpack');
  },
});

function expectSameBytes(payload: CommitPayload): void {
  const expected = msgpackr.pack(payload);
  expect(encodePayload(payload).equals(expected)).toBe(true);
  expect(encodeCommit(payload, undefined).equals(expected)).toBe(true);
  expect(encodeCommit(payload, msgpackr.pack(payload.args)).equals(expected)).toBe(true);
}

describe('encodeCommit', () => {
  it('writes the bytes msgpackr writes for the built-in append, failures, checks and calls', () => {
    const appended = base({
      events: [{ stream: 'orders-1', firstVersion: 3, events: [{ id: '6a48e987-17cb-4235-b5d2-7f7834eac20b', type: 'Placed', data: { total: 12.5 } }] }],
      firstPosition: 1000,
      createdAtMs: 1_796_301_072_182,
      reply: { stream: 'orders-1', version: 3, position: 1000 },
    });
    expectSameBytes(appended);
    expectSameBytes(base({ error: { code: 'WRONG_EXPECTED_VERSION', message: 'no', retryable: false, details: { stream: 's' } } as never }));
    expectSameBytes(base({ checks: [['a', -1], ['b', -2]], calls: 2, callLsns: [5, 9], now: [1796301072182], random: [0.25, 0.75] }));
    expectSameBytes(base({ readSet: [['a', 0], ['b', 12]], reply: null }));
    // A too-large record's replacement: no events, no reply, an error.
    const replaced = base({ error: { code: 'TOO_LARGE', message: 'big', retryable: false, details: {} } as never });
    expectSameBytes(replaced);
  });

  it('writes every string and number edge as msgpackr does', () => {
    for (const text of edgeStrings()) {
      expectSameBytes(base({ clientId: text, command: text, events: [{ stream: text, firstVersion: 0, events: [{ type: text, id: text }] }] }));
    }
    for (const number of edgeNumbers) {
      expectSameBytes(base({ requestId: number, firstPosition: number, calls: number, createdAtMs: number, now: [number], readSet: [['s', number]] }));
    }
  });

  it('writes fields of unexpected types, extra fields and keys in any order as msgpackr does', () => {
    const odd = { ...base(), clientId: 5, requestId: 'x', now: 'later', readSet: [['a', 1, 2], 'b'], events: { not: 'an array' }, extra: [1, { a: 2 }] };
    expectSameBytes(odd as unknown as CommitPayload);
    const reordered = { digest: 'd', events: [{ events: [{ data: 1, type: 't' }], firstVersion: 0, stream: 's', more: true }], clientId: 'c' };
    expectSameBytes(reordered as unknown as CommitPayload);
    expectSameBytes(base({ events: [{ stream: 's', firstVersion: 0, events: [Object.assign(Object.create(null), { type: 't' })] }] }));
    expectSameBytes(base({ events: [new Map([['stream', 's']]) as never], reply: undefined }));
    // Values of the handler's that are not JSON-like, or nested deeper than this encoder goes.
    let deep: unknown = { leaf: 1 };
    for (let level = 0; level < 40; level++) deep = level % 2 === 0 ? [deep, level] : { level, deep };
    const odd2 = { sparse: [1, , 3], undefinedValue: undefined, date: new Date(0), bytes: new Uint8Array([1, 2]), deep };
    expectSameBytes(base({ reply: odd2, args: odd2 }));
    expectSameBytes(base({ reply: { hasOwnProperty: 1, constructor: 'x', '1': 'integer key first', b: -0 } }));
    expectSameBytes(base({ reply: Object.assign(Object.create({ inherited: 1 }), { own: 2 }) }));
    expectSameBytes(base({ reply: { hasOwnProperty: 1, toJSON: 2, nested: { k: 'v' } } }));
    // What msgpackr refuses, this refuses too.
    expect(() => msgpackr.pack(base({ reply: { f: () => 1 } }))).toThrow(TypeError);
    expect(() => encodeCommit(base({ reply: { f: () => 1 } }), undefined)).toThrow(TypeError);
  });

  it('writes what msgpackr writes for random records', () => {
    const seed = testSeed('commit-encoding');
    const random = seededRandom(seed);
    for (let round = 0; round < 2000; round++) {
      const payload = randomCommit(random);
      const expected = msgpackr.pack(payload);
      const packedArgs = round % 2 === 0 ? msgpackr.pack(payload.args) : undefined;
      const packed = encodeCommit(payload, packedArgs);
      if (!packed.equals(expected)) throw new Error(`seed ${seed}, round ${round}: the bytes differ from msgpackr's`);
      if (!encodePayload(payload).equals(expected)) throw new Error(`seed ${seed}, round ${round}: encodePayload's bytes differ from msgpackr's`);
      expect(decodePayload(packed)).toEqual(decodePayload(expected));
    }
  });
});
