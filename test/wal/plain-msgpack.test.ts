/**
 * Proves that `packPlain` (what `encodePayload` and the protocol's `encodeMessage` pack with)
 * gives exactly msgpackr's bytes for any value: JSON-like values it writes itself (strings of
 * every header size and any Unicode, numbers at every encoding's edge, nesting), Buffers and
 * Uint8Arrays of every bin size, and values it leaves to msgpackr (undefined, Dates, Maps,
 * objects of other prototypes, typed arrays, nesting deeper than it goes); that bytes handed
 * out stay as they were while later packs fill and leave slabs; that the reserved start is left
 * to the caller; that what msgpackr refuses is refused; and that a pack started
 * while one is under way (a toJSON that packs) gives the right bytes to both. Randomised: prints
 * its seed, `TXLOG_SEED` replays it.
 */
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { encodePayload } from '../../wal/format.js';
import { packPlain } from '../../wal/plain-msgpack.js';
import { seededRandom, testSeed, type SeededRandom } from '../helpers/random.js';

const msgpackr = new Packr({ useRecords: false, moreTypes: false });

function expectSameBytes(value: unknown): void {
  const expected = msgpackr.pack(value);
  const packed = packPlain(value, msgpackr);
  if (!packed.equals(expected)) throw new Error(`bytes differ for ${String(value)}: ${packed.toString('hex')} vs ${expected.toString('hex')}`);
}

const numbers = [
  0, -0, 1, 0x1f, 0x20, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffff_ffff, 0x1_0000_0000, Number.MAX_SAFE_INTEGER,
  -1, -0x20, -0x21, -0x80, -0x81, -0x8000, -0x8001, -0x8000_0000, -0x8000_0001, 0.1, -1.5, 1e-300, Number.NaN, Infinity, -Infinity,
];

function randomString(random: SeededRandom): string {
  const alphabet = ['a', '~', '\u007f', '\u0080', '\u07ff', '\u0800', '\uffff', '\u{10000}', '\ud800', '\udfff', '\u0000'];
  const length = random.pick([0, 1, 20, 31, 32, 33, 63, 64, 65, 255, 256, 257, 1000]);
  let text = '';
  for (let index = 0; index < length; index++) text += random.pick(alphabet);
  return text;
}

function randomValue(random: SeededRandom, depth: number): unknown {
  const leaf = depth > 3;
  switch (random.integer(0, leaf ? 5 : 11)) {
    case 0:
      return random.pick(numbers);
    case 1:
      return randomString(random);
    case 2:
      return random.pick([null, true, false, undefined]);
    case 3:
      return random.integer(-70000, 70000);
    case 4:
      return random.float() * 1e6;
    case 5:
      return random.bytes(random.pick([0, 3, 255, 256, 70000]));
    case 6:
      return new Uint8Array(random.bytes(random.pick([1, 300])));
    case 7:
      return random.pick([new Date(random.integer(0, 2 ** 40)), new Map([['k', 1]]), new Set([1]), new Float64Array([1.5])]);
    case 8:
      return Object.assign(Object.create(null), { key: randomValue(random, depth + 1) });
    case 9:
    case 10:
      return Array.from({ length: random.pick([0, 1, 15, 16, 17]) }, () => randomValue(random, depth + 1));
    default: {
      const value: Record<string, unknown> = {};
      for (let index = random.pick([0, 1, 3, 16, 17]); index > 0; index--) value[randomString(random)] = randomValue(random, depth + 1);
      return value;
    }
  }
}

describe('packPlain', () => {
  it('writes every string, number and bin edge as msgpackr does', () => {
    for (const number of numbers) expectSameBytes(number);
    for (const length of [0, 31, 32, 255, 256, 65535, 65536]) {
      expectSameBytes('a'.repeat(length));
      expectSameBytes('\u00e9'.repeat(length));
      expectSameBytes('\u20ac'.repeat(length));
      expectSameBytes(Buffer.alloc(length, 7));
    }
    expectSameBytes('\u20ac'.repeat(11));
    expectSameBytes('\u20ac'.repeat(21846));
    expectSameBytes(['\ud800', 'x\udc00', '\ud83d\ude00', '\u0000']);
    expectSameBytes(Array.from({ length: 70000 }, (_, index) => index));
  });

  it('writes random values as msgpackr does', () => {
    const seed = testSeed('plain-msgpack');
    const random = seededRandom(seed);
    for (let round = 0; round < 3000; round++) {
      const value = randomValue(random, 0);
      const expected = msgpackr.pack(value);
      if (!packPlain(value, msgpackr).equals(expected)) throw new Error(`seed ${seed}, round ${round}: the bytes differ from msgpackr's`);
    }
  });

  it('leaves values nested deeper than it goes, and objects of other kinds, to msgpackr', () => {
    let deep: unknown = 'leaf';
    for (let level = 0; level < 100; level++) deep = level % 2 === 0 ? [deep] : { deep };
    expectSameBytes(deep);
    expectSameBytes({ inherited: Object.assign(Object.create({ parent: 1 }), { own: 2 }), ownConstructor: { constructor: 'x', k: 1 } });
    class Point {
      constructor(readonly x: number) {}
    }
    expectSameBytes({ point: new Point(3), sparse: [1, , 3] });
    // Own properties that change how msgpackr sees an object or an array.
    expectSameBytes({ a: { constructor: Object, k: 1 }.k, b: { hasOwnProperty: 1, k: 2 }, c: Object.assign([1, 2], { constructor: 'x' }) });
    expectSameBytes({ filtered: { hasOwnProperty: (key: string) => key === 'kept', kept: 1, dropped: 2 } });
    expectSameBytes({ arrayLike: Object.create(Array.prototype), bytes: Object.assign(Buffer.from([1]), { constructor: 'x' }) });
  });

  it('hands out bytes that later packs never overwrite, across slabs and values larger than one', () => {
    const values: unknown[] = [];
    for (let index = 0; index < 3000; index++) {
      values.push(index % 500 === 7 ? { big: 'y'.repeat(100_000 + index) } : { index, text: 'z'.repeat(index % 300), list: [index, -index] });
    }
    const packed = values.map((value) => packPlain(value, msgpackr));
    values.forEach((value, index) => {
      if (!packed[index]!.equals(msgpackr.pack(value))) throw new Error(`value ${index} was overwritten`);
    });
  });

  it('writes only the own keys of an object, as msgpackr does, when Object.prototype has an enumerable one', () => {
    Object.defineProperty(Object.prototype, 'polluted', { value: 1, enumerable: true, configurable: true });
    try {
      expectSameBytes({ a: 1, nested: { b: [2, { c: 3 }] } });
    } finally {
      delete (Object.prototype as Record<string, unknown>)['polluted'];
    }
  });

  it('leaves the reserved start to the caller', () => {
    const packed = packPlain({ a: 1 }, msgpackr, 4);
    expect(packed.subarray(4).equals(msgpackr.pack({ a: 1 }))).toBe(true);
  });

  it('refuses what msgpackr with the WAL options refuses, and stays usable after', () => {
    expect(() => encodePayload({ f: () => 1 })).toThrow(TypeError);
    const wide = Object.fromEntries(Array.from({ length: 0x10000 }, (_, index) => [`k${index}`, index]));
    expect(() => msgpackr.pack(wide)).toThrow(/16-bit map size/);
    expect(() => packPlain(wide, msgpackr)).toThrow(/16-bit map size/);
    expectSameBytes(Object.fromEntries(Array.from({ length: 0xffff }, (_, index) => [`k${index}`, index])));
    expect(encodePayload({ a: 'b' }).equals(msgpackr.pack({ a: 'b' }))).toBe(true);
  });

  it('packs a value whose toJSON packs again', () => {
    const inner = { b: 'inner' };
    // msgpackr calls toJSON only on objects that are not plain (a plain one's would be a field).
    class Outer {
      toJSON(): unknown {
        return { packedInside: encodePayload(inner) };
      }
    }
    const outer = new Outer();
    const value = { a: 1, outer, c: 'after' };
    const packed = encodePayload(value);
    expect(packed.equals(msgpackr.pack({ a: 1, outer: { packedInside: msgpackr.pack(inner) }, c: 'after' }))).toBe(true);
  });
});
