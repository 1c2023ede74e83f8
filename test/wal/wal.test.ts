/**
 * Proves the behaviour of wal/wal.ts on a real disk: rotation by size (preallocated or not),
 * group commit (dense LSNs in order, BUSY / TOO_LARGE / NOT_SERIALIZABLE at the edge), reads
 * from any LSN across segments, following the tail, truncation at both ends (dense appends
 * after, survives reopen, epoch recomputed), reopen, every fsync policy, and replicated frames.
 */
import { readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Wal, encodePayload, recordPayload, type FsyncPolicy, type WalRecord } from '../../wal/index.js';
import { encodeFrame } from '../../wal/format.js';
import { nodeFileSystem, nodePlatform } from '../../wal/platform.js';
import { useTempDir } from '../helpers/temp.js';
import {
  openQuietWal,
  payloadFor,
  payloadsOf,
  readAll,
  rejectedError,
  rejectionCode,
  thrownError,
} from '../helpers/wal.js';

const newDir = useTempDir('txlog-wal-');
const segmentBytes = 8192;

/** Appends records lsn..lsn+count-1 with payloadFor(lsn, sizeBytes), all in one turn. */
async function appendMany(wal: Wal, count: number, options: { epoch?: number; sizeBytes?: number; type?: number } = {}): Promise<number[]> {
  const first = wal.nextLsn;
  const promises: Promise<number>[] = [];
  for (let i = 0; i < count; i++) {
    promises.push(wal.append(options.type ?? 1, payloadFor(first + i, options.sizeBytes ?? 300), options.epoch ?? 1));
  }
  return Promise.all(promises);
}

function expectRecords(records: readonly WalRecord[], fromLsn: number, toLsn: number, sizeBytes = 300): void {
  expect(records.map((record) => record.lsn)).toEqual(range(fromLsn, toLsn));
  expect(payloadsOf(records)).toEqual(range(fromLsn, toLsn).map((lsn) => payloadFor(lsn, sizeBytes)));
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

function segmentFiles(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.endsWith('.wal')).sort();
}

describe.each([true, false])('rotation by size (preallocate %s)', (preallocate) => {
  it('starts a new segment when the next frame does not fit, and reads back across them', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, segmentBytes, preallocate });
    const lsns = await appendMany(wal, 120);
    expect(lsns).toEqual(range(1, 120));
    const names = wal.segmentNames;
    expect(names.length).toBeGreaterThanOrEqual(4);
    expectRecords(readAll(wal), 1, 120);
    // Each segment is named by its first LSN, which follows the previous one's last.
    const records = readAll(wal);
    for (const name of names) {
      const inSegment = records.filter((record) => record.segment === name);
      expect(inSegment.length).toBeGreaterThan(0);
      expect(name).toBe(`${String(inSegment[0]!.lsn).padStart(20, '0')}.wal`);
      const last = inSegment[inSegment.length - 1]!;
      expect(last.offset + last.size).toBeLessThanOrEqual(segmentBytes);
    }
    await wal.close();
    for (const name of segmentFiles(dir)) {
      const sizeBytes = statSync(path.join(dir, name)).size;
      if (preallocate) expect(sizeBytes).toBe(segmentBytes);
      else expect(sizeBytes).toBeLessThanOrEqual(segmentBytes);
    }
    expect(segmentFiles(dir)).toEqual(names);
    // No temporary file is left behind after close.
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp') && name !== 'spare.tmp')).toEqual([]);
    const reopened = await openQuietWal({ dir, segmentBytes, preallocate });
    expect(reopened.wal.tail).toEqual({ state: 'clean' });
    expect(reopened.wal.lastLsn).toBe(120);
    expectRecords(readAll(reopened.wal), 1, 120);
    await reopened.wal.close();
  });

  it('rotates correctly when records arrive one at a time', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, segmentBytes, preallocate });
    for (let lsn = 1; lsn <= 60; lsn++) {
      expect(await wal.append(2, payloadFor(lsn, 300), 1)).toBe(lsn);
    }
    expect(wal.segmentNames.length).toBeGreaterThanOrEqual(2);
    expectRecords(readAll(wal), 1, 60);
    await wal.close();
  });

  it('holds a record of exactly recordBytesMax in one segment', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, segmentBytes, preallocate });
    const max = wal.options.recordBytesMax;
    const payload = payloadOfPackedSize(max);
    await wal.append(1, { small: 1 }, 1);
    expect(await wal.append(1, payload, 1)).toBe(2);
    expect(await wal.append(1, payload, 1)).toBe(3);
    expect(wal.segmentNames.length).toBe(3);
    const records = readAll(wal);
    expect(records.map((record) => record.size)).toEqual([expect.any(Number), max + 24, max + 24]);
    await wal.close();
  });
});

/** A Buffer payload whose msgpack encoding is exactly `sizeBytes` long. */
function payloadOfPackedSize(sizeBytes: number): Buffer {
  for (let length = sizeBytes; length > sizeBytes - 8; length--) {
    const candidate = Buffer.alloc(length, 7);
    if (encodePayload(candidate).length === sizeBytes) return candidate;
  }
  throw new Error(`no Buffer packs to exactly ${sizeBytes} bytes`);
}

describe('group commit', () => {
  it('gives many concurrent appends dense LSNs in call order, in few batches', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, segmentBytes: 64 * 1024, fsync: 'always' });
    const batches: Array<[number, number]> = [];
    wal.onBatch((_frames, firstLsn, lastLsn) => batches.push([firstLsn, lastLsn]));
    const lsns = await appendMany(wal, 1000, { sizeBytes: 40 });
    expect(lsns).toEqual(range(1, 1000));
    // Rotation and batch limits split the work, but nowhere near one write per record.
    expect(batches.length).toBeLessThan(20);
    expect(batches[0]![0]).toBe(1);
    expect(batches[batches.length - 1]![1]).toBe(1000);
    for (let i = 1; i < batches.length; i++) expect(batches[i]![0]).toBe(batches[i - 1]![1] + 1);
    expect(wal.durableLsn).toBe(1000);
    expectRecords(readAll(wal), 1, 1000, 40);
    await wal.close();
  });

  it('with syncOnWorkerThread, keeps LSN order of resolution and rotates only once synced', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, segmentBytes, fsync: 'always', syncOnWorkerThread: true });
    const resolvedInOrder: number[] = [];
    const waves: Promise<number>[] = [];
    // Waves started while earlier syncs are still running on the worker thread, across rotations.
    for (let wave = 0; wave < 20; wave++) {
      for (let i = 0; i < 25; i++) {
        waves.push(wal.append(1, payloadFor(wave * 25 + i + 1, 300), 1).then((lsn) => (resolvedInOrder.push(lsn), lsn)));
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await Promise.all(waves)).toEqual(range(1, 500));
    expect(resolvedInOrder).toEqual(range(1, 500));
    expect(wal.durableLsn).toBe(500);
    expect(wal.segmentNames.length).toBeGreaterThan(10);
    await wal.close();
    const { wal: reopened } = await openQuietWal({ dir, segmentBytes });
    expectRecords(readAll(reopened), 1, 500);
    await reopened.close();
  });

  it('respects batchRecordsMax', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, batchRecordsMax: 7, preallocate: false });
    const sizes: number[] = [];
    wal.onBatch((frames) => sizes.push(frames.length));
    await appendMany(wal, 50, { sizeBytes: 10 });
    expect(Math.max(...sizes)).toBeLessThanOrEqual(7);
    expect(sizes.reduce((sum, size) => sum + size, 0)).toBe(50);
    await wal.close();
  });

  it('fails append number queueRecordsMax + 1 with BUSY (retryable), then accepts again', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, queueRecordsMax: 10, preallocate: false });
    const accepted = range(1, 10).map((lsn) => wal.append(1, payloadFor(lsn), 1));
    const refused = await rejectedError(() => wal.append(1, payloadFor(11), 1));
    expect(refused.code).toBe('BUSY');
    expect(refused.retryable).toBe(true);
    expect(await Promise.all(accepted)).toEqual(range(1, 10));
    // The refusal did not use up an LSN.
    expect(await wal.append(1, payloadFor(11, 300), 1)).toBe(11);
    expect(readAll(wal).map((record) => record.lsn)).toEqual(range(1, 11));
    await wal.close();
  });

  it('refuses a replicated frame past queueRecordsMax with BUSY at once, taking nothing (a backup says BUSY, not a protocol error)', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, queueRecordsMax: 3, preallocate: false });
    const frameAt = (lsn: number): Buffer => encodeFrame({ type: 1, epoch: 1, lsn }, encodePayload(payloadFor(lsn)));
    const accepted = range(1, 3).map((lsn) => wal.appendFrame(frameAt(lsn)));
    let called = false;
    const refused = wal.appendFrameWith(frameAt(4), () => (called = true), () => (called = true));
    expect(refused).toMatchObject({ code: 'BUSY', retryable: true });
    expect(wal.nextLsn).toBe(4);
    expect(await Promise.all(accepted)).toEqual(range(1, 3));
    expect(called).toBe(false);
    expect(wal.appendFrameWith(frameAt(5), () => undefined, () => undefined)).toMatchObject({ code: 'BAD_REQUEST' });
    expect(await wal.appendFrame(frameAt(4))).toBe(4);
    await wal.close();
  });

  it('counts appends written and waiting for their off-thread fdatasync against queueRecordsMax', async () => {
    // A sync that takes its time: the appends leave the queue when written, and must still count.
    let finishSync: () => void = () => undefined;
    const syncing = new Promise<void>((resolve) => (finishSync = resolve));
    const platform = { ...nodePlatform, fileSystem: { ...nodeFileSystem, fdatasyncAsync: async (fd: number) => (await syncing, nodeFileSystem.fdatasyncAsync(fd)) } };
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, queueRecordsMax: 10, preallocate: false, syncOnWorkerThread: true, platform });
    const accepted = range(1, 10).map((lsn) => wal.append(1, payloadFor(lsn), 1));
    wal.flush();
    expect(wal.appendsWaiting).toBe(10);
    const eleventh = wal.append(1, payloadFor(11), 1);
    eleventh.catch(() => undefined);
    finishSync();
    expect((await rejectedError(() => eleventh)).code).toBe('BUSY');
    expect(await Promise.all(accepted)).toEqual(range(1, 10));
    expect(wal.appendsWaiting).toBe(0);
    expect(await wal.append(1, payloadFor(11), 1)).toBe(11);
    await wal.close();
  });

  it('fails a payload of recordBytesMax + 1 bytes with TOO_LARGE and accepts recordBytesMax', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, recordBytesMax: 1000, preallocate: false });
    const refused = await rejectedError(() => wal.append(1, payloadOfPackedSize(1001), 1));
    expect(refused.code).toBe('TOO_LARGE');
    expect(refused.details).toMatchObject({ sizeBytes: 1001, limitBytes: 1000 });
    expect(await wal.append(1, payloadOfPackedSize(1000), 1)).toBe(1);
    await wal.close();
  });

  it('fails a payload msgpack cannot carry with NOT_SERIALIZABLE, using up no LSN', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, preallocate: false });
    expect(await rejectionCode(wal.append(1, () => 1, 1))).toBe('NOT_SERIALIZABLE');
    expect(await rejectionCode(wal.append(1, { callback: () => 1 }, 1))).toBe('NOT_SERIALIZABLE');
    expect(await rejectionCode(wal.append(1, Symbol('s'), 1))).toBe('NOT_SERIALIZABLE');
    expect(await rejectionCode(wal.append(1, 10n ** 30n, 1))).toBe('NOT_SERIALIZABLE');
    expect(await wal.append(1, { fine: true }, 1)).toBe(1);
    expect(payloadsOf(readAll(wal))).toEqual([{ fine: true }]);
    await wal.close();
  });

  it('refuses appends after close (CLOSED) and on a read-only log (BAD_REQUEST)', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, preallocate: false });
    await wal.append(1, 'x', 1);
    await wal.close();
    expect(await rejectionCode(wal.append(1, 'y', 1))).toBe('CLOSED');
    const readOnly = await openQuietWal({ dir, readOnly: true });
    expect(await rejectionCode(readOnly.wal.append(1, 'y', 1))).toBe('BAD_REQUEST');
    expect(thrownError(() => readOnly.wal.truncateAfter(0)).code).toBe('BAD_REQUEST');
    expect(thrownError(() => readOnly.wal.truncateBefore(2)).code).toBe('BAD_REQUEST');
    expect(readAll(readOnly.wal).map((record) => record.lsn)).toEqual([1]);
    await readOnly.wal.close();
  });

  it('opening a missing directory read-only fails with NOT_FOUND', async () => {
    const dir = path.join(newDir(), 'missing');
    expect((await rejectedError(() => Wal.open({ dir, readOnly: true }))).code).toBe('NOT_FOUND');
  });
});

describe('reading', () => {
  it('reads from any LSN, and any range, across segments', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, segmentBytes, preallocate: false });
    await appendMany(wal, 90);
    expect(wal.segmentNames.length).toBeGreaterThanOrEqual(3);
    for (let from = 1; from <= 91; from++) {
      const records = [...wal.read(from)];
      expect(records.length).toBe(90 - from + 1);
      if (records.length > 0) expect(records[0]!.lsn).toBe(from);
    }
    expectRecords([...wal.read(17, 63)], 17, 63);
    expectRecords([...wal.read(0, 2)], 1, 2);
    expect([...wal.read(50, 49)]).toEqual([]);
    await wal.close();
    // A fresh process reads the sealed segments by indexing them on first use.
    const { wal: reopened } = await openQuietWal({ dir, segmentBytes, preallocate: false });
    expectRecords([...reopened.read(44, 46)], 44, 46);
    expectRecords([...reopened.read(1)], 1, 90);
    await reopened.close();
  });

  it('gives frames that stay as they were read while later ones are read (a segment read in several chunks)', async () => {
    const dir = newDir();
    // 1,500 records of ~2.5 KiB: one segment of ~3.7 MiB, read in 1 MiB chunks.
    const { wal } = await openQuietWal({ dir, segmentBytes: 8 * 1024 * 1024, preallocate: false });
    await appendMany(wal, 1500, { sizeBytes: 2500 });
    expect(wal.segmentNames.length).toBe(1);
    await wal.close();
    // Reopened, so the sealed-or-tail segment is walked from the file, not the writer's memory.
    const { wal: reopened } = await openQuietWal({ dir, segmentBytes: 8 * 1024 * 1024, preallocate: false });
    const records = readAll(reopened);
    expectRecords(records, 1, 1500, 2500);
    await reopened.close();
  });

  it('reports type, epoch, segment, offset and size of each record', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, preallocate: false });
    await wal.append(1, 'a', 0);
    await wal.append(2, 'bb', 3);
    await wal.append(3, 'ccc', 3);
    const records = readAll(wal);
    expect(records.map(({ lsn, epoch, type, segment, offset }) => ({ lsn, epoch, type, segment, offset }))).toEqual([
      { lsn: 1, epoch: 0, type: 1, segment: '00000000000000000001.wal', offset: 64 },
      { lsn: 2, epoch: 3, type: 2, segment: '00000000000000000001.wal', offset: 64 + records[0]!.size },
      { lsn: 3, epoch: 3, type: 3, segment: '00000000000000000001.wal', offset: 64 + records[0]!.size + records[1]!.size },
    ]);
    expect(records.map((record) => recordPayload(record))).toEqual(['a', 'bb', 'ccc']);
    expect(wal.lastEpoch).toBe(3);
    await wal.close();
  });
});

describe('follow', () => {
  it('yields the records already written, then new ones as they are written, and stops on abort', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, segmentBytes, preallocate: false });
    await appendMany(wal, 30);
    const controller = new AbortController();
    const seen: WalRecord[] = [];
    const following = (async () => {
      for await (const record of wal.follow(5, controller.signal)) {
        seen.push(record);
        if (record.lsn === 100) controller.abort();
      }
    })();
    await appendMany(wal, 40);
    for (let lsn = 71; lsn <= 100; lsn++) await wal.append(1, payloadFor(lsn, 300), 1);
    await following;
    expectRecords(seen, 5, 100);
    // After the abort, the follower is gone: more appends reach no one.
    await appendMany(wal, 3);
    expect(seen.length).toBe(96);
    await wal.close();
  });

  it('stops a waiting follower when aborted or when the log closes', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, preallocate: false });
    await wal.append(1, payloadFor(1, 300), 1);
    const controller = new AbortController();
    const abortedFollower = (async () => {
      const lsns: number[] = [];
      for await (const record of wal.follow(1, controller.signal)) lsns.push(record.lsn);
      return lsns;
    })();
    const closedFollower = (async () => {
      const lsns: number[] = [];
      for await (const record of wal.follow(2)) lsns.push(record.lsn);
      return lsns;
    })();
    await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort();
    expect(await abortedFollower).toEqual([1]);
    await wal.append(1, payloadFor(2, 300), 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await wal.close();
    expect(await closedFollower).toEqual([2]);
  });

  it('fails with NOT_FOUND when asked to start below the first kept LSN', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, segmentBytes, preallocate: false });
    await appendMany(wal, 60);
    wal.truncateBefore(40);
    expect(wal.firstLsn).toBeGreaterThan(1);
    const follower = wal.follow(1);
    expect(await rejectionCode(follower.next())).toBe('NOT_FOUND');
    await wal.close();
  });
});

describe('truncateAfter', () => {
  it.each([true, false])('cuts across segments; appends continue densely and survive reopen (preallocate %s)', async (preallocate) => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, segmentBytes, preallocate });
    await appendMany(wal, 100);
    const segmentsBefore = wal.segmentNames.length;
    expect(segmentsBefore).toBeGreaterThanOrEqual(4);
    wal.truncateAfter(30);
    expect(wal.lastLsn).toBe(30);
    expect(wal.durableLsn).toBe(30);
    expect(wal.nextLsn).toBe(31);
    expect(wal.segmentNames.length).toBeLessThan(segmentsBefore);
    expect(segmentFiles(dir)).toEqual(wal.segmentNames);
    expectRecords(readAll(wal), 1, 30);
    // The cut records' LSNs are given again, with new content.
    const again = await appendMany(wal, 50, { sizeBytes: 301 });
    expect(again).toEqual(range(31, 80));
    await wal.close();
    const { wal: reopened } = await openQuietWal({ dir, segmentBytes, preallocate });
    expect(reopened.tail).toEqual({ state: 'clean' });
    expect(reopened.lastLsn).toBe(80);
    const records = readAll(reopened);
    expectRecords(records.slice(0, 30), 1, 30);
    expectRecords(records.slice(30), 31, 80, 301);
    await reopened.close();
  });

  it('cuts exactly at a segment boundary, and to nothing', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, segmentBytes, preallocate: false });
    await appendMany(wal, 60);
    const secondFirstLsn = Number(wal.segmentNames[1]!.slice(0, 20));
    wal.truncateAfter(secondFirstLsn - 1);
    expect(wal.segmentNames.length).toBe(1);
    expectRecords(readAll(wal), 1, secondFirstLsn - 1);
    expect(await wal.append(1, payloadFor(secondFirstLsn, 300), 1)).toBe(secondFirstLsn);
    expect(wal.segmentNames.length).toBe(2);
    wal.truncateAfter(0);
    expect(wal.lastLsn).toBe(0);
    expect(wal.lastEpoch).toBe(0);
    expect(readAll(wal)).toEqual([]);
    expect(await wal.append(1, payloadFor(1, 300), 1)).toBe(1);
    await wal.close();
    const { wal: reopened } = await openQuietWal({ dir, segmentBytes, preallocate: false });
    expectRecords(readAll(reopened), 1, 1);
    await reopened.close();
  });

  it('recomputes the epoch from the records kept, also when the kept tail is in an earlier segment', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, segmentBytes, preallocate: false });
    await appendMany(wal, 25, { epoch: 1 });
    await appendMany(wal, 25, { epoch: 2 });
    await appendMany(wal, 25, { epoch: 3 });
    expect(wal.lastEpoch).toBe(3);
    wal.truncateAfter(40);
    expect(wal.lastEpoch).toBe(2);
    wal.truncateAfter(25);
    expect(wal.lastEpoch).toBe(1);
    // An append at the old epoch is legal again; the log stays as written after reopen.
    expect(await wal.append(1, payloadFor(26, 300), 1)).toBe(26);
    await wal.close();
    const { wal: reopened } = await openQuietWal({ dir, segmentBytes, preallocate: false });
    expect(reopened.lastEpoch).toBe(1);
    expect(readAll(reopened).map((record) => record.epoch)).toEqual(range(1, 26).map(() => 1));
    await reopened.close();
  });

  it('keeps the epoch of the segment before when the active segment is left empty', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, segmentBytes, preallocate: false });
    await appendMany(wal, 40, { epoch: 4 });
    const secondFirstLsn = Number(wal.segmentNames[1]!.slice(0, 20));
    wal.truncateBefore(secondFirstLsn); // the first segment goes; the second becomes the first
    expect(wal.firstLsn).toBe(secondFirstLsn);
    await appendMany(wal, 30, { epoch: 5 });
    const lastFirstLsn = Number(wal.segmentNames[wal.segmentNames.length - 1]!.slice(0, 20));
    wal.truncateAfter(lastFirstLsn - 1);
    expect(wal.lastLsn).toBe(lastFirstLsn - 1);
    const keptEpoch = readAll(wal).at(-1)!.epoch;
    expect(wal.lastEpoch).toBe(keptEpoch);
    await wal.close();
  });

  it('fails with BUSY while appends are queued, and with BAD_REQUEST below the first kept LSN', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, segmentBytes, preallocate: false });
    await appendMany(wal, 60);
    const pending = wal.append(1, payloadFor(61, 300), 1);
    expect(thrownError(() => wal.truncateAfter(10)).code).toBe('BUSY');
    expect(await pending).toBe(61);
    wal.truncateBefore(50);
    expect(thrownError(() => wal.truncateAfter(wal.firstLsn - 2)).code).toBe('BAD_REQUEST');
    await wal.close();
    expect(thrownError(() => wal.truncateAfter(1)).code).toBe('CLOSED');
  });
});

describe('truncateBefore', () => {
  it('drops whole segments below the LSN, never the active one, and survives reopen', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, segmentBytes, preallocate: false });
    await appendMany(wal, 100);
    const names = wal.segmentNames;
    const firstLsns = names.map((name) => Number(name.slice(0, 20)));
    expect(wal.truncateBefore(1)).toBe(0);
    // An LSN inside the third segment drops the first two.
    const removed = wal.truncateBefore(firstLsns[2]! + 1);
    expect(removed).toBe(2);
    expect(wal.firstLsn).toBe(firstLsns[2]);
    expect(segmentFiles(dir)).toEqual(names.slice(2));
    expect((await rejectedError(async () => [...wal.read(1)])).code).toBe('NOT_FOUND');
    expect(thrownError(() => [...wal.read(firstLsns[2]! - 1)]).details).toMatchObject({ firstLsn: firstLsns[2] });
    expectRecords(readAll(wal), firstLsns[2]!, 100);
    // Retention never drops the active segment, even past the last LSN.
    wal.truncateBefore(1_000_000);
    expect(wal.segmentNames).toEqual([names[names.length - 1]]);
    expect(await wal.append(1, payloadFor(101, 300), 1)).toBe(101);
    await wal.close();
    const { wal: reopened } = await openQuietWal({ dir, segmentBytes, preallocate: false });
    expect(reopened.firstLsn).toBe(firstLsns[firstLsns.length - 1]);
    expect(reopened.lastLsn).toBe(101);
    expectRecords(readAll(reopened), firstLsns[firstLsns.length - 1]!, 101);
    expect(thrownError(() => [...reopened.read(1, 5)]).code).toBe('NOT_FOUND');
    await reopened.close();
  });
});

describe.each<FsyncPolicy>(['always', 'interval', 'never'])('fsync %s', (fsync) => {
  it('keeps every record readable after close and reopen', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, fsync, fsyncIntervalMs: 5, segmentBytes, preallocate: fsync !== 'never' });
    await appendMany(wal, 80);
    expect(wal.lastLsn).toBe(80);
    if (fsync === 'always') expect(wal.durableLsn).toBe(80);
    if (fsync === 'interval') {
      await new Promise((resolve) => setTimeout(resolve, 40));
      expect(wal.durableLsn).toBe(80);
    }
    await wal.close();
    expect(wal.durableLsn).toBe(80);
    const { wal: reopened } = await openQuietWal({ dir, fsync, segmentBytes });
    expect(reopened.tail).toEqual({ state: 'clean' });
    expect(reopened.lastLsn).toBe(80);
    expect(reopened.lastEpoch).toBe(1);
    expect(reopened.nextLsn).toBe(81);
    expectRecords(readAll(reopened), 1, 80);
    expect(await reopened.append(1, payloadFor(81, 300), 1)).toBe(81);
    await reopened.close();
  });
});

describe('reopen', () => {
  it('an empty log reopens empty; close is idempotent', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, segmentBytes });
    await wal.close();
    await wal.close();
    const { wal: reopened } = await openQuietWal({ dir, segmentBytes });
    expect([reopened.firstLsn, reopened.lastLsn, reopened.nextLsn, reopened.lastEpoch]).toEqual([1, 0, 1, 0]);
    expect(reopened.tail).toEqual({ state: 'clean' });
    await reopened.close();
  });

  it('close writes what is still queued', async () => {
    const dir = newDir();
    const { wal } = await openQuietWal({ dir, preallocate: false });
    const pending = [wal.append(1, 'a', 1), wal.append(1, 'b', 1)];
    await wal.close();
    expect(await Promise.all(pending)).toEqual([1, 2]);
    const { wal: reopened } = await openQuietWal({ dir, preallocate: false });
    expect(payloadsOf(readAll(reopened))).toEqual(['a', 'b']);
    await reopened.close();
  });
});

describe('appendFrame (replicated frames)', () => {
  it('writes frames from another log byte for byte', async () => {
    const primary = await openQuietWal({ dir: newDir(), segmentBytes, preallocate: false });
    const backup = await openQuietWal({ dir: newDir(), segmentBytes, preallocate: false });
    await appendMany(primary.wal, 50, { epoch: 2 });
    for (const record of readAll(primary.wal)) {
      expect(await backup.wal.appendFrame(record.frame)).toBe(record.lsn);
    }
    expect(backup.wal.lastEpoch).toBe(2);
    expect(readAll(backup.wal).map((record) => record.frame)).toEqual(readAll(primary.wal).map((record) => record.frame));
    await primary.wal.close();
    await backup.wal.close();
  });

  it('rejects a wrong LSN and a bad checksum with BAD_REQUEST, a lower epoch with STALE_EPOCH', async () => {
    const { wal } = await openQuietWal({ dir: newDir(), preallocate: false });
    const frame = (lsn: number, epoch: number): Buffer => encodeFrame({ type: 1, epoch, lsn }, encodePayload({ lsn }));
    expect(await wal.appendFrame(frame(1, 5))).toBe(1);

    const wrongLsn = await rejectedError(() => wal.appendFrame(frame(3, 5)));
    expect(wrongLsn.code).toBe('BAD_REQUEST');
    expect(wrongLsn.details).toMatchObject({ lsn: 3, expectedLsn: 2 });
    expect(await rejectionCode(wal.appendFrame(frame(1, 5)))).toBe('BAD_REQUEST');

    const damaged = frame(2, 5);
    damaged[damaged.length - 1] = damaged[damaged.length - 1]! ^ 0xff;
    expect(await rejectionCode(wal.appendFrame(damaged))).toBe('BAD_REQUEST');
    const padded = Buffer.concat([frame(2, 5), Buffer.alloc(1)]);
    expect(await rejectionCode(wal.appendFrame(padded))).toBe('BAD_REQUEST');
    expect(await rejectionCode(wal.appendFrame(frame(2, 5).subarray(0, 30)))).toBe('BAD_REQUEST');

    const stale = await rejectedError(() => wal.appendFrame(frame(2, 4)));
    expect(stale.code).toBe('STALE_EPOCH');

    // None of the refusals used up the LSN.
    expect(await wal.appendFrame(frame(2, 6))).toBe(2);
    expect(wal.lastEpoch).toBe(6);
    expect(payloadsOf(readAll(wal))).toEqual([{ lsn: 1 }, { lsn: 2 }]);
    await wal.close();
  });
});
