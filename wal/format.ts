/**
 * On-disk format of WAL segments, version 1. Changing any byte here needs a new format version
 * and a new golden fixture (test/fixtures/wal-v1 must keep opening).
 *
 * Segment file `DIR/wal/<first LSN, 20 digits>.wal`:
 *   header, 64 bytes:
 *     0  8  magic "TXLOGWAL"
 *     8  4  format version (u32 LE)
 *    12  4  header bytes (u32 LE, 64)
 *    16  8  first LSN (u64 LE)
 *    24 36  reserved, zero
 *    60  4  CRC-32 of bytes 0..60
 *   then frames back to back, then zeros to the end of the (preallocated) file.
 *
 * Frame, 24-byte header then the msgpack payload:
 *     0  4  frame bytes, header included (u32 LE); 0 marks the end of the written data
 *     4  4  CRC-32 of bytes 0..4 and 8..frame end
 *     8  1  record type (1..255; 0 is never written)
 *     9  3  reserved, zero
 *    12  4  epoch (u32 LE)
 *    16  8  LSN (u64 LE)
 */
import { crc32 } from 'node:zlib';
import { Packr } from 'msgpackr';
import { assert } from './assert.js';
import { txlogError } from './errors.js';
import { packPlain } from './plain-msgpack.js';

export const segmentMagic = Buffer.from('TXLOGWAL', 'latin1');
export const formatVersion = 1;
export const segmentHeaderBytes = 64;
export const frameHeaderBytes = 24;
export const segmentSuffix = '.wal';
/** Epochs are u32 on disk. */
export const epochMax = 0xffff_ffff;
/** LSNs are u64 on disk but numbers in memory; 2^53 records is beyond any real log. */
export const lsnMax = Number.MAX_SAFE_INTEGER;

/**
 * Plain msgpack, no shared record structures: every payload decodes on its own, by any reader,
 * forever. (Payloads packed with shared `structures` cannot be read without them.)
 */
const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  // msgpackr writes a function as `undefined` by default: the record would silently lose data.
  writeFunction: () => {
    throw new TypeError('a function cannot be encoded as msgpack');
  },
});

/** The same bytes as `packr.pack(value)`, written by `plain-msgpack.ts` (faster in a busy node). */
export function encodePayload(value: unknown): Buffer {
  return packPlain(value, packr);
}

/** `encodePayload` with `write` writing the value (of a shape it knows) through `plain-msgpack.ts`. */
export function encodePayloadWith(value: unknown, write: (value: unknown) => void): Buffer {
  return packPlain(value, packr, 0, write);
}

export function decodePayload(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

export function segmentFileName(firstLsn: number): string {
  return `${String(firstLsn).padStart(20, '0')}${segmentSuffix}`;
}

/** The first LSN a segment file name claims, or undefined when the name is not a segment's. */
export function parseSegmentFileName(name: string): number | undefined {
  const match = /^(\d{20})\.wal$/.exec(name);
  if (match === null) return undefined;
  const lsn = Number(match[1]);
  return Number.isSafeInteger(lsn) && lsn >= 1 ? lsn : undefined;
}

export function encodeSegmentHeader(firstLsn: number): Buffer {
  assert(Number.isSafeInteger(firstLsn) && firstLsn >= 1, 'segment first LSN out of range');
  const header = Buffer.alloc(segmentHeaderBytes);
  segmentMagic.copy(header, 0);
  header.writeUInt32LE(formatVersion, 8);
  header.writeUInt32LE(segmentHeaderBytes, 12);
  writeU64(header, firstLsn, 16);
  header.writeUInt32LE(crc32(header.subarray(0, 60)), 60);
  return header;
}

export interface SegmentHeader {
  formatVersion: number;
  firstLsn: number;
}

/** Validates a segment header; throws NOT_A_LOG, UNSUPPORTED_FORMAT or CORRUPT_LOG. */
export function decodeSegmentHeader(header: Uint8Array, segment: string): SegmentHeader {
  const bytes = Buffer.from(header.buffer, header.byteOffset, header.byteLength);
  if (bytes.length < segmentHeaderBytes || !bytes.subarray(0, 8).equals(segmentMagic)) {
    throw txlogError('NOT_A_LOG', `${segment} is not a txlog WAL segment (bad magic)`, { segment });
  }
  const version = bytes.readUInt32LE(8);
  if (version > formatVersion) {
    throw txlogError(
      'UNSUPPORTED_FORMAT',
      `${segment} has WAL format version ${version}; this txlog reads up to version ${formatVersion}`,
      { segment, formatVersion: version },
    );
  }
  if (bytes.readUInt32LE(60) !== crc32(bytes.subarray(0, 60)) || bytes.readUInt32LE(12) !== segmentHeaderBytes) {
    throw txlogError('CORRUPT_LOG', `${segment}: segment header checksum mismatch`, { segment, offset: 0 });
  }
  const firstLsn = readU64(bytes, 16);
  if (!Number.isSafeInteger(firstLsn) || firstLsn < 1) {
    throw txlogError('CORRUPT_LOG', `${segment}: segment header names an invalid first LSN`, { segment, offset: 0 });
  }
  return { formatVersion: version, firstLsn };
}

export interface FrameFields {
  type: number;
  epoch: number;
  lsn: number;
}

const two32 = 2 ** 32;

/** Writes a safe integer as a u64 (LE) without a BigInt (one per record was garbage). */
function writeU64(bytes: Buffer, value: number, offset: number): void {
  bytes.writeUInt32LE(value % two32, offset);
  bytes.writeUInt32LE(Math.floor(value / two32), offset + 4);
}

/** Reads a u64 (LE); at or above 2^53 the result is not a safe integer, which callers refuse. */
function readU64(bytes: Buffer, offset: number): number {
  return bytes.readUInt32LE(offset + 4) * two32 + bytes.readUInt32LE(offset);
}

/** Builds one frame around an already packed payload. */
export function encodeFrame(fields: FrameFields, payload: Uint8Array): Buffer {
  assert(Number.isInteger(fields.type) && fields.type >= 1 && fields.type <= 255, 'record type out of range');
  assert(Number.isInteger(fields.epoch) && fields.epoch >= 0 && fields.epoch <= epochMax, 'epoch out of range');
  assert(Number.isSafeInteger(fields.lsn) && fields.lsn >= 1, 'LSN out of range');
  const frame = Buffer.allocUnsafe(frameHeaderBytes + payload.byteLength);
  frame.writeUInt32LE(frame.length, 0);
  frame.writeUInt32LE(0, 8); // type byte and three reserved bytes
  frame.writeUInt8(fields.type, 8);
  frame.writeUInt32LE(fields.epoch, 12);
  writeU64(frame, fields.lsn, 16);
  frame.set(payload, frameHeaderBytes);
  frame.writeUInt32LE(frameChecksum(frame), 4);
  return frame;
}

/** A frame's CRC-32 (of its length field and all after the checksum): the frame at `offset` in `buffer`, ending at `end`. */
export function frameChecksum(buffer: Buffer, offset = 0, end = buffer.length): number {
  return crc32(buffer.subarray(offset + 8, end), crc32(buffer.subarray(offset, offset + 4)));
}

export interface FrameView extends FrameFields {
  frameBytes: number;
}

/**
 * Reads and checks the frame at the start of `bytes`. Returns undefined when the bytes there
 * are not one whole valid frame of at most `frameBytesMax` (torn, corrupt, or zeros).
 */
export function checkFrame(bytes: Uint8Array, frameBytesMax: number): FrameView | undefined {
  return checkFrameAt(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0, bytes.byteLength, frameBytesMax);
}

/**
 * `checkFrame` for the frame at `offset` in `buffer`, whose bytes end at `end`: the scanner's
 * form, which makes no view of its own (a frame scanned costs no allocation but its result).
 */
export function checkFrameAt(buffer: Buffer, offset: number, end: number, frameBytesMax: number): FrameView | undefined {
  if (end - offset < frameHeaderBytes) return undefined;
  const frameBytes = buffer.readUInt32LE(offset);
  if (frameBytes < frameHeaderBytes || frameBytes > frameBytesMax || frameBytes > end - offset) return undefined;
  if (buffer.readUInt32LE(offset + 4) !== frameChecksum(buffer, offset, offset + frameBytes)) return undefined;
  const type = buffer.readUInt8(offset + 8);
  const lsn = readU64(buffer, offset + 16);
  if (type === 0 || !Number.isSafeInteger(lsn) || lsn < 1) return undefined;
  return { frameBytes, type, epoch: buffer.readUInt32LE(offset + 12), lsn };
}

/** Header fields of a frame already known to be valid. */
export function frameFields(frame: Uint8Array): FrameView {
  const view = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  return {
    frameBytes: view.readUInt32LE(0),
    type: view.readUInt8(8),
    epoch: view.readUInt32LE(12),
    lsn: readU64(view, 16),
  };
}

export function framePayload(frame: Uint8Array): Uint8Array {
  return frame.subarray(frameHeaderBytes);
}
