/**
 * The byte-level primitives under the segment walker (`segment-walker.ts`, which states the
 * rules of a valid segment): reading the header, scanning frames, searching past damage,
 * finding where garbage ends. Nothing here writes.
 */
import type { FileSystem } from './platform.js';
import {
  checkFrame,
  checkFrameAt,
  decodeSegmentHeader,
  frameHeaderBytes,
  segmentHeaderBytes,
  type FrameView,
  type SegmentHeader,
} from './format.js';
import { txlogError } from './errors.js';

/**
 * Bytes read from disk at a time while scanning; a larger frame gets a buffer of its own. Each
 * read goes to a new buffer, never over one a frame already yielded lies in, so the frames stay
 * valid for as long as they are held (a held frame keeps its chunk alive).
 */
const scanChunkBytes = 1024 * 1024;

export function readSegmentHeader(fileSystem: FileSystem, fd: number, segment: string): SegmentHeader {
  const header = Buffer.alloc(segmentHeaderBytes);
  const read = fileSystem.read(fd, header, 0, segmentHeaderBytes, 0);
  if (read < segmentHeaderBytes) {
    if (read < 8) throw txlogError('NOT_A_LOG', `${segment} is not a txlog WAL segment (too short)`, { segment });
  }
  return decodeSegmentHeader(header.subarray(0, read), segment);
}

export interface ScannedFrame extends FrameView {
  offset: number;
  /** The whole frame: a view of the chunk it was read into, which is never reused. */
  frame: Buffer;
}

export type ScanStop =
  | { kind: 'end'; offset: number } // zeros or end of file: the written data ends here
  | { kind: 'bad'; offset: number; reason: string };

/**
 * Yields every valid frame from `fromOffset`, then returns why it stopped. A frame whose LSN is
 * not `expectedLsn` (dense) counts as bad.
 */
export function* scanFrames(
  fileSystem: FileSystem,
  fd: number,
  options: { fromOffset: number; fileBytes: number; expectedLsn: number; frameBytesMax: number },
): Generator<ScannedFrame, ScanStop> {
  let chunk = Buffer.alloc(0);
  let chunkStart = options.fromOffset;
  let chunkLength = 0;
  let offset = options.fromOffset;
  let expectedLsn = options.expectedLsn;

  const ensure = (bytes: number): number => {
    // Makes [offset, offset + bytes) available in `chunk` where the file has them.
    const have = chunkStart + chunkLength - offset;
    if (offset >= chunkStart && have >= bytes) return have;
    const want = Math.max(bytes, Math.min(scanChunkBytes, options.fileBytes - offset));
    // A new buffer, not the last one again: frames yielded from it may still be held.
    chunk = Buffer.alloc(want);
    chunkStart = offset;
    chunkLength = 0;
    while (chunkLength < want && chunkStart + chunkLength < options.fileBytes) {
      const read = fileSystem.read(fd, chunk, chunkLength, want - chunkLength, chunkStart + chunkLength);
      if (read === 0) break;
      chunkLength += read;
    }
    return chunkLength;
  };

  for (;;) {
    if (offset >= options.fileBytes) return { kind: 'end', offset };
    const available = ensure(frameHeaderBytes);
    const at = offset - chunkStart;
    if (available < 4) {
      return chunk.subarray(at, at + available).every((byte) => byte === 0)
        ? { kind: 'end', offset }
        : { kind: 'bad', offset, reason: 'partial frame header at end of file' };
    }
    const frameBytes = chunk.readUInt32LE(at);
    if (frameBytes === 0) return { kind: 'end', offset };
    if (frameBytes < frameHeaderBytes || frameBytes > options.frameBytesMax) {
      return { kind: 'bad', offset, reason: `impossible frame length ${frameBytes}` };
    }
    if (offset + frameBytes > options.fileBytes) {
      return { kind: 'bad', offset, reason: `frame of ${frameBytes} bytes runs past the end of the file` };
    }
    ensure(frameBytes);
    const start = offset - chunkStart;
    const view = checkFrameAt(chunk, start, start + frameBytes, options.frameBytesMax);
    if (view === undefined) return { kind: 'bad', offset, reason: 'checksum mismatch' };
    if (view.lsn !== expectedLsn) {
      return { kind: 'bad', offset, reason: `LSN ${view.lsn} where ${expectedLsn} was expected` };
    }
    yield { lsn: view.lsn, epoch: view.epoch, type: view.type, frameBytes, offset, frame: chunk.subarray(start, start + frameBytes) };
    offset += frameBytes;
    expectedLsn += 1;
  }
}

/**
 * After a bad frame: is there anything written beyond it? Returns the offset of the first valid
 * frame with an LSN above `lsnAbove` found at or after `fromOffset`, or undefined when the rest
 * of the file holds no valid frame (a torn tail). Slow on purpose: it runs only on the error
 * path and must not mistake corruption in the middle of the log for a torn tail.
 */
export function findValidFrameAfter(
  fileSystem: FileSystem,
  fd: number,
  options: { fromOffset: number; fileBytes: number; lsnAbove: number; frameBytesMax: number },
): number | undefined {
  const window = Buffer.alloc(Math.min(scanChunkBytes, options.fileBytes) + options.frameBytesMax);
  let base = options.fromOffset;
  while (base < options.fileBytes) {
    const length = readAt(fileSystem, fd, window, base, options.fileBytes);
    const searchEnd = Math.min(length, scanChunkBytes);
    for (let i = 0; i + frameHeaderBytes <= length && i < searchEnd; i++) {
      if (window[i] === 0 && window[i + 1] === 0 && window[i + 2] === 0 && window[i + 3] === 0) continue;
      const view = checkFrame(window.subarray(i, length), options.frameBytesMax);
      if (view !== undefined && view.lsn > options.lsnAbove) return base + i;
    }
    base += searchEnd;
  }
  return undefined;
}

/** Where the last non-zero byte after `fromOffset` ends (the extent of garbage to cut). */
export function nonZeroExtentEnd(fileSystem: FileSystem, fd: number, fromOffset: number, fileBytes: number): number {
  const buffer = Buffer.alloc(scanChunkBytes);
  const zeros = Buffer.alloc(scanChunkBytes);
  let end = fromOffset;
  for (let base = fromOffset; base < fileBytes; base += scanChunkBytes) {
    const length = readAt(fileSystem, fd, buffer, base, fileBytes);
    // A chunk of zeros (a preallocated segment's unwritten rest) is compared whole, natively,
    // not byte by byte: every open of a store judges its tail segment's end this way.
    if (buffer.compare(zeros, 0, length, 0, length) === 0) continue;
    for (let i = length - 1; i >= 0; i--) {
      if (buffer[i] !== 0) {
        end = base + i + 1;
        break;
      }
    }
  }
  return end;
}

function readAt(fileSystem: FileSystem, fd: number, buffer: Buffer, position: number, fileBytes: number): number {
  const want = Math.min(buffer.length, fileBytes - position);
  let length = 0;
  while (length < want) {
    const read = fileSystem.read(fd, buffer, length, want - length, position + length);
    if (read === 0) break;
    length += read;
  }
  return length;
}
