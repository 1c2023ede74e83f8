/**
 * Proves that this txlog still reads WAL format version 1 exactly as it was first written: the
 * golden log in test/fixtures/wal-v1 (made once by test/fixtures/make-wal-v1.mjs; never
 * regenerated) opens read-only, unchanged, with every record's header, place and payload as
 * recorded here.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { recordPayload } from '../../wal/index.js';
import { openQuietWal } from '../helpers/wal.js';

const fixtureDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'wal-v1');

/** sha256 of each file as committed: a change means someone regenerated or edited the fixture. */
const fileHashes: Record<string, string> = {
  '00000000000000000001.wal': 'd1fac93208da821dc5ae55662976a211bf46ace4d5279e2a0be82557485bc785',
  '00000000000000000006.wal': '25a2cc33cbcae0317db82915b8b7fc1dfa779c9b6cf98011642ca7b1ad37ed4e',
  '00000000000000000008.wal': '1d99d7c4dc1fdfc3e9cf99d7ac57f1b08d62426c427cad42591d2f530a383e0a',
};

/** [type, epoch, payload, segment, offset, size]: the list in make-wal-v1.mjs, with where each landed. */
const goldenRecords: Array<[number, number, unknown, string, number, number]> = [
  [1, 0, { kind: 'hello', text: 'first record' }, '00000000000000000001.wal', 64, 56],
  [2, 0, { clientId: 'c1', requestId: 1, values: [1, -1, 255, 65_536, -2_147_483_648, 2 ** 40, 1.5, true, false, null] }, '00000000000000000001.wal', 120, 93],
  [3, 1, { note: 'a'.repeat(2500) }, '00000000000000000001.wal', 213, 2535],
  [1, 1, 'plain string', '00000000000000000001.wal', 2748, 37],
  [2, 1, { binary: Buffer.from([0, 1, 2, 253, 254, 255]), nested: { deep: { list: ['x', 'y'] } } }, '00000000000000000001.wal', 2785, 70],
  [3, 2, { note: 'b'.repeat(2500) }, '00000000000000000006.wal', 64, 2535],
  [1, 2, 42, '00000000000000000006.wal', 2599, 25],
  [2, 2, { note: 'c'.repeat(2000), unicode: 'héllo wörld ✓' }, '00000000000000000008.wal', 64, 2061],
  [3, 3, [], '00000000000000000008.wal', 2125, 25],
];

function hashes(): Record<string, string> {
  return Object.fromEntries(
    readdirSync(fixtureDir)
      .sort()
      .map((name) => [name, createHash('sha256').update(readFileSync(path.join(fixtureDir, name))).digest('hex')]),
  );
}

describe('golden fixture wal-v1', () => {
  it('is the fixture as committed', () => {
    expect(hashes()).toEqual(fileHashes);
  });

  it('opens read-only and reads every record as written, from any LSN, changing nothing', async () => {
    const { wal, messages } = await openQuietWal({ dir: fixtureDir, readOnly: true, segmentBytes: 4096 });
    expect(wal.tail).toEqual({ state: 'clean' });
    expect([wal.firstLsn, wal.lastLsn, wal.lastEpoch]).toEqual([1, 9, 3]);
    expect(wal.segmentNames).toEqual(Object.keys(fileHashes));
    const records = [...wal.read(1)];
    expect(records.map((record) => [record.type, record.epoch, recordPayload(record), record.segment, record.offset, record.size])).toEqual(
      goldenRecords,
    );
    expect(records.map((record) => record.lsn)).toEqual(goldenRecords.map((_, i) => i + 1));
    for (let from = 1; from <= 9; from++) expect([...wal.read(from)][0]?.lsn).toBe(from);
    await wal.close();
    expect(messages).toEqual([]);
    expect(hashes()).toEqual(fileHashes);
  });

  it('opens read-only with the default options too (segment size is not part of the format)', async () => {
    const { wal } = await openQuietWal({ dir: fixtureDir, readOnly: true });
    expect([...wal.read(1)].length).toBe(9);
    await wal.close();
    expect(hashes()).toEqual(fileHashes);
  });
});
