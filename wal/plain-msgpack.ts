/**
 * A msgpack writer for JSON-like values that writes msgpackr's bytes to the byte (the WAL's plain
 * msgpack, `format.ts`), with msgpackr kept for every other value.
 *
 * Why: msgpackr's one generic `pack` serves every value a node encodes (requests, replies,
 * records, events, protocol messages), so in a running node its property loads are megamorphic:
 * a ~740-byte commit record took 6-7 µs to pack in a primary under load, against ~3.4 µs in a
 * benchmark that packs records only (README, "Measured"). This writer does less per value (no
 * `for in` with `hasOwnProperty`, no extension lookups), and `engine/commit-encoding.ts` writes a
 * record's own fields with call sites that each see one kind of object.
 *
 * The bytes (test/wal/plain-msgpack.test.ts compares them with msgpackr's over random values): a
 * map16 header for every object (msgpackr's `useRecords: false` default) with its own enumerable
 * keys in their `for in` order; the shortest array header; the shortest string header for the UTF-8 length
 * (a lone surrogate as U+FFFD, as msgpackr and Buffer write it); non-negative 32-bit integers as
 * positive fixint (< 128) or uint 8/16/32, negative 32-bit integers as negative fixint or int
 * 8/16/32, every other number as float64; nil, true, false; a Buffer or Uint8Array as bin
 * 8/16/32. Anything else (a Date, undefined, a Map, an object of another prototype, nesting
 * past `plainDepthMax`) is packed by the fallback Packr and its bytes copied in.
 */
import type { Packr } from 'msgpackr';

/** Below this many characters a string is written by a loop here; above it by Buffer's UTF-8 encoder. */
const shortStringLengthMax = 64;

/** Nesting written here at most; deeper values go to the fallback whole (same bytes, its own limits). */
const plainDepthMax = 16;

/**
 * Packs write into a slab and return a view of their bytes in it, as msgpackr does (no copy per
 * value). A pack starts a new slab when fewer than `slabBytesFreeMin` bytes are left; one larger
 * than what is left moves to a slab of its own. A view keeps its slab alive while it is held.
 */
const slabBytes = 64 * 1024;
const slabBytesFreeMin = 2 * 1024;

let scratch = Buffer.allocUnsafeSlow(slabBytes);
/** Where the pack under way writes next. */
let position = 0;
/** Where the pack under way started in `scratch`. */
let start = 0;
let fallback: Packr | undefined;

/**
 * Packs `value` as `packr.pack(value)` would, after `reserveStartBytes` bytes left for the caller
 * (uninitialised). `write` (default: the whole value) may write a value of known shape itself,
 * with the `write*` functions of this module.
 */
export function packPlain(value: unknown, packr: Packr, reserveStartBytes = 0, write: (value: unknown) => void = writeValue): Buffer {
  // A value whose toJSON packs again (through msgpackr, below) would reenter: msgpackr copes.
  if (fallback !== undefined) return packr.pack(value);
  fallback = packr;
  try {
    if (scratch.length - position < slabBytesFreeMin) {
      scratch = Buffer.allocUnsafeSlow(slabBytes);
      position = 0;
    }
    start = position;
    position += reserveStartBytes;
    write(value);
    return scratch.subarray(start, position);
  } catch (error) {
    position = start;
    throw error;
  } finally {
    fallback = undefined;
  }
}

/** Any value: JSON-like ones written here, others by the fallback Packr. */
/** How many bytes the pack under way holds so far: where the next value will start in it. */
export function packedSoFar(): number {
  return position - start;
}

export function writeValue(value: unknown, depth = 0): void {
  if (typeof value === 'string') return writeString(value);
  if (typeof value === 'number') return writeNumber(value);
  if (typeof value === 'boolean') return writeByte(value ? 0xc3 : 0xc2);
  if (value === null) return writeByte(0xc0);
  if (depth < plainDepthMax) {
    if (isPlainObject(value)) {
      // `writeObject`'s walk, written out: a call through `writeField` per entry made packing
      // slower (README, "Measured", "msgpack written by txlog").
      const header = beginMap();
      let size = 0;
      for (const key in value) {
        if (!Object.hasOwn(value, key)) continue;
        writeString(key);
        writeValue((value as Record<string, unknown>)[key], depth + 1);
        size += 1;
      }
      return endMap(header, size);
    }
    if (isPlainArray(value)) {
      writeArrayHeader(value.length);
      for (const item of value) writeValue(item, depth + 1);
      return;
    }
    if (isPlainBytes(value)) return writeBin(value);
  }
  writeBytes(fallback!.pack(value));
}

/**
 * A plain object as msgpackr writes it: a map of its own keys in `for in` order (a walk with no
 * array of keys), each value written by `writeField`; the size is filled in after the entries.
 */
export function writeObject(object: object, depth: number, writeField: (key: string, value: unknown, depth: number) => void): void {
  const header = beginMap();
  let size = 0;
  for (const key in object) {
    if (!Object.hasOwn(object, key)) continue;
    writeString(key);
    writeField(key, (object as Record<string, unknown>)[key], depth);
    size += 1;
  }
  endMap(header, size);
}

// What msgpackr writes as a map, an array or bin is told by its `constructor`; here by the
// prototype (a builtin call, where reading `constructor` from objects of every shape is a
// megamorphic load) and the absence of an own `constructor`, which could say otherwise.

/**
 * What msgpackr writes as a map of its own keys: an object whose constructor is Object, inherited
 * from Object.prototype (so its `for in`, msgpackr's walk, sees its own keys alone), with no own
 * `hasOwnProperty` (msgpackr filters the keys with it).
 */
export function isPlainObject(value: unknown): value is object {
  return (
    typeof value === 'object' &&
    value !== null &&
    Object.getPrototypeOf(value) === Object.prototype &&
    !Object.hasOwn(value, 'constructor') &&
    !Object.hasOwn(value, 'hasOwnProperty')
  );
}

/** What msgpackr writes as an array: an Array whose constructor is Array, inherited from Array.prototype. */
export function isPlainArray(value: unknown): value is unknown[] {
  return Array.isArray(value) && Object.getPrototypeOf(value) === Array.prototype && !Object.hasOwn(value, 'constructor');
}

/** What msgpackr writes as bin: a Buffer or a Uint8Array of its own class. */
function isPlainBytes(value: unknown): value is Uint8Array {
  if (!(value instanceof Uint8Array)) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return (prototype === Buffer.prototype || prototype === Uint8Array.prototype) && !Object.hasOwn(value, 'constructor');
}

function writeByte(byte: number): void {
  ensure(1);
  scratch[position++] = byte;
}

export function writeBytes(bytes: Uint8Array): void {
  ensure(bytes.length);
  scratch.set(bytes, position);
  position += bytes.length;
}

/** Bytes (a Buffer or a plain Uint8Array) as msgpack bin 8/16/32. */
function writeBin(bytes: Uint8Array): void {
  writeLengthHeader(bytes.length, 0, none, 0xc4, 0xc5, 0xc6);
  writeBytes(bytes);
}

/** A form a header does not have (`writeLengthHeader`). */
const none = -1;

/**
 * The shortest header msgpack has for a length (or a non-negative 32-bit integer), as msgpackr
 * writes it: one byte (`fixedBase` | length) below `fixedLimit`, else the type byte of the
 * 8-bit (unless `none`), 16-bit or 32-bit form and the length big-endian.
 */
function writeLengthHeader(length: number, fixedLimit: number, fixedBase: number, code8: number, code16: number, code32: number): void {
  ensure(5);
  if (length < fixedLimit) {
    scratch[position++] = fixedBase | length;
  } else if (code8 !== none && length < 0x100) {
    scratch[position++] = code8;
    scratch[position++] = length;
  } else if (length < 0x10000) {
    scratch[position++] = code16;
    scratch[position++] = length >> 8;
    scratch[position++] = length & 0xff;
  } else {
    scratch[position++] = code32;
    scratch.writeUInt32BE(length, position);
    position += 4;
  }
}

/**
 * Starts a map whose entries follow, as msgpackr writes one: a 16-bit size, filled in by `endMap`
 * once the entries are counted (a walk with `for in` and no array of keys). Returns where the
 * header is, from the pack's start (the pack may move to another slab meanwhile).
 */
function beginMap(): number {
  ensure(3);
  scratch[position] = 0xde;
  position += 3;
  return position - 3 - start;
}

/** Fills in the size of the map `beginMap` started; msgpackr refuses one of more than 65,535 entries. */
function endMap(header: number, size: number): void {
  if (size > 0xffff) throw new Error('Object is too large to serialize with fast 16-bit map size, use the "variableMapSize" option to serialize this object');
  scratch[start + header + 1] = size >> 8;
  scratch[start + header + 2] = size & 0xff;
}

export function writeArrayHeader(length: number): void {
  writeLengthHeader(length, 0x10, 0x90, none, 0xdc, 0xdd);
}

export function writeNumber(value: number): void {
  ensure(9);
  if (value >>> 0 === value) {
    // Positive fixint below 128 (msgpackr's choice without records), else uint 8/16/32; the
    // commonest case first, without a call.
    if (value < 0x80) scratch[position++] = value;
    else writeLengthHeader(value, 0, 0, 0xcc, 0xcd, 0xce);
  } else if (value >> 0 === value) {
    if (value >= -0x20) {
      scratch[position++] = 0x100 + value;
    } else if (value >= -0x80) {
      scratch[position++] = 0xd0;
      scratch[position++] = value + 0x100;
    } else if (value >= -0x8000) {
      scratch[position++] = 0xd1;
      scratch.writeInt16BE(value, position);
      position += 2;
    } else {
      scratch[position++] = 0xd2;
      scratch.writeInt32BE(value, position);
      position += 4;
    }
  } else {
    scratch[position++] = 0xcb;
    scratch.writeDoubleBE(value, position);
    position += 8;
  }
}

export function writeString(value: string): void {
  const length = value.length;
  // Room for the longest header and three bytes per UTF-16 unit (UTF-8's worst case).
  ensure(5 + length * 3);
  // The header's size is guessed from the length in characters, then corrected from the
  // length in bytes (moving the bytes), as msgpackr does: both give the shortest header.
  const guessed = length < 0x20 ? 1 : length < 0x100 ? 2 : length < 0x10000 ? 3 : 5;
  const bytesAt = position + guessed;
  const byteLength = length < shortStringLengthMax ? writeShortUtf8(value, bytesAt) : scratch.write(value, bytesAt, 'utf8');
  const header = byteLength < 0x20 ? 1 : byteLength < 0x100 ? 2 : byteLength < 0x10000 ? 3 : 5;
  if (header !== guessed) scratch.copyWithin(position + header, bytesAt, bytesAt + byteLength);
  if (header === 1) {
    scratch[position] = 0xa0 | byteLength;
  } else if (header === 2) {
    scratch[position] = 0xd9;
    scratch[position + 1] = byteLength;
  } else if (header === 3) {
    scratch[position] = 0xda;
    scratch[position + 1] = byteLength >> 8;
    scratch[position + 2] = byteLength & 0xff;
  } else {
    scratch[position] = 0xdb;
    scratch.writeUInt32BE(byteLength, position + 1);
  }
  position += header + byteLength;
}

/** UTF-8 of a short string at `at`, a lone surrogate as U+FFFD; returns its bytes. */
function writeShortUtf8(value: string, at: number): number {
  const target = scratch;
  let end = at;
  for (let index = 0; index < value.length; index++) {
    let code = value.charCodeAt(index);
    if (code < 0x80) {
      target[end++] = code;
    } else if (code < 0x800) {
      target[end++] = (code >> 6) | 0xc0;
      target[end++] = (code & 0x3f) | 0x80;
    } else if ((code & 0xfc00) === 0xd800 && (value.charCodeAt(index + 1) & 0xfc00) === 0xdc00) {
      code = 0x10000 + ((code & 0x03ff) << 10) + (value.charCodeAt(index + 1) & 0x03ff);
      index++;
      target[end++] = (code >> 18) | 0xf0;
      target[end++] = ((code >> 12) & 0x3f) | 0x80;
      target[end++] = ((code >> 6) & 0x3f) | 0x80;
      target[end++] = (code & 0x3f) | 0x80;
    } else if ((code & 0xf800) === 0xd800) {
      target[end++] = 0xef;
      target[end++] = 0xbf;
      target[end++] = 0xbd;
    } else {
      target[end++] = (code >> 12) | 0xe0;
      target[end++] = ((code >> 6) & 0x3f) | 0x80;
      target[end++] = (code & 0x3f) | 0x80;
    }
  }
  return end - at;
}

/** Room for `bytes` more: the pack under way moves to a slab of its own when the slab is too full. */
function ensure(bytes: number): void {
  if (position + bytes <= scratch.length) return;
  const written = position - start;
  const moved = Buffer.allocUnsafeSlow(Math.max(slabBytes, 2 * (written + bytes)));
  scratch.copy(moved, 0, start, position);
  scratch = moved;
  start = 0;
  position = written;
}
