/**
 * A reader that walks msgpack bytes value by value without building them: it reads the
 * scalars asked for, compares map keys as bytes, and skips or slices the rest (a slice is a view
 * of the bytes, the value's msgpack as written). For a caller that needs a few fields of a
 * record and the bytes of others, it replaces decoding the whole record into objects (most of
 * whose cost is the objects and their keys' strings) and packing parts of it again.
 *
 * Bytes that are not msgpack, or end inside a value, throw `MalformedMsgpack`.
 */

export class MalformedMsgpack extends Error {
  override readonly name = 'MalformedMsgpack';
}

const textDecoder = new TextDecoder('utf-8');

/** A header form a kind of value does not have (`header`). */
const none = -1;

/** Strings up to this many bytes are made in JS when they are ASCII (a native decode costs more). */
const shortStringBytesMax = 32;

/** The ASCII string of `bytes[start..end)`, or undefined when a byte is not ASCII. */
function asciiString(bytes: Uint8Array, start: number, end: number): string | undefined {
  // Codes gathered in a plain array: `fromCharCode.apply` over one costs half what it costs over a typed array.
  const codes = new Array<number>(end - start);
  for (let index = start; index < end; index++) {
    const code = bytes[index]!;
    if (code >= 0x80) return undefined;
    codes[index - start] = code;
  }
  return String.fromCharCode.apply(null, codes);
}

export class MsgpackCursor {
  private position = 0;
  /** Made for the first number wider than 32 bits or a float. */
  private viewValue: DataView | undefined;
  /** A plain Uint8Array over the bytes: its slices cost less than a Buffer's. */
  private readonly bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    this.bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private get view(): DataView {
    this.viewValue ??= new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    return this.viewValue;
  }

  /** Whether every byte has been read. */
  get atEnd(): boolean {
    return this.position === this.bytes.length;
  }

  /** The entries of the map that starts here (its header read), or undefined (nothing read) when it is not a map. */
  mapHeader(): number | undefined {
    return this.header(0x80, 0x0f, none, 0xde, 0xdf);
  }

  /** The items of the array that starts here (its header read), or undefined (nothing read) when it is not an array. */
  arrayHeader(): number | undefined {
    return this.header(0x90, 0x0f, none, 0xdc, 0xdd);
  }

  /** Reads a string, or returns undefined (nothing read) when the value is not one. */
  string(): string | undefined {
    const length = this.stringLength();
    if (length === undefined) return undefined;
    const start = this.position;
    this.take(length);
    const text = length <= shortStringBytesMax ? asciiString(this.bytes, start, start + length) : undefined;
    return text ?? textDecoder.decode(this.bytes.subarray(start, start + length));
  }

  /**
   * Reads a string and returns the index of the candidate (UTF-8 bytes) it equals, or -1;
   * undefined (nothing read) when the value is not a string. No string is made.
   */
  key(candidates: readonly Uint8Array[]): number | undefined {
    const length = this.stringLength();
    if (length === undefined) return undefined;
    const start = this.position;
    this.take(length);
    for (let index = 0; index < candidates.length; index++) {
      const candidate = candidates[index]!;
      if (candidate.length !== length) continue;
      let equal = true;
      for (let offset = 0; offset < length; offset++) {
        if (this.bytes[start + offset] !== candidate[offset]) {
          equal = false;
          break;
        }
      }
      if (equal) return index;
    }
    return -1;
  }

  /** Reads a number (any int or float form), or returns undefined (nothing read) when the value is not one. */
  number(): number | undefined {
    const type = this.peek();
    if (type <= 0x7f) return this.advance(1);
    if (type >= 0xe0) return this.advance(1) - 0x100;
    const at = this.position + 1;
    switch (type) {
      case 0xcc:
        return this.uint(1, 1);
      case 0xcd:
        return this.uint(1, 2);
      case 0xce:
        return this.uint(1, 4);
      case 0xcf:
        this.take(9);
        return Number(this.view.getBigUint64(at));
      case 0xd0:
        return (this.uint(1, 1) << 24) >> 24;
      case 0xd1:
        return (this.uint(1, 2) << 16) >> 16;
      case 0xd2:
        return this.uint(1, 4) | 0;
      case 0xd3:
        this.take(9);
        return Number(this.view.getBigInt64(at));
      case 0xca:
        this.take(5);
        return this.view.getFloat32(at);
      case 0xcb:
        this.take(9);
        return this.view.getFloat64(at);
      default:
        return undefined;
    }
  }

  /** Whether the value here is nil (read when it is). */
  nil(): boolean {
    if (this.peek() !== 0xc0) return false;
    this.position += 1;
    return true;
  }

  /** Skips one value, returning its bytes (a view). */
  slice(): Uint8Array {
    const start = this.position;
    this.skip();
    return this.bytes.subarray(start, this.position);
  }

  /** Skips one value, however deep. */
  skip(): void {
    let pending = 1;
    while (pending > 0) {
      pending -= 1;
      const type = this.advance(1);
      if (type <= 0x7f || type >= 0xe0 || type === 0xc0 || type === 0xc2 || type === 0xc3) continue;
      if (type <= 0x8f) pending += 2 * (type & 0x0f);
      else if (type <= 0x9f) pending += type & 0x0f;
      else if (type <= 0xbf) this.take(type & 0x1f);
      else pending += this.skipHeaded(type);
    }
  }

  /** Skips the rest of a value of type `type` (its byte read); returns the values it holds still to skip. */
  private skipHeaded(type: number): number {
    switch (type) {
      case 0xc4:
      case 0xd9:
        this.take(this.uint(0, 1));
        return 0;
      case 0xc5:
      case 0xda:
        this.take(this.uint(0, 2));
        return 0;
      case 0xc6:
      case 0xdb:
        this.take(this.uint(0, 4));
        return 0;
      case 0xc7:
        this.take(this.uint(0, 1) + 1);
        return 0;
      case 0xc8:
        this.take(this.uint(0, 2) + 1);
        return 0;
      case 0xc9:
        this.take(this.uint(0, 4) + 1);
        return 0;
      case 0xcc:
      case 0xd0:
      case 0xd4:
        this.take(type === 0xd4 ? 2 : 1);
        return 0;
      case 0xcd:
      case 0xd1:
      case 0xd5:
        this.take(type === 0xd5 ? 3 : 2);
        return 0;
      case 0xca:
      case 0xce:
      case 0xd2:
        this.take(4);
        return 0;
      case 0xd6:
        this.take(5);
        return 0;
      case 0xcb:
      case 0xcf:
      case 0xd3:
        this.take(8);
        return 0;
      case 0xd7:
        this.take(9);
        return 0;
      case 0xd8:
        this.take(17);
        return 0;
      case 0xdc:
        return this.uint(0, 2);
      case 0xdd:
        return this.uint(0, 4);
      case 0xde:
        return 2 * this.uint(0, 2);
      case 0xdf:
        return 2 * this.uint(0, 4);
      default:
        throw new MalformedMsgpack(`byte 0x${type.toString(16)} at offset ${this.position - 1} starts no msgpack value`);
    }
  }

  /** The byte length of the string that starts here (its header read), or undefined (nothing read). */
  private stringLength(): number | undefined {
    return this.header(0xa0, 0x1f, 0xd9, 0xda, 0xdb);
  }

  /**
   * The length a header of one kind says (its fix form `fixFirst` to `fixFirst + fixMask`, the
   * length in its low bits; then the forms with an 8-, 16- and 32-bit length), read; or
   * undefined (nothing read) when the value here is of another kind.
   */
  private header(fixFirst: number, fixMask: number, code8: number, code16: number, code32: number): number | undefined {
    const type = this.peek();
    if (type >= fixFirst && type <= fixFirst + fixMask) return this.advance(1) & fixMask;
    if (type === code8) return this.uint(1, 1);
    if (type === code16) return this.uint(1, 2);
    if (type === code32) return this.uint(1, 4);
    return undefined;
  }

  private peek(): number {
    if (this.position >= this.bytes.length) throw this.truncated();
    return this.bytes[this.position]!;
  }

  /** Reads a byte. */
  private advance(bytes: 1): number {
    const value = this.peek();
    this.position += bytes;
    return value;
  }

  /** Skips `skip` bytes, then reads a big-endian unsigned integer of `bytes` bytes. */
  private uint(skip: number, bytes: 1 | 2 | 4): number {
    const at = this.position + skip;
    this.take(skip + bytes);
    const data = this.bytes;
    if (bytes === 1) return data[at]!;
    if (bytes === 2) return (data[at]! << 8) | data[at + 1]!;
    return data[at]! * 0x1000000 + ((data[at + 1]! << 16) | (data[at + 2]! << 8) | data[at + 3]!);
  }

  private take(bytes: number): void {
    if (this.position + bytes > this.bytes.length) throw this.truncated();
    this.position += bytes;
  }

  private truncated(): MalformedMsgpack {
    return new MalformedMsgpack(`msgpack ends inside a value at offset ${this.position} of ${this.bytes.length}`);
  }
}
