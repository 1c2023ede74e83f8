/**
 * Proves recovery (wal/wal.ts `recover`, wal/scan.ts) by seeded random damage, preallocated or
 * not: after the last segment is cut at any byte offset, or any byte of its last record is
 * flipped, reopening yields exactly a prefix of what was written (dense LSNs, every payload
 * equal, never an invented or corrupt record), `tail` reports the cut when bytes were cut, and
 * appending continues on top. A flipped byte in an earlier record of the tail segment is
 * refused with CORRUPT_LOG naming segment, offset and LSN, and no file is modified.
 *
 * Prints its seed; `TXLOG_SEED=<seed> npx vitest run test/wal/recovery.test.ts` replays it.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordPayload, type Wal, type WalRecord } from '../../wal/index.js';
import { seededRandom, testSeed, type SeededRandom } from '../helpers/random.js';
import { useTempDir } from '../helpers/temp.js';
import { openQuietWal, rejectedError } from '../helpers/wal.js';

const newDir = useTempDir('txlog-recovery-');
const iterationsPerMode = 100;

type Damage = 'cut' | 'flip-tail' | 'flip-earlier';

interface Written {
  lsn: number;
  epoch: number;
  type: number;
  payload: Buffer;
  segment: string;
  offset: number;
  size: number;
}

/** A hash of every segment file, names and bytes. (A leftover `spare.tmp` is not part of the log.) */
function directoryHash(dir: string): string {
  const hash = createHash('sha256');
  for (const name of readdirSync(dir).filter((entry) => entry.endsWith('.wal')).sort()) {
    hash.update(name);
    hash.update(readFileSync(path.join(dir, name)));
  }
  return hash.digest('hex');
}

function randomSizeBytes(random: SeededRandom): number {
  const scale = random.pick([40, 400, 1500]);
  return random.integer(0, scale);
}

async function writeRandomLog(dir: string, random: SeededRandom, preallocate: boolean, segmentBytes: number): Promise<Written[]> {
  const { wal } = await openQuietWal({ dir, segmentBytes, preallocate, fsync: 'never' });
  const count = random.integer(1, 40);
  const planned: Array<Omit<Written, 'segment' | 'offset' | 'size'>> = [];
  let epoch = random.integer(0, 3);
  while (planned.length < count) {
    // Bursts of appends in one turn make batches of several frames, like group commit does.
    const burst = Math.min(count - planned.length, random.integer(1, 8));
    const promises: Promise<number>[] = [];
    for (let i = 0; i < burst; i++) {
      if (random.float() < 0.1) epoch += 1;
      const record = { lsn: wal.nextLsn, epoch, type: random.integer(1, 3), payload: random.bytes(randomSizeBytes(random)) };
      planned.push(record);
      promises.push(wal.append(record.type, record.payload, record.epoch));
    }
    expect(await Promise.all(promises)).toEqual(planned.slice(-burst).map((record) => record.lsn));
  }
  const written = [...wal.read(1)].map((record, i) => ({ ...planned[i]!, segment: record.segment, offset: record.offset, size: record.size }));
  await wal.close();
  return written;
}

/** Every record the log returns must equal what was written under that LSN; LSNs dense from 1. */
function expectPrefix(wal: Wal, written: readonly Written[], expectedCount: number): WalRecord[] {
  const records = [...wal.read(1)];
  expect(records.length).toBe(expectedCount);
  expect(wal.lastLsn).toBe(expectedCount);
  records.forEach((record, i) => {
    const expected = written[i]!;
    expect(record.lsn).toBe(i + 1);
    expect(record.epoch).toBe(expected.epoch);
    expect(record.type).toBe(expected.type);
    expect(Buffer.from(recordPayload(record) as Uint8Array).equals(expected.payload)).toBe(true);
  });
  expect(wal.lastEpoch).toBe(expectedCount === 0 ? 0 : written[expectedCount - 1]!.epoch);
  return records;
}

async function runIteration(random: SeededRandom, preallocate: boolean, counts: Record<Damage, number>): Promise<void> {
  const dir = newDir();
  const segmentBytes = random.pick([4096, 8192]);
  const written = await writeRandomLog(dir, random, preallocate, segmentBytes);
  const lastSegment = written[written.length - 1]!.segment;
  const inTail = written.filter((record) => record.segment === lastSegment);
  const lastRecord = inTail[inTail.length - 1]!;
  const segmentPath = path.join(dir, lastSegment);
  const dataEnd = lastRecord.offset + lastRecord.size;

  let damage = random.pick<Damage>(['cut', 'flip-tail', 'flip-earlier']);
  if (damage === 'flip-earlier' && inTail.length < 2) damage = random.pick<Damage>(['cut', 'flip-tail']);
  counts[damage] += 1;

  if (damage === 'flip-earlier') {
    const victim = inTail[random.integer(0, inTail.length - 2)]!;
    const at = victim.offset + random.integer(0, victim.size - 1);
    flipByte(segmentPath, at, random.integer(1, 255));
    const before = directoryHash(dir);
    for (const readOnly of [true, false]) {
      const error = await rejectedError(() => openQuietWal({ dir, segmentBytes, preallocate, readOnly }));
      expect(error.code).toBe('CORRUPT_LOG');
      expect(error.details).toMatchObject({ segment: lastSegment, offset: victim.offset, lsn: victim.lsn });
    }
    expect(directoryHash(dir)).toBe(before);
    return;
  }

  // `survivors`: how many records must come back; `tornAt`: offset of the frame the damage tore.
  let survivors: number;
  let tornAt: number | undefined;
  if (damage === 'cut') {
    const cutAt = random.integer(64, preallocate ? Math.min(segmentBytes, dataEnd + 64) : dataEnd);
    truncateSync(segmentPath, cutAt);
    const kept = written.filter((record) => record.segment !== lastSegment || record.offset + record.size <= cutAt);
    survivors = kept.length;
    tornAt = inTail.find((record) => record.offset < cutAt && cutAt < record.offset + record.size)?.offset;
  } else {
    flipByte(segmentPath, lastRecord.offset + random.integer(0, lastRecord.size - 1), random.integer(1, 255));
    survivors = written.length - 1;
    tornAt = lastRecord.offset;
  }

  // Read-only recovery sees the same prefix, reports the tear, and changes nothing.
  const before = directoryHash(dir);
  const readOnly = await openQuietWal({ dir, segmentBytes, preallocate, readOnly: true });
  expectPrefix(readOnly.wal, written, survivors);
  if (tornAt === undefined) expect(readOnly.wal.tail).toEqual({ state: 'clean' });
  else expect(readOnly.wal.tail).toMatchObject({ state: 'torn', segment: lastSegment, offset: tornAt });
  await readOnly.wal.close();
  expect(directoryHash(dir)).toBe(before);

  const { wal, messages } = await openQuietWal({ dir, segmentBytes, preallocate });
  expectPrefix(wal, written, survivors);
  if (tornAt === undefined) {
    expect(wal.tail).toEqual({ state: 'clean' });
  } else {
    expect(wal.tail).toMatchObject({ state: 'cut', segment: lastSegment, offset: tornAt });
    expect(wal.tail.state === 'cut' && wal.tail.bytes > 0).toBe(true);
    expect(messages.some((message) => message.includes('cut a torn tail'))).toBe(true);
  }
  // Appending continues on top of the prefix, densely, and all of it survives another reopen.
  const extra = random.bytes(randomSizeBytes(random));
  const epoch = Math.max(wal.lastEpoch, 1);
  expect(await wal.append(2, extra, epoch)).toBe(survivors + 1);
  await wal.close();
  const again = await openQuietWal({ dir, segmentBytes, preallocate });
  expect(again.wal.tail).toEqual({ state: 'clean' });
  expectPrefix(again.wal, [...written.slice(0, survivors), { ...lastRecord, lsn: survivors + 1, epoch, type: 2, payload: extra }], survivors + 1);
  await again.wal.close();
}

function flipByte(filePath: string, at: number, mask: number): void {
  const bytes = readFileSync(filePath);
  bytes[at] = bytes[at]! ^ mask;
  writeFileSync(filePath, bytes);
}

describe.each([true, false])('recovery from random damage (preallocate %s)', (preallocate) => {
  it(`yields a prefix after a cut or torn tail, refuses earlier corruption (${iterationsPerMode} iterations)`, async () => {
    const seed = testSeed(`recovery preallocate=${preallocate}`);
    const random = seededRandom(seed);
    const counts: Record<Damage, number> = { cut: 0, 'flip-tail': 0, 'flip-earlier': 0 };
    for (let iteration = 0; iteration < iterationsPerMode; iteration++) {
      try {
        await runIteration(random, preallocate, counts);
      } catch (error) {
        throw new Error(`iteration ${iteration} failed (replay: TXLOG_SEED=${seed}): ${String(error)}`, { cause: error });
      }
    }
    console.log(`[recovery preallocate=${preallocate}] damage kinds: ${JSON.stringify(counts)}`);
    expect(Math.min(...Object.values(counts))).toBeGreaterThan(10);
  });
});
