/**
 * Proves that `txlog inspect`, run as a real process from the built CLI:
 * - summarises a multi-segment log correctly (per segment and in total, text and JSON);
 * - lists every record with its frame position and decoded fields (`--records --json`), and
 *   honours `--from`, `--limit`, `--stream` and `--client`;
 * - `--verify` exits 0 on a sound log, reports a torn tail (exit 0, or 3 with `--strict`) the
 *   way recovery sees it, and exits 3 naming segment, byte offset and LSN for a flipped byte in
 *   an early segment, a bad record followed by good ones, and a missing segment;
 * - refuses each bad input (missing directory, empty directory, a file, not a segment, a newer
 *   format, bad flag values) with one line on stderr, no stack trace, and its exit code;
 * - never changes a byte of the store it reads.
 */
import { closeSync, copyFileSync, cpSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { crc32 } from 'node:zlib';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Wal } from '../../wal/index.js';
import { encodeFrame, encodePayload } from '../../wal/format.js';
import { recordTypes } from '../../engine/records.js';
import { useTempDir } from '../helpers/temp.js';
import { fingerprint, jsonLines, runCli, segmentNames, useBuiltCli, writeLog, type CliResult, type WrittenRecord } from './helpers.js';

const tempDir = useTempDir('txlog-cli-inspect-');

const cli = useBuiltCli();

/** 40 transactions in 4 KiB segments: 84 records over several segments. */
const shape = { transactions: 40, segmentBytes: 4096 };

async function storeWithLog(): Promise<{ storeDir: string; written: WrittenRecord[] }> {
  const storeDir = tempDir();
  const written = await writeLog(storeDir, shape);
  return { storeDir, written };
}

/** Records as `--records --json` shows them: the way to find a frame's segment and offset. */
async function listRecords(storeDir: string): Promise<Array<Record<string, unknown>>> {
  const result = await runCli(cli(), ['inspect', storeDir, '--records', '--json']);
  expect(result.exitCode, result.stderr).toBe(0);
  return jsonLines(result.stdout);
}

function overwrite(file: string, offset: number, bytes: Buffer): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}

function expectOneErrorLine(result: CliResult, code: string): void {
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^txlog: ${code}: `));
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

describe('summary', () => {
  it('describes every segment and the totals, in text and in JSON', async () => {
    const { storeDir, written } = await storeWithLog();
    const segments = segmentNames(storeDir);
    expect(segments.length).toBeGreaterThanOrEqual(3);

    const text = await runCli(cli(), ['inspect', storeDir]);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stderr).toBe('');
    for (const segment of segments) expect(text.stdout).toContain(segment);
    expect(text.stdout).toContain(`records  ${written.length} (`);
    expect(text.stdout).toContain(`LSN 1..${written.length}`);
    expect(text.stdout).toContain('tail     clean');
    expect(text.stdout).toContain('format   version 1');

    const json = await runCli(cli(), ['inspect', storeDir, '--json']);
    expect(json.exitCode, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout) as Record<string, unknown>;
    const count = (type: number): number => written.filter((record) => record.type === type).length;
    expect(report).toMatchObject({
      result: 'clean',
      formatVersions: [1],
      records: written.length,
      recordsByType: { commit: count(recordTypes.commit), journal: count(recordTypes.journal), epoch: 2 },
      firstLsn: 1,
      lastLsn: written.length,
      epochs: [1, 2],
      tail: { state: 'clean' },
      problems: [],
    });
    const perSegment = report['segments'] as Array<Record<string, number | string>>;
    expect(perSegment.map((segment) => segment['segment'])).toEqual(segments);
    expect(perSegment.reduce((sum, segment) => sum + Number(segment['records']), 0)).toBe(written.length);
    perSegment.forEach((segment, index) => {
      expect(segment['sizeBytes']).toBe(shape.segmentBytes); // preallocated
      const next = perSegment[index + 1];
      if (next !== undefined) expect(next['firstLsn']).toBe(Number(segment['lastLsn']) + 1);
    });
  });

  it('accepts the wal directory itself, and ignores spare and temporary files', async () => {
    const { storeDir, written } = await storeWithLog();
    writeFileSync(path.join(storeDir, 'wal', 'leftover.tmp'), 'not a segment');
    const result = await runCli(cli(), ['inspect', path.join(storeDir, 'wal'), '--json']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ records: written.length, walDir: path.join(storeDir, 'wal') });
  });

  it('reads the golden v1 fixture (from a copy)', async () => {
    const copy = tempDir();
    cpSync(new URL('../fixtures/wal-v1', import.meta.url), path.join(copy, 'wal'), { recursive: true });
    const result = await runCli(cli(), ['inspect', copy, '--verify', '--json']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ result: 'clean', formatVersions: [1], firstLsn: 1 });
  });
});

describe('--records', () => {
  it('prints each record with its frame position and decoded fields', async () => {
    const { storeDir, written } = await storeWithLog();
    const records = await listRecords(storeDir);
    expect(records.map((record) => record['lsn'])).toEqual(written.map((record) => record.lsn));
    const segments = new Set(segmentNames(storeDir));
    for (const [index, record] of records.entries()) {
      const expected = written[index]!;
      expect(record['epoch']).toBe(expected.epoch);
      expect(segments.has(String(record['segment']))).toBe(true);
      // The offset and size point at this very frame: length, type and LSN read from the file.
      const file = readFileSync(path.join(storeDir, 'wal', String(record['segment'])));
      const offset = Number(record['offset']);
      expect(file.readUInt32LE(offset)).toBe(record['size']);
      expect(file.readUInt8(offset + 8)).toBe(expected.type);
      expect(Number(file.readBigUInt64LE(offset + 16))).toBe(expected.lsn);
      switch (expected.type) {
        case recordTypes.epoch:
          expect(record).toMatchObject({ type: 'epoch', fromLsn: (expected.payload as { fromLsn: number }).fromLsn });
          expect(record['payload']).toBeUndefined(); // the payload's epoch equals the frame's
          break;
        case recordTypes.journal:
        case recordTypes.commit: {
          const { clientId, requestId, ...rest } = expected.payload as unknown as Record<string, unknown>;
          const type = expected.type === recordTypes.commit ? 'commit' : 'journal';
          expect(record).toMatchObject({ type, clientId, requestId, ...rest });
          break;
        }
      }
    }
    const journal = records.find((record) => record['type'] === 'journal' && record['requestId'] === 1)!;
    expect(journal).toMatchObject({ callIndex: 0, name: 'ledger.ref', result: { ref: 'ref-1' } });
    const failedJournal = records.find((record) => record['type'] === 'journal' && record['requestId'] === 5)!;
    expect(failedJournal).toMatchObject({ error: { code: 'HANDLER_FAILED' } });
    expect(failedJournal).not.toHaveProperty('result');
    const commit = records.find((record) => record['type'] === 'commit' && record['requestId'] === 1)!;
    expect(commit).toMatchObject({
      command: 'deposit',
      args: { account: 'a1', amount: 1 },
      events: [{ stream: 'account-a1', events: [{ type: 'Deposited', data: { amount: 1 } }] }],
      reply: { ref: 'ref-1' },
    });
  });

  it('honours --from, --limit, --stream and --client', async () => {
    const { storeDir, written } = await storeWithLog();
    const page = jsonLines((await runCli(cli(), ['inspect', storeDir, '--records', '--json', '--from', '30', '--limit', '3'])).stdout);
    expect(page.map((record) => record['lsn'])).toEqual([30, 31, 32]);

    const lastLsn = written.length;
    const end = jsonLines((await runCli(cli(), ['inspect', storeDir, '--records', '--json', '--from', String(lastLsn - 1)])).stdout);
    expect(end.map((record) => record['lsn'])).toEqual([lastLsn - 1, lastLsn]);
    const beyond = await runCli(cli(), ['inspect', storeDir, '--records', '--json', '--from', String(lastLsn + 10)]);
    expect(beyond).toMatchObject({ exitCode: 0, stdout: '' });

    const stream = jsonLines((await runCli(cli(), ['inspect', storeDir, '--records', '--json', '--stream', 'account-a2'])).stdout);
    const expectedStream = written.filter(
      (record) =>
        record.type === recordTypes.commit &&
        (record.payload as { events: Array<{ stream: string }> }).events.some((write) => write.stream === 'account-a2'),
    );
    expect(stream.map((record) => record['lsn'])).toEqual(expectedStream.map((record) => record.lsn));
    expect(stream.length).toBeGreaterThan(0);

    const client = jsonLines((await runCli(cli(), ['inspect', storeDir, '--records', '--json', '--client', 'client-1', '--limit', '4'])).stdout);
    expect(client.map((record) => [record['type'], record['requestId']])).toEqual([
      ['journal', 1],
      ['commit', 1],
      ['journal', 3],
      ['commit', 3],
    ]);
  });

  it('prints one readable line per record without --json', async () => {
    const { storeDir } = await storeWithLog();
    const result = await runCli(cli(), ['inspect', storeDir, '--records', '--limit', '3']);
    expect(result.exitCode, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(4); // headings, then three records
    expect(lines[0]).toMatch(/^LSN\s+EPOCH\s+TYPE\s+BYTES\s+DETAIL$/);
    expect(lines[1]).toMatch(/^1\s+1\s+epoch\s+\d+\s+epoch=1 fromLsn=0 node=node-a$/);
    expect(lines[2]).toMatch(/^2\s+1\s+journal\s+\d+\s+client=client-1 request=1 call=0 name=ledger.ref ok$/);
    expect(lines[3]).toMatch(/^3\s+1\s+commit\s+\d+\s+client=client-1 request=1 command=deposit streams=account-a1 ok$/);
  });
});

describe('--verify', () => {
  it('exits 0 on a sound log of many segments, with nothing on stderr', async () => {
    const storeDir = tempDir();
    const written = await writeLog(storeDir, { transactions: 300, segmentBytes: 4096 });
    expect(segmentNames(storeDir).length).toBeGreaterThan(10);
    const result = await runCli(cli(), ['inspect', storeDir, '--verify']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^verified \d+ segments in .*: clean$/m);
    const json = JSON.parse((await runCli(cli(), ['inspect', storeDir, '--verify', '--json'])).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ result: 'clean', records: written.length, lastLsn: written.length, problems: [] });
  });

  it('reports a torn tail as recovery sees it: exit 0 with a warning, 3 with --strict', async () => {
    const { storeDir, written } = await storeWithLog();
    const records = await listRecords(storeDir);
    const last = records[records.length - 1]!;
    const segmentPath = path.join(storeDir, 'wal', String(last['segment']));
    const tornOffset = Number(last['offset']) + Number(last['size']);
    // Half of the next frame: what a crash in the middle of a write leaves.
    const next = encodeFrame({ type: recordTypes.commit, epoch: 2, lsn: written.length + 1 }, encodePayload({ clientId: 'x' }));
    overwrite(segmentPath, tornOffset, next.subarray(0, Math.floor(next.length / 2)));
    const before = fingerprint(storeDir);

    const verify = await runCli(cli(), ['inspect', storeDir, '--verify']);
    expect(verify.exitCode, verify.stderr).toBe(0);
    expect(verify.stderr).toMatch(new RegExp(`^txlog: warning: torn tail: \\d+ bytes at ${last['segment']} byte offset ${tornOffset} `));
    expect(verify.stdout).toContain('sound, with a torn tail');

    const strict = await runCli(cli(), ['inspect', storeDir, '--verify', '--strict']);
    expect(strict.exitCode).toBe(3);
    expectOneErrorLine(strict, 'CORRUPT_LOG');

    const summary = JSON.parse((await runCli(cli(), ['inspect', storeDir, '--json'])).stdout) as { tail: Record<string, unknown> };
    const wal = await Wal.open({ dir: path.join(storeDir, 'wal'), readOnly: true, log: () => undefined });
    try {
      expect(wal.tail).toMatchObject({ state: 'torn', segment: last['segment'], offset: tornOffset });
      expect(summary.tail).toEqual(wal.tail);
    } finally {
      await wal.close();
    }
    const listed = await runCli(cli(), ['inspect', storeDir, '--records', '--json']);
    expect(listed.exitCode).toBe(0);
    expect(jsonLines(listed.stdout)).toHaveLength(written.length);
    expect(listed.stderr).toMatch(/^txlog: warning: torn tail/);
    expect(fingerprint(storeDir)).toEqual(before);
  });

  it('exits 3 naming segment, byte offset and LSN for a flipped byte in an early segment', async () => {
    const { storeDir, written } = await storeWithLog();
    const records = await listRecords(storeDir);
    const firstSegment = segmentNames(storeDir)[0]!;
    const victim = records.find((record) => record['segment'] === firstSegment && record['lsn'] === 5)!;
    const segmentPath = path.join(storeDir, 'wal', firstSegment);
    const at = Number(victim['offset']) + 30; // inside the payload
    const file = readFileSync(segmentPath);
    overwrite(segmentPath, at, Buffer.from([file[at]! ^ 0x01]));
    const before = fingerprint(storeDir);

    const verify = await runCli(cli(), ['inspect', storeDir, '--verify']);
    expect(verify.exitCode).toBe(3);
    expectOneErrorLine(verify, 'CORRUPT_LOG');
    expect(verify.stderr).toContain(`${firstSegment} at byte offset ${victim['offset']}, LSN 5: checksum mismatch`);
    expect(verify.stdout).toContain('corrupt (1 problem)');
    const json = JSON.parse((await runCli(cli(), ['inspect', storeDir, '--verify', '--json'])).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ result: 'corrupt', problems: [{ segment: firstSegment, offset: victim['offset'], lsn: 5 }] });

    // The summary reads every frame too, and says the same.
    const summary = await runCli(cli(), ['inspect', storeDir]);
    expect(summary.exitCode).toBe(3);
    expect(summary.stderr).toContain(`${firstSegment} at byte offset ${victim['offset']}, LSN 5`);
    // The listing prints what comes before the damage, then stops with exit 3.
    const listed = await runCli(cli(), ['inspect', storeDir, '--records', '--json']);
    expect(listed.exitCode).toBe(3);
    expect(jsonLines(listed.stdout).map((record) => record['lsn'])).toEqual([1, 2, 3, 4]);
    expectOneErrorLine(listed, 'CORRUPT_LOG');
    expect(written.length).toBeGreaterThan(5);
    expect(fingerprint(storeDir)).toEqual(before);
  });

  it('exits 3 for a bad record in the last segment that valid records follow', async () => {
    const { storeDir } = await storeWithLog();
    const records = await listRecords(storeDir);
    const lastSegment = segmentNames(storeDir).at(-1)!;
    const inLast = records.filter((record) => record['segment'] === lastSegment);
    expect(inLast.length).toBeGreaterThanOrEqual(3);
    const victim = inLast[0]!;
    overwrite(path.join(storeDir, 'wal', lastSegment), Number(victim['offset']) + 4, Buffer.from('XXXX'));
    const verify = await runCli(cli(), ['inspect', storeDir, '--verify']);
    expect(verify.exitCode).toBe(3);
    expect(verify.stderr).toContain(`${lastSegment} at byte offset ${victim['offset']}, LSN ${victim['lsn']}`);
    expect(verify.stderr).toContain('a valid record follows');
  });

  it('exits 3 when a segment in the middle is missing', async () => {
    const { storeDir } = await storeWithLog();
    const segments = segmentNames(storeDir);
    rmSync(path.join(storeDir, 'wal', segments[1]!));
    const verify = await runCli(cli(), ['inspect', storeDir, '--verify']);
    expect(verify.exitCode).toBe(3);
    expectOneErrorLine(verify, 'CORRUPT_LOG');
    expect(verify.stderr).toMatch(new RegExp(`${segments[0]} at byte offset \\d+, LSN \\d+: records \\d+\\.\\.\\d+ are missing`));
  });
});

describe('--verify progress', () => {
  // `script` gives the child a terminal, the only place the bar may appear.
  const scriptAvailable = spawnSync('script', ['--version']).status === 0;

  it.skipIf(!scriptAvailable)('draws a bar on a terminal unless CI is set, and never into a pipe', async () => {
    const { storeDir } = await storeWithLog();
    const command = `'${process.execPath}' '${cli()}' inspect '${storeDir}' --verify > /dev/null`;
    const onTerminal = (ci: string | undefined): string => {
      const environment: NodeJS.ProcessEnv = { ...process.env };
      delete environment['CI'];
      if (ci !== undefined) environment['CI'] = ci;
      const result = spawnSync('script', ['-qec', command, '/dev/null'], { env: environment, encoding: 'utf8', timeout: 60_000 });
      expect(result.status, result.stderr).toBe(0);
      return result.stdout;
    };
    const drawn = onTerminal(undefined);
    expect(drawn).toContain('verifying [');
    expect(drawn).toContain('100%');
    expect(drawn.endsWith('\r\x1b[K')).toBe(true); // erased at the end
    expect(onTerminal('1')).toBe('');
    const piped = await runCli(cli(), ['inspect', storeDir, '--verify'], { CI: '' });
    expect(piped.stderr).toBe('');
  });
});

describe('bad inputs', () => {
  it('a missing directory, an empty one, and a file: exit 2 with one line', async () => {
    const dir = tempDir();
    const missing = await runCli(cli(), ['inspect', path.join(dir, 'nope'), '--verify']);
    expect(missing.exitCode).toBe(2);
    expectOneErrorLine(missing, 'NOT_FOUND');

    const empty = await runCli(cli(), ['inspect', dir]);
    expect(empty.exitCode).toBe(2);
    expectOneErrorLine(empty, 'NOT_FOUND');
    mkdirSync(path.join(dir, 'wal'));
    const emptyWal = await runCli(cli(), ['inspect', dir, '--verify']);
    expect(emptyWal.exitCode).toBe(2);
    expectOneErrorLine(emptyWal, 'NOT_FOUND');

    const file = path.join(dir, 'file.txt');
    writeFileSync(file, 'hello');
    const notDirectory = await runCli(cli(), ['inspect', file]);
    expect(notDirectory.exitCode).toBe(2);
    expectOneErrorLine(notDirectory, 'NOT_A_LOG');
  });

  it('a file that is not a txlog segment: exit 2 in every mode', async () => {
    const dir = tempDir();
    mkdirSync(path.join(dir, 'wal'));
    writeFileSync(path.join(dir, 'wal', '00000000000000000001.wal'), 'this is not a write-ahead log, just text '.repeat(4));
    for (const mode of [[], ['--verify'], ['--records']]) {
      const result = await runCli(cli(), ['inspect', dir, ...mode]);
      expect(result.exitCode, mode.join(' ')).toBe(2);
      expectOneErrorLine(result, 'NOT_A_LOG');
    }
  });

  it('a segment with a bad header among good ones is damage: exit 3, not 2', async () => {
    const { storeDir } = await storeWithLog();
    const second = segmentNames(storeDir)[1]!;
    overwrite(path.join(storeDir, 'wal', second), 0, Buffer.from('XXLOGWAL'));
    const verify = await runCli(cli(), ['inspect', storeDir, '--verify']);
    expect(verify.exitCode).toBe(3);
    expect(verify.stderr).toContain(`txlog: CORRUPT_LOG: corrupt WAL: ${second} at byte offset 0`);
    expect(verify.stderr).toContain('bad magic');
    const listed = await runCli(cli(), ['inspect', storeDir, '--records', '--json']);
    expect(listed.exitCode).toBe(3);
    expect(listed.stderr).toContain(`${second} at byte offset 0`);
  });

  it('a segment of a newer format version: exit 2 in every mode', async () => {
    const { storeDir } = await storeWithLog();
    const segmentPath = path.join(storeDir, 'wal', segmentNames(storeDir).at(-1)!);
    const header = readFileSync(segmentPath).subarray(0, 64);
    header.writeUInt32LE(2, 8);
    header.writeUInt32LE(crc32(header.subarray(0, 60)), 60);
    overwrite(segmentPath, 0, header);
    for (const mode of [[], ['--verify'], ['--records']]) {
      const result = await runCli(cli(), ['inspect', storeDir, ...mode]);
      expect(result.exitCode, mode.join(' ')).toBe(2);
      expectOneErrorLine(result, 'UNSUPPORTED_FORMAT');
      expect(result.stderr).toContain('format version 2');
    }
  });

  it('bad flags and values: exit 2 with one USAGE line', async () => {
    const { storeDir } = await storeWithLog();
    const cases: string[][] = [
      ['inspect'],
      ['inspect', storeDir, 'extra'],
      ['inspect', storeDir, '--bogus'],
      ['inspect', storeDir, '--records', '--from'],
      ['inspect', storeDir, '--records', '--from', 'abc'],
      ['inspect', storeDir, '--records', '--from', '0'],
      ['inspect', storeDir, '--records', '--from', '-1'],
      ['inspect', storeDir, '--records', '--from', '1.5'],
      ['inspect', storeDir, '--records', '--from', '1e3'],
      ['inspect', storeDir, '--records', '--from', '99999999999999999999'],
      ['inspect', storeDir, '--records', '--limit', '0'],
      ['inspect', storeDir, '--records', '--limit', 'ten'],
      ['inspect', storeDir, '--records', '--limit', ''],
      ['inspect', storeDir, '--from', '3'],
      ['inspect', storeDir, '--verify', '--records'],
      ['inspect', storeDir, '--json=yes'],
    ];
    for (const args of cases) {
      const result = await runCli(cli(), args);
      expect(result.exitCode, args.join(' ')).toBe(2);
      expectOneErrorLine(result, 'USAGE');
      expect(result.stdout, args.join(' ')).toBe('');
    }
  });
});

describe('read-only', () => {
  it('leaves every file of a sound, a torn and a corrupt store unchanged', async () => {
    const { storeDir } = await storeWithLog();
    const torn = tempDir();
    cpSync(storeDir, torn, { recursive: true });
    const lastSegment = path.join(torn, 'wal', segmentNames(torn).at(-1)!);
    const records = await listRecords(torn);
    const last = records[records.length - 1]!;
    overwrite(lastSegment, Number(last['offset']) + Number(last['size']), Buffer.from('torn write bytes'));
    const corrupt = tempDir();
    cpSync(storeDir, corrupt, { recursive: true });
    copyFileSync(path.join(storeDir, 'wal', segmentNames(storeDir)[0]!), path.join(corrupt, 'wal', segmentNames(storeDir)[0]!));
    overwrite(path.join(corrupt, 'wal', segmentNames(corrupt)[0]!), 200, Buffer.from('!!'));

    for (const dir of [storeDir, torn, corrupt]) {
      const before = fingerprint(dir);
      for (const mode of [[], ['--json'], ['--records'], ['--records', '--json'], ['--verify'], ['--verify', '--strict']]) {
        await runCli(cli(), ['inspect', dir, ...mode]);
        await runCli(cli(), ['inspect', path.join(dir, 'wal'), ...mode]);
      }
      expect(fingerprint(dir)).toEqual(before);
    }
  });
});
