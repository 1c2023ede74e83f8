/**
 * Proves that `truncateAfter` is safe to interrupt: a crash at any of its disk operations
 * (simulated by a file system that fails from the Nth mutating call on, leaving what was
 * already written in place, as a killed process would) leaves a log that opens and reads as a
 * prefix of what was written, no shorter than the truncation point.
 */
import { describe, expect, it } from 'vitest';
import { nodePlatform, type FileSystem, type Platform } from '../../wal/index.js';
import { useTempDir } from '../helpers/temp.js';
import { openQuietWal, payloadFor } from '../helpers/wal.js';

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
      // The process is gone: the WAL object is abandoned without close.
      const { wal: reopened } = await openQuietWal({ dir, segmentBytes, preallocate: false, readOnly: true });
      const lsns = [...reopened.read(1)].map((record) => record.lsn);
      expect(lsns.length, `crash point ${failAt}`).toBeGreaterThanOrEqual(cutAfterLsn);
      expect(lsns.length).toBeLessThanOrEqual(recordCount);
      expect(lsns).toEqual(lsns.map((_, i) => i + 1));
      await reopened.close();
    }
  });
});
