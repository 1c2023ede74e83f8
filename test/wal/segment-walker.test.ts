/**
 * Proves the one statement of a valid segment (wal/segment-walker.ts) on written logs: a clean
 * end, a torn tail (garbage no valid frame follows), corruption (a valid frame after damage),
 * an epoch going down, and a header naming another first LSN; and that a sealed segment with
 * anything but zeros after its last frame is refused by reads (CORRUPT_LOG naming segment,
 * offset and LSN), as `txlog inspect` refuses it.
 */
import { closeSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeFrame, encodePayload, segmentFileName, segmentHeaderBytes } from '../../wal/format.js';
import { nodePlatform } from '../../wal/platform.js';
import { walkWholeSegment, type SegmentEnding, type WalkedSegment } from '../../wal/segment-walker.js';
import { useTempDir } from '../helpers/temp.js';
import { openQuietWal, payloadFor, thrownError } from '../helpers/wal.js';

const newDir = useTempDir('txlog-segment-walker-');
const fileSystem = nodePlatform.fileSystem;
const frameBytesMax = 64 * 1024;

/** Writes `count` records of 100 bytes into one unpreallocated segment; returns its path. */
async function writeSegment(dir: string, count: number): Promise<string> {
  const { wal } = await openQuietWal({ dir, preallocate: false, fsync: 'never' });
  await Promise.all(Array.from({ length: count }, (_, i) => wal.append(1, payloadFor(i + 1, 100), 2)));
  await wal.close();
  return path.join(dir, segmentFileName(1));
}

function writeAt(file: string, bytes: Uint8Array, position: number): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, position);
  } finally {
    closeSync(fd);
  }
}

function walk(file: string, ending: SegmentEnding, firstLsn = 1): WalkedSegment {
  const fd = fileSystem.open(file, 'r');
  try {
    return walkWholeSegment(fileSystem, fd, {
      segment: { name: path.basename(file), firstLsn },
      fileBytes: fileSystem.sizeOf(fd),
      frameBytesMax,
      ending,
    });
  } finally {
    fileSystem.close(fd);
  }
}

describe('the segment walker', () => {
  it('walks a clean segment to its end, with a sparse index from the first frame', async () => {
    const file = await writeSegment(newDir(), 10);
    const walked = walk(file, 'sealed');
    expect(walked).toMatchObject({ lastLsn: 10, lastEpoch: 2, endOffset: statSync(file).size, end: { state: 'clean' } });
    expect(walked.index[0]).toEqual({ lsn: 1, offset: segmentHeaderBytes });
  });

  it('calls garbage after the last frame a torn tail in the tail, corruption in a sealed segment', async () => {
    const file = await writeSegment(newDir(), 10);
    const end = statSync(file).size;
    writeAt(file, Buffer.from('garbage that is no frame'), end);
    expect(walk(file, 'tail').end).toMatchObject({ state: 'torn', offset: end, bytes: 24 });
    expect(walk(file, 'sealed').end).toMatchObject({ state: 'corrupt', offset: end, lsn: 11, reason: expect.stringMatching(/sealed segment/) });
    expect(walk(file, 'open').end).toEqual({ state: 'clean' });
  });

  it('calls damage that a valid frame follows corruption, even in the tail', async () => {
    const file = await writeSegment(newDir(), 10);
    const secondFrame = segmentHeaderBytes + (readFileSync(file).readUInt32LE(segmentHeaderBytes));
    writeAt(file, Buffer.from([0xff]), secondFrame + 30);
    expect(walk(file, 'tail')).toMatchObject({ lastLsn: 1, end: { state: 'corrupt', offset: secondFrame, lsn: 2 } });
  });

  it('calls an epoch going down corruption at that frame', async () => {
    const file = await writeSegment(newDir(), 3);
    const end = statSync(file).size;
    writeAt(file, encodeFrame({ type: 1, epoch: 1, lsn: 4 }, encodePayload({ late: true })), end);
    expect(walk(file, 'tail')).toMatchObject({ lastLsn: 3, end: { state: 'corrupt', offset: end, lsn: 4, reason: 'epoch 1 after epoch 2' } });
  });

  it('calls a header naming another first LSN corruption at offset 0', async () => {
    const file = await writeSegment(newDir(), 3);
    expect(walk(file, 'tail', 7).end).toEqual({ state: 'corrupt', offset: 0, lsn: 7, reason: 'header says first LSN 1' });
  });
});

describe('reading a sealed segment', () => {
  it('refuses one with bytes after its last frame, naming segment, offset and LSN', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, segmentBytes: 8192, preallocate: false, fsync: 'never' });
    await Promise.all(Array.from({ length: 30 }, (_, i) => wal.append(1, payloadFor(i + 1, 1000), 1)));
    await wal.close();
    const [first, second] = wal.segmentNames;
    const file = path.join(dir, first!);
    const end = statSync(file).size;
    writeAt(file, Buffer.from('junk'), end);
    const { wal: reopened } = await openQuietWal({ dir, segmentBytes: 8192, preallocate: false, readOnly: true });
    const secondFirstLsn = Number(second!.slice(0, 20));
    const error = thrownError(() => [...reopened.read(1)]);
    expect(error.code).toBe('CORRUPT_LOG');
    expect(error.details).toMatchObject({ segment: first, offset: end, lsn: secondFirstLsn });
    // Read to its end, the segment is verified in the walk that reads it: its records, each
    // checksummed, come first, and the verdict on what follows them after.
    const read: number[] = [];
    const again = thrownError(() => {
      for (const record of reopened.read(1)) read.push(record.lsn);
    });
    expect(again.code).toBe('CORRUPT_LOG');
    expect(read).toEqual(Array.from({ length: secondFirstLsn - 1 }, (_, i) => i + 1));
    // A read that stops inside it verifies it whole first, as before.
    expect(thrownError(() => [...reopened.read(1, 2)]).code).toBe('CORRUPT_LOG');
    await reopened.close();
  });
});
