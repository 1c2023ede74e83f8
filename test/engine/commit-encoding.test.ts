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
import type { CommitPayload, EventInput, StreamWrite } from '../../engine/records.js';
import { decodePayload, encodePayload } from '../../wal/format.js';
import { seededRandom, testSeed, type SeededRandom } from '../helpers/random.js';

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

function base(overrides: Partial<CommitPayload> = {}): CommitPayload {
  return {
    clientId: 'client-1',
    requestId: 7,
    command: 'append',
    args: { stream: 'orders-1', events: [{ type: 'Placed', data: { total: 12.5 } }] },
    events: [],
    firstPosition: 0,
    now: [],
    random: [],
    readSet: [],
    calls: 0,
    digest: '5e52e460e966ab39306e5ec96a3941fd',
    ...overrides,
  };
}

/** Edge values of every number encoding msgpackr chooses between. */
const edgeNumbers = [
  0, -0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffff_ffff, 0x1_0000_0000, Number.MAX_SAFE_INTEGER,
  -1, -0x20, -0x21, -0x80, -0x81, -0x8000, -0x8001, -0x8000_0000, -0x8000_0001, Number.MIN_SAFE_INTEGER,
  0.5, -2.25, 1e300, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1796301072182,
];

/** Strings around every header size, in one, two, three and four UTF-8 bytes per character, and broken UTF-16. */
function edgeStrings(): string[] {
  const strings = ['', 'a', '\u00e9', '\u20ac', '\u{1f600}', '\ud800', 'x\udc00y', '\ud83d'];
  for (const length of [31, 32, 63, 64, 65, 255, 256, 65535, 65536]) {
    strings.push('x'.repeat(length), '\u00e9'.repeat(length), `${'x'.repeat(length - 1)}\u20ac`);
  }
  // 11 characters but 33 bytes: the header guessed from the length is too small.
  strings.push('\u20ac'.repeat(11), '\u20ac'.repeat(86), '\u20ac'.repeat(21846));
  return strings;
}

function randomString(random: SeededRandom): string {
  const alphabet = ['a', 'Z', '0', '-', '\u00e9', '\u4e2d', '\u{1f600}', '\ud800', '\u0000', ' '];
  const length = random.pick([0, 1, 5, 31, 32, 40, 63, 64, 70, 255, 256, 300]);
  let text = '';
  for (let index = 0; index < length; index++) text += random.pick(alphabet);
  return text;
}

function randomValue(random: SeededRandom, depth: number): unknown {
  switch (random.integer(0, depth > 2 ? 3 : 6)) {
    case 0:
      return random.pick(edgeNumbers);
    case 1:
      return randomString(random);
    case 2:
      return random.pick([null, true, false]);
    case 3:
      return random.integer(-1000, 1000);
    case 4:
      return Array.from({ length: random.integer(0, 4) }, () => randomValue(random, depth + 1));
    case 5:
      return Buffer.from([1, 2, 3]);
    default: {
      const value: Record<string, unknown> = {};
      for (let index = random.integer(0, 5); index > 0; index--) value[randomString(random)] = randomValue(random, depth + 1);
      return value;
    }
  }
}

function randomEvent(random: SeededRandom): EventInput {
  const event: Record<string, unknown> = {};
  if (random.float() < 0.7) event['id'] = '6a48e987-17cb-4235-b5d2-7f7834eac20b';
  event['type'] = randomString(random) || 'T';
  if (random.float() < 0.8) event['data'] = randomValue(random, 0);
  if (random.float() < 0.3) event['metadata'] = { correlationId: randomString(random) };
  if (random.float() < 0.1) event['extra'] = randomValue(random, 0);
  return event as unknown as EventInput;
}

function randomWrite(random: SeededRandom): StreamWrite {
  const write: StreamWrite = { stream: randomString(random) || 's', firstVersion: random.integer(0, 70000), events: [] };
  for (let index = random.integer(1, 18); index > 0; index--) write.events.push(randomEvent(random));
  if (random.float() < 0.3) write.expectedVersion = random.pick([-2, -1, 0, 5, 200, 70000]);
  return write;
}

function randomCommit(random: SeededRandom): CommitPayload {
  const payload = base({
    clientId: randomString(random),
    requestId: random.pick(edgeNumbers.filter((number) => Number.isSafeInteger(number) && number >= 0)),
    command: randomString(random) || 'c',
    args: randomValue(random, 0),
    firstPosition: random.integer(0, 2 ** 40),
    now: Array.from({ length: random.integer(0, 3) }, () => random.pick(edgeNumbers)),
    random: Array.from({ length: random.integer(0, 20) }, () => random.float()),
    readSet: Array.from({ length: random.integer(0, 3) }, () => [randomString(random), random.integer(-1, 70000)] as [string, number]),
    calls: random.integer(0, 3),
  });
  if (random.float() < 0.3) payload.callLsns = Array.from({ length: payload.calls }, () => random.integer(1, 2 ** 33));
  if (random.float() < 0.2) payload.checks = [[randomString(random), random.pick([-2, -1, 3])]];
  if (random.float() < 0.2) {
    payload.error = { code: 'HANDLER_FAILED', message: randomString(random), retryable: false, details: {} } as unknown as NonNullable<CommitPayload['error']>;
    return payload;
  }
  payload.events = Array.from({ length: random.integer(0, 3) }, () => randomWrite(random));
  if (payload.events.length > 0) payload.createdAtMs = 1_796_301_072_182 + random.integer(0, 1000);
  payload.reply = randomValue(random, 0);
  return payload;
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
