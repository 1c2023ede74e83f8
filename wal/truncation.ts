/**
 * Cutting the log at either end: `truncateAfter` drops a tail the new primary never had (a
 * rejoining node), `truncateBefore` drops whole old segments (retention). Both need a log with
 * nothing in flight; the caller checks that.
 */
import * as path from 'node:path';
import { txlogError } from './errors.js';
import { segmentHeaderBytes } from './format.js';
import { activeSegment, firstLsnOf, type LogState } from './log-state.js';
import type { LogReader } from './reader.js';
import { zeroRange } from './segments.js';
import { walkWholeSegment } from './segment-walker.js';

/** Cuts every record after `lsn`; durable when it returns. */
export function truncateAfter(state: LogState, reader: LogReader, lsn: number): void {
  if (lsn >= state.writtenLsn) return;
  const firstLsn = firstLsnOf(state);
  if (lsn < firstLsn - 1) {
    throw txlogError('BAD_REQUEST', `cannot truncate after ${lsn}: records before ${firstLsn} were dropped`);
  }
  const { fileSystem, options, segments } = state;
  if (state.activeFd !== undefined) fileSystem.close(state.activeFd);
  state.activeFd = undefined;
  // Drop whole segments that start after the cut, but keep at least the first one.
  while (segments.length > 1 && segments[segments.length - 1]!.firstLsn > lsn) {
    const dropped = segments.pop()!;
    fileSystem.unlink(path.join(options.dir, dropped.name));
  }
  const segment = activeSegment(state);
  const fd = fileSystem.open(path.join(options.dir, segment.name), 'r+');
  const fileBytes = fileSystem.sizeOf(fd);
  let cutOffset = segmentHeaderBytes;
  let lastEpoch = 0;
  const walk = walkWholeSegment(fileSystem, fd, {
    segment,
    fileBytes,
    frameBytesMax: state.frameBytesMax,
    // Only the frames matter: everything after the cut goes, whatever it is.
    ending: 'open',
    from: { lsn: segment.firstLsn, offset: segmentHeaderBytes },
  }, (frame) => {
    if (frame.lsn > lsn) return;
    cutOffset = frame.offset + frame.frameBytes;
    lastEpoch = frame.epoch;
  });
  const dataEnd = walk.endOffset;
  // Cut with ftruncate, which a crash cannot leave half done. Zeroing in place could stop with
  // zeros in front of frames still valid, which the next open takes for corruption in the
  // middle of the log and refuses. The file then gets its size back (the hole reads as zeros)
  // and, when preallocating, real zeros again: zeros over zeros are safe to interrupt.
  if (dataEnd > cutOffset) {
    fileSystem.truncate(fd, cutOffset);
    fileSystem.fdatasync(fd);
    fileSystem.truncate(fd, fileBytes);
    if (options.preallocate) zeroRange(fileSystem, fd, cutOffset, dataEnd);
  }
  fileSystem.fdatasync(fd);
  fileSystem.syncDirectory(options.dir);
  segment.lastLsn = Math.max(lsn, segment.firstLsn - 1);
  segment.index = walk.index.filter((entry) => entry.lsn <= lsn);
  state.activeFd = fd;
  state.writeOffset = cutOffset;
  state.activeFileBytes = fileBytes;
  state.nextIndexOffset = cutOffset;
  state.writtenLsn = segment.lastLsn;
  state.durableLsn = segment.lastLsn;
  state.nextLsn = segment.lastLsn + 1;
  if (segment.lastLsn < segment.firstLsn && segments.length > 1) {
    // The active segment is empty: the epoch comes from the segment before it.
    lastEpoch = reader.lastEpochOfSegment(segments.length - 2);
  }
  state.lastEpoch = lastEpoch;
}

/** Drops whole segments all of whose records are below `lsn`; returns how many. */
export function truncateBefore(state: LogState, lsn: number): number {
  const { fileSystem, options, segments } = state;
  let removed = 0;
  while (segments.length > 1 && segments[1]!.firstLsn <= lsn) {
    const dropped = segments.shift()!;
    fileSystem.unlink(path.join(options.dir, dropped.name));
    removed += 1;
  }
  if (removed > 0) fileSystem.syncDirectory(options.dir);
  return removed;
}
