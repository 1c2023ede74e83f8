/**
 * Proves what wal/group-commit.ts (and its sync policy) tell appenders when the disk fails under
 * them, using a file system that fails chosen calls: an append whose frame was written, or was
 * being written, gets OUTCOME_UNKNOWN (retryable: it may be in the log, and after a reopen it
 * is), an append that never reached the disk gets the definite IO_ERROR, and so does every
 * append after the failure. A rotation that cannot create the next segment fails the appends
 * queued for it definitely, names the segment and the bytes it needed, and leaves no `.tmp`.
 */
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { segmentHeaderBytes, type TxlogError } from '../../wal/index.js';
import { useTempDir } from '../helpers/temp.js';
import { faultyDisk, openQuietWal, payloadFor, readAll, rejectedError, type FaultyOperation } from '../helpers/wal.js';

const newDir = useTempDir('txlog-group-commit-');

/** Settles every promise: the LSN it resolved with, or the TxlogError it rejected with. */
function outcomes(promises: Promise<number>[]): Promise<Array<number | TxlogError>> {
  return Promise.all(promises.map((promise) => promise.catch((error: TxlogError) => error)));
}

describe.each<{ operation: FaultyOperation; code: 'EIO' | 'ENOSPC'; syncOnWorkerThread: boolean; inLog: boolean }>([
  { operation: 'fdatasync', code: 'EIO', syncOnWorkerThread: false, inLog: true },
  { operation: 'fdatasyncAsync', code: 'EIO', syncOnWorkerThread: true, inLog: true },
  { operation: 'writev', code: 'ENOSPC', syncOnWorkerThread: false, inLog: false },
])('a failing $operation ($code)', ({ operation, code, syncOnWorkerThread, inLog }) => {
  it('answers the batch it hit with OUTCOME_UNKNOWN and later appends with IO_ERROR', async () => {
    const dir = newDir();
    const disk = faultyDisk();
    const { wal } = await openQuietWal({ dir, preallocate: false, fsync: 'always', syncOnWorkerThread, platform: disk.platform });
    expect(await wal.append(1, payloadFor(1), 1)).toBe(1);
    disk.fail(operation, code);
    const batch = await outcomes([2, 3, 4].map((lsn) => wal.append(1, payloadFor(lsn), 1)));
    for (const outcome of batch) {
      expect(outcome).toMatchObject({ code: 'OUTCOME_UNKNOWN', retryable: true });
    }
    const later = await rejectedError(() => wal.append(1, payloadFor(5), 1));
    expect(later).toMatchObject({ code: 'IO_ERROR', retryable: false });
    disk.heal();
    await wal.close();

    // Written to the page cache before the sync failed, the batch is in the reopened log: a
    // caller told "failed" would have been told wrong.
    const { wal: reopened } = await openQuietWal({ dir, preallocate: false });
    expect(readAll(reopened).map((record) => record.lsn)).toEqual(inLog ? [1, 2, 3, 4] : [1]);
    await reopened.close();
  });
});

describe('an explicit syncNow whose fdatasync fails (a new primary syncing its epoch record)', () => {
  it('fails the log with IO_ERROR, throws it, and tells the waiting append OUTCOME_UNKNOWN', async () => {
    const dir = newDir();
    const disk = faultyDisk();
    // On the worker thread, as a node runs: record 2's sync is in flight, record 3 waits for the
    // next when the explicit sync fails.
    const { wal } = await openQuietWal({ dir, preallocate: false, fsync: 'always', syncOnWorkerThread: true, platform: disk.platform });
    expect(await wal.append(1, payloadFor(1), 1)).toBe(1);
    const inFlight = wal.append(1, payloadFor(2), 1).catch((error: TxlogError) => error);
    wal.flush();
    const waiting = wal.append(1, payloadFor(3), 1).catch((error: TxlogError) => error);
    wal.flush();
    disk.fail('fdatasync', 'EIO');
    expect(() => wal.syncNow()).toThrow(expect.objectContaining({ code: 'IO_ERROR', retryable: false }));
    expect(await waiting).toMatchObject({ code: 'OUTCOME_UNKNOWN', retryable: true });
    expect(await inFlight).toBe(2);
    expect(await rejectedError(() => wal.append(1, payloadFor(4), 1))).toMatchObject({ code: 'IO_ERROR' });
    expect(() => wal.syncNow()).toThrow(expect.objectContaining({ code: 'IO_ERROR' }));
    disk.heal();
    await wal.close();
  });
});

describe('a rotation that cannot create the next segment', () => {
  it('fails the appends queued for it definitely, names the segment, and leaves no .tmp', async () => {
    const dir = newDir();
    const disk = faultyDisk();
    const segmentBytes = 8192;
    const { wal } = await openQuietWal({ dir, segmentBytes, preallocate: false, fsync: 'always', platform: disk.platform });
    disk.fail('open', 'ENOSPC', (call) => call.path.endsWith('.wal.tmp'));
    const appended = await outcomes(Array.from({ length: 20 }, (_, i) => wal.append(1, payloadFor(i + 1, 1000), 1)));
    const resolved = appended.filter((outcome): outcome is number => typeof outcome === 'number');
    const failed = appended.filter((outcome): outcome is TxlogError => typeof outcome !== 'number');
    expect(resolved.length).toBeGreaterThan(0);
    expect(failed.length).toBeGreaterThan(0);
    const nextSegment = path.join(dir, `${String(resolved.length + 1).padStart(20, '0')}.wal`);
    for (const error of failed) {
      expect(error).toMatchObject({ code: 'IO_ERROR', retryable: false, details: { path: nextSegment, bytesNeeded: segmentHeaderBytes } });
      expect(error.message).toContain(nextSegment);
    }
    disk.heal();
    await wal.close();
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([]);

    const { wal: reopened } = await openQuietWal({ dir, segmentBytes, preallocate: false });
    expect(readAll(reopened).map((record) => record.lsn)).toEqual(resolved);
    await reopened.close();
  });
});
