/**
 * Proves that the WAL is safe to interrupt at every disk operation, using the FileSystem seam: a
 * file system that fails from its Nth mutating call on (what was already written stays, as it
 * does when a process is killed). After a crash inside `truncateAfter`, inside appends that
 * rotate segments, or inside recovery's own cut of a torn tail, the log opens and reads as a
 * prefix of what was written, holding every append that had resolved.
 */
import { describe, expect, it } from 'vitest';
import { nodePlatform, type FileSystem, type Platform } from '../../wal/index.js';
import { useTempDir } from '../helpers/temp.js';
import { openQuietWal, payloadFor } from '../helpers/wal.js';
import { truncateSync } from 'node:fs';
import * as path from 'node:path';

const newDir = useTempDir('txlog-truncate-crash-');
const segmentBytes = 4 * 1024 * 1024;
const recordCount = 160;
const recordSizeBytes = 10_000;
const cutAfterLsn = 20;

/** A file system whose mutating calls fail from call number `failAt` on, once armed. */
function crashingPlatform(): { platform: Platform; arm: (failAt: number) => void; calls: () => number } {
  let armed = false;
  let failAt = Number.POSITIVE_INFINITY;
  let count = 0;
  const step = (): void => {
    if (!armed) return;
    count += 1;
    if (count >= failAt) throw new Error(`simulated crash at mutating call ${count}`);
  };
  const real = nodePlatform.fileSystem;
  const fileSystem: FileSystem = {
    ...real,
    writev: (fd, buffers, position) => (step(), real.writev(fd, buffers, position)),
    fdatasync: (fd) => (step(), real.fdatasync(fd)),
    fdatasyncAsync: (fd) => (step(), real.fdatasyncAsync(fd)),
    truncate: (fd, lengthBytes) => (step(), real.truncate(fd, lengthBytes)),
    unlink: (path) => (step(), real.unlink(path)),
    rename: (from, to) => (step(), real.rename(from, to)),
    syncDirectory: (dir) => (step(), real.syncDirectory(dir)),
  };
  return {
    platform: { ...nodePlatform, fileSystem },
    arm: (at) => {
      armed = true;
      failAt = at;
      count = 0;
    },
    calls: () => count,
  };
}

async function writeLog(dir: string, preallocate: boolean, platform: Platform): Promise<Awaited<ReturnType<typeof openQuietWal>>> {
  const opened = await openQuietWal({ dir, segmentBytes, preallocate, platform, fsync: 'never' });
  const appends: Promise<number>[] = [];
  for (let lsn = 1; lsn <= recordCount; lsn++) appends.push(opened.wal.append(1, payloadFor(lsn, recordSizeBytes), 1));
  await Promise.all(appends);
  opened.wal.syncNow();
  return opened;
}

describe.each([true, false])('a crash inside truncateAfter (preallocate %s)', (preallocate) => {
  it('leaves a log that opens as a prefix, at every crash point', async () => {
    // First count the mutating calls of one whole truncateAfter.
    const counting = crashingPlatform();
    const { wal: whole } = await writeLog(newDir(), preallocate, counting.platform);
    counting.arm(Number.POSITIVE_INFINITY);
    whole.truncateAfter(cutAfterLsn);
    const totalCalls = counting.calls();
    await whole.close();
    expect(totalCalls).toBeGreaterThan(1);

    for (let failAt = 1; failAt <= totalCalls; failAt++) {
      const dir = newDir();
      const crashing = crashingPlatform();
      const { wal } = await writeLog(dir, preallocate, crashing.platform);
      crashing.arm(failAt);
      expect(() => wal.truncateAfter(cutAfterLsn), `crash point ${failAt}`).toThrow(/simulated crash/);
      // The process is gone. Closing the abandoned WAL changes nothing on disk (every mutating
      // call fails from now on) but waits for its background preallocation to stop.
      await wal.close().catch(() => undefined);
      const { wal: reopened } = await openQuietWal({ dir, segmentBytes, preallocate: false, readOnly: true });
      const lsns = [...reopened.read(1)].map((record) => record.lsn);
      expect(lsns.length, `crash point ${failAt}`).toBeGreaterThanOrEqual(cutAfterLsn);
      expect(lsns.length).toBeLessThanOrEqual(recordCount);
      expect(lsns).toEqual(lsns.map((_, i) => i + 1));
      await reopened.close();
    }
  });
});

describe.each([true, false])('a crash while appending across rotations (preallocate %s)', (preallocate) => {
  it('keeps every resolved append, at every crash point', async () => {
    const smallSegmentBytes = 8192;
    const appendAll = async (platform: Platform): Promise<{ resolved: number[] }> => {
      const resolved: number[] = [];
      // A crash can come while the first segment is being created, inside open.
      const opened = await openQuietWal({ dir: currentDir, segmentBytes: smallSegmentBytes, preallocate, platform, fsync: 'always' }).catch(() => undefined);
      if (opened === undefined) return { resolved };
      const wal = opened.wal;
      for (let round = 0; round < 12; round++) {
        const burst = Array.from({ length: 4 }, (_, i) => wal.append(1, payloadFor(round * 4 + i + 1, 700), 1).then((lsn) => resolved.push(lsn)));
        await Promise.allSettled(burst);
      }
      // As above: changes nothing on disk, but stops the background preallocation.
      await wal.close().catch(() => undefined);
      return { resolved };
    };
    let currentDir = newDir();
    const counting = crashingPlatform();
    counting.arm(Number.POSITIVE_INFINITY);
    await appendAll(counting.platform);
    const totalCalls = counting.calls();
    expect(totalCalls).toBeGreaterThan(20);
    for (let failAt = 1; failAt <= totalCalls; failAt++) {
      currentDir = newDir();
      const crashing = crashingPlatform();
      crashing.arm(failAt);
      const { resolved } = await appendAll(crashing.platform);
      const { wal: reopened } = await openQuietWal({ dir: currentDir, segmentBytes: smallSegmentBytes, preallocate });
      const records = [...reopened.read(1)];
      expect(records.map((record) => record.lsn), `crash point ${failAt}`).toEqual(records.map((_, i) => i + 1));
      for (const lsn of resolved) expect(records[lsn - 1]?.lsn, `crash point ${failAt}: resolved LSN ${lsn}`).toBe(lsn);
      await reopened.close();
    }
  });
});

describe('a crash while recovery cuts a torn tail', () => {
  it('leaves a log that the next open recovers, at every crash point', async () => {
    const prepare = async (): Promise<string> => {
      const dir = newDir();
      const { wal } = await openQuietWal({ dir, segmentBytes, preallocate: false, fsync: 'never' });
      const appends: Promise<number>[] = [];
      for (let lsn = 1; lsn <= 150; lsn++) appends.push(wal.append(1, payloadFor(lsn, recordSizeBytes), 1));
      await Promise.all(appends);
      await wal.close();
      // Tear the last record, then write garbage past it, more than one zeroing chunk's worth.
      const segment = path.join(dir, '00000000000000000001.wal');
      truncateSync(segment, 150 * (recordSizeBytes + 40) - 5000);
      return dir;
    };
    const counting = crashingPlatform();
    counting.arm(Number.POSITIVE_INFINITY);
    const first = await openQuietWal({ dir: await prepare(), segmentBytes, preallocate: false, platform: counting.platform });
    expect(first.wal.tail.state).toBe('cut');
    await first.wal.close();
    const totalCalls = counting.calls();
    for (let failAt = 1; failAt <= totalCalls; failAt++) {
      const dir = await prepare();
      const crashing = crashingPlatform();
      crashing.arm(failAt);
      await openQuietWal({ dir, segmentBytes, preallocate: false, platform: crashing.platform }).then(
        (opened) => opened.wal.close().catch(() => undefined),
        () => undefined,
      );
      const { wal } = await openQuietWal({ dir, segmentBytes, preallocate: false });
      const lsns = [...wal.read(1)].map((record) => record.lsn);
      expect(lsns.length, `crash point ${failAt}`).toBeGreaterThanOrEqual(140);
      expect(lsns).toEqual(lsns.map((_, i) => i + 1));
      await wal.close();
    }
  });
});
