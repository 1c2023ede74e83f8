/**
 * Proves the on-disk framing of wal/format.ts: frames and segment headers round-trip, any
 * damaged byte fails the frame checksum, lengths outside the limits are refused, and segment
 * headers with a bad magic, a newer version or a bad checksum fail with NOT_A_LOG,
 * UNSUPPORTED_FORMAT and CORRUPT_LOG.
 */
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  checkFrame,
  decodePayload,
  decodeSegmentHeader,
  encodeFrame,
  encodePayload,
  encodeSegmentHeader,
  formatVersion,
  frameFields,
  frameHeaderBytes,
  framePayload,
  parseSegmentFileName,
  segmentFileName,
  segmentHeaderBytes,
} from '../../wal/format.js';
import { TxlogError } from '../../wal/errors.js';

const frameBytesMax = 1024 * 1024;

function codeOf(action: () => unknown): string | undefined {
  try {
    action();
  } catch (error) {
    if (error instanceof TxlogError) return error.code;
    throw error;
  }
  return undefined;
}

describe('frames', () => {
  const payload = encodePayload({ hello: 'world', n: 42, list: [1, 2, 3] });
  const frame = encodeFrame({ type: 3, epoch: 7, lsn: 123_456_789_012 }, payload);

  it('round-trips header fields and payload', () => {
    expect(frame.length).toBe(frameHeaderBytes + payload.length);
    expect(checkFrame(frame, frameBytesMax)).toEqual({ frameBytes: frame.length, type: 3, epoch: 7, lsn: 123_456_789_012 });
    expect(frameFields(frame)).toEqual({ frameBytes: frame.length, type: 3, epoch: 7, lsn: 123_456_789_012 });
    expect(decodePayload(framePayload(frame))).toEqual({ hello: 'world', n: 42, list: [1, 2, 3] });
  });

  it('checks a frame followed by other bytes, and refuses a frame cut short', () => {
    const followed = Buffer.concat([frame, Buffer.from([1, 2, 3])]);
    expect(checkFrame(followed, frameBytesMax)?.frameBytes).toBe(frame.length);
    for (let length = 0; length < frame.length; length++) {
      expect(checkFrame(frame.subarray(0, length), frameBytesMax)).toBeUndefined();
    }
  });

  it('fails the checksum when any single byte is flipped', () => {
    for (let at = 0; at < frame.length; at++) {
      const damaged = Buffer.from(frame);
      damaged[at] = damaged[at]! ^ 0x5a;
      expect(checkFrame(damaged, frameBytesMax), `byte ${at}`).toBeUndefined();
    }
  });

  it('refuses a length below the header, above frameBytesMax, or zero', () => {
    const small = Buffer.from(frame);
    small.writeUInt32LE(frameHeaderBytes - 1, 0);
    expect(checkFrame(small, frameBytesMax)).toBeUndefined();
    const zero = Buffer.from(frame);
    zero.writeUInt32LE(0, 0);
    expect(checkFrame(zero, frameBytesMax)).toBeUndefined();
    // The limit itself passes, limit - 1 does not.
    expect(checkFrame(frame, frame.length)).toBeDefined();
    expect(checkFrame(frame, frame.length - 1)).toBeUndefined();
  });

  it('refuses type 0 and LSN 0 even with a matching checksum', () => {
    for (const [at, value] of [
      [8, 0],
      [16, 0],
    ] as const) {
      const forged = Buffer.from(frame);
      if (at === 8) forged.writeUInt8(value, at);
      else forged.writeBigUInt64LE(BigInt(value), at);
      forged.writeUInt32LE(crc32(forged.subarray(8), crc32(forged.subarray(0, 4))), 4);
      expect(checkFrame(forged, frameBytesMax)).toBeUndefined();
    }
  });

  it('writes the LSN as a u64 LE up to 2^53 - 1 and refuses one beyond', () => {
    for (const lsn of [1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
      const written = encodeFrame({ type: 1, epoch: 0, lsn }, payload);
      expect(written.readBigUInt64LE(16)).toBe(BigInt(lsn));
      expect(checkFrame(written, frameBytesMax)?.lsn).toBe(lsn);
      expect(frameFields(written).lsn).toBe(lsn);
    }
    const forged = Buffer.from(frame);
    forged.writeBigUInt64LE(2n ** 53n, 16);
    forged.writeUInt32LE(crc32(forged.subarray(8), crc32(forged.subarray(0, 4))), 4);
    expect(checkFrame(forged, frameBytesMax)).toBeUndefined();
    expect(decodeSegmentHeader(encodeSegmentHeader(Number.MAX_SAFE_INTEGER), 'x').firstLsn).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('treats a frame of zeros as no frame', () => {
    expect(checkFrame(Buffer.alloc(64), frameBytesMax)).toBeUndefined();
  });

  it('asserts on field values the format cannot hold (programmer errors)', () => {
    expect(() => encodeFrame({ type: 0, epoch: 0, lsn: 1 }, payload)).toThrow(/record type/);
    expect(() => encodeFrame({ type: 256, epoch: 0, lsn: 1 }, payload)).toThrow(/record type/);
    expect(() => encodeFrame({ type: 1, epoch: 2 ** 32, lsn: 1 }, payload)).toThrow(/epoch/);
    expect(() => encodeFrame({ type: 1, epoch: 0, lsn: 0 }, payload)).toThrow(/LSN/);
  });
});

describe('payloads', () => {
  it('round-trips plain data, binary and nested structures', () => {
    const value = { a: 1, b: 'text', c: [true, false, null], d: { e: 1.5 }, f: Buffer.from([1, 2, 3]) };
    const decoded = decodePayload(encodePayload(value)) as Record<string, unknown>;
    expect({ ...decoded, f: Buffer.from(decoded['f'] as Uint8Array) }).toEqual(value);
  });

  it('refuses values msgpack cannot carry instead of dropping them', () => {
    expect(() => encodePayload(() => 1)).toThrow();
    expect(() => encodePayload({ nested: [1, () => 2] })).toThrow();
    expect(() => encodePayload(Symbol('s'))).toThrow();
    expect(() => encodePayload(10n ** 30n)).toThrow();
    // The encoder is still usable after a refusal.
    expect(decodePayload(encodePayload({ ok: 1 }))).toEqual({ ok: 1 });
  });
});

describe('segment headers', () => {
  const header = encodeSegmentHeader(1234);

  it('round-trips the first LSN and the format version', () => {
    expect(header.length).toBe(segmentHeaderBytes);
    expect(header.subarray(0, 8).toString('latin1')).toBe('TXLOGWAL');
    expect(decodeSegmentHeader(header, 'x.wal')).toEqual({ formatVersion, firstLsn: 1234 });
  });

  it('fails a bad magic with NOT_A_LOG', () => {
    const damaged = Buffer.from(header);
    damaged[0] = 'X'.charCodeAt(0);
    expect(codeOf(() => decodeSegmentHeader(damaged, 'x.wal'))).toBe('NOT_A_LOG');
    expect(codeOf(() => decodeSegmentHeader(Buffer.from('not a log at all'), 'x.wal'))).toBe('NOT_A_LOG');
    expect(codeOf(() => decodeSegmentHeader(header.subarray(0, 32), 'x.wal'))).toBe('NOT_A_LOG');
  });

  it('fails a newer format version with UNSUPPORTED_FORMAT', () => {
    const newer = Buffer.from(header);
    newer.writeUInt32LE(formatVersion + 1, 8);
    newer.writeUInt32LE(crc32(newer.subarray(0, 60)), 60);
    let caught: unknown;
    try {
      decodeSegmentHeader(newer, 'x.wal');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(TxlogError);
    expect((caught as TxlogError).code).toBe('UNSUPPORTED_FORMAT');
    expect((caught as TxlogError).details).toMatchObject({ segment: 'x.wal', formatVersion: formatVersion + 1 });
  });

  it('fails a damaged byte anywhere after the magic and version with CORRUPT_LOG', () => {
    for (let at = 12; at < segmentHeaderBytes; at++) {
      const damaged = Buffer.from(header);
      damaged[at] = damaged[at]! ^ 0x01;
      expect(codeOf(() => decodeSegmentHeader(damaged, 'x.wal')), `byte ${at}`).toBe('CORRUPT_LOG');
    }
  });

  it('fails a checksummed header naming LSN 0 with CORRUPT_LOG', () => {
    const forged = Buffer.from(header);
    forged.writeBigUInt64LE(0n, 16);
    forged.writeUInt32LE(crc32(forged.subarray(0, 60)), 60);
    expect(codeOf(() => decodeSegmentHeader(forged, 'x.wal'))).toBe('CORRUPT_LOG');
  });
});

describe('segment file names', () => {
  it('round-trip, sort by LSN, and ignore other names', () => {
    expect(segmentFileName(1)).toBe('00000000000000000001.wal');
    expect(parseSegmentFileName(segmentFileName(987_654_321))).toBe(987_654_321);
    expect(segmentFileName(9) < segmentFileName(10)).toBe(true);
    for (const name of ['spare.tmp', '00000000000000000001.wal.tmp', '1.wal', '00000000000000000000.wal', 'x'.repeat(20) + '.wal']) {
      expect(parseSegmentFileName(name), name).toBeUndefined();
    }
  });
});
