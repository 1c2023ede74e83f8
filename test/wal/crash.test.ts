/**
 * Proves that with `fsync: 'always'` a process crash loses no acknowledged record: a real child
 * process (test/wal/crash-child.mjs, running dist/) appends from several concurrent appenders,
 * with rotation every few records, its fdatasync inline or on a worker thread, and logs each LSN as soon as its append resolves; it is
 * SIGKILLed at a seeded random moment, round after round on the same directory. After every
 * round the log reopens with LSNs dense from 1, every acknowledged LSN holds exactly the payload
 * the child reported, no record is invented or damaged, and the next round appends on top.
 *
 * Needs `npm run build` first (`npm test` does it). Prints its seed; `TXLOG_SEED` replays the
 * kill timings (the interleaving of a real process stays the kernel's).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { recordPayload } from '../../wal/index.js';
import { seededRandom, testSeed } from '../helpers/random.js';
import { killAndWait, useChildProcesses, useTempDir } from '../helpers/temp.js';
import { openQuietWal } from '../helpers/wal.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repositoryRoot = path.resolve(here, '..', '..');
const childScript = path.join(here, 'crash-child.mjs');
const rounds = 20;
const newDir = useTempDir('txlog-crash-');
const spawnChild = useChildProcesses();

/** Must match `payloadOf` in crash-child.mjs. */
function expectedPayload(round: number, appender: number, sequence: number, sizeBytes: number): unknown {
  const digest = createHash('sha256').update(`${round}:${appender}:${sequence}:${sizeBytes}`).digest('hex');
  return { round, appender, sequence, body: digest.repeat(Math.ceil(sizeBytes / 64) + 1).slice(0, sizeBytes) };
}

/** Collects what the child prints; `until(word)` resolves when a line says it, fails if the child exits first. */
function watchChild(child: ReturnType<typeof spawnChild>): { until: (word: string) => Promise<void>; errors: () => string } {
  let output = '';
  let errors = '';
  const listeners = new Set<() => void>();
  child.stderr?.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    for (const listener of [...listeners]) listener();
  });
  const until = (word: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (output.split('\n').some((line) => line.startsWith(word))) {
          listeners.delete(check);
          resolve();
        }
      };
      listeners.add(check);
      check();
      child.once('exit', (code, signal) => reject(new Error(`child exited (${code ?? signal}) before "${word}": ${errors}`)));
    });
  return { until, errors: () => errors };
}

interface Acknowledged {
  lsn: number;
  round: number;
  appender: number;
  sequence: number;
  sizeBytes: number;
}

function readAcknowledged(ackFile: string): Acknowledged[] {
  if (!existsSync(ackFile)) return [];
  // A kill can interrupt nothing here: each line is one writeSync of a short string.
  return readFileSync(ackFile, 'utf8')
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => {
      const [lsn, round, appender, sequence, sizeBytes] = line.split(' ').map(Number);
      return { lsn: lsn!, round: round!, appender: appender!, sequence: sequence!, sizeBytes: sizeBytes! };
    });
}

beforeAll(() => {
  const built = path.join(repositoryRoot, 'dist', 'wal', 'wal.js');
  if (!existsSync(built)) throw new Error('dist/ is missing: run `npm run build` (or `npm test`) first');
  const sourceDir = path.join(repositoryRoot, 'wal');
  const newestSourceMs = Math.max(...readdirSync(sourceDir).map((name) => statSync(path.join(sourceDir, name)).mtimeMs));
  if (statSync(built).mtimeMs < newestSourceMs) {
    throw new Error('dist/ is older than wal/: run `npm run build` (or `npm test`) so the child runs the current code');
  }
});

describe('crash recovery with real processes', () => {
  it(`loses no acknowledged record across ${rounds} SIGKILLs (fsync always)`, async () => {
    const seed = testSeed('wal crash');
    const random = seededRandom(seed);
    const dir = newDir();
    const walDir = path.join(dir, 'wal');
    const acknowledged = new Map<number, Acknowledged>();
    let totalRecords = 0;
    let roundsWithAcknowledgement = 0;
    for (let round = 1; round <= rounds; round++) {
      const ackFile = path.join(dir, `acks-${round}.log`);
      const preallocate = random.integer(0, 1) === 1;
      // Odd rounds fdatasync on a worker thread (as a replicated node does), even rounds inline.
      const onWorker = round % 2 === 1 ? '1' : '0';
      const child = spawnChild(process.execPath, [childScript, walDir, ackFile, String(round), String(random.integer(0, 2 ** 31)), preallocate ? '1' : '0', onWorker], {
        cwd: repositoryRoot,
      });
      const watched = watchChild(child);
      await watched.until('ready');
      // Mostly kill while records are being acknowledged; sometimes early, maybe before any.
      const early = random.integer(0, 4) === 0;
      if (!early) {
        await watched.until('acknowledged');
        roundsWithAcknowledgement += 1;
      }
      await new Promise((resolve) => setTimeout(resolve, random.integer(0, early ? 50 : 300)));
      await killAndWait(child);
      expect(child.signalCode, `round ${round} (seed ${seed}): the child died before our SIGKILL: ${watched.errors()}`).toBe('SIGKILL');

      for (const ack of readAcknowledged(ackFile)) {
        expect(ack.round).toBe(round);
        expect(acknowledged.has(ack.lsn), `LSN ${ack.lsn} acknowledged twice`).toBe(false);
        acknowledged.set(ack.lsn, ack);
      }

      const { wal } = await openQuietWal({ dir: walDir, fsync: 'always', segmentBytes: 8192, preallocate }).catch((error: unknown) => {
        throw new Error(`round ${round} (seed ${seed}): reopening after the kill failed: ${String(error)}`, { cause: error });
      });
      try {
        const records = [...wal.read(1)];
        expect(wal.firstLsn).toBe(1);
        records.forEach((record, i) => expect(record.lsn).toBe(i + 1));
        expect(wal.lastLsn).toBe(records.length);
        // Acknowledged records, from this round and every earlier one, are there as reported.
        for (const ack of acknowledged.values()) {
          const record = records[ack.lsn - 1];
          expect(record, `round ${round} (seed ${seed}): acknowledged LSN ${ack.lsn} is missing (last ${wal.lastLsn})`).toBeDefined();
          expect(recordPayload(record!)).toEqual(expectedPayload(ack.round, ack.appender, ack.sequence, ack.sizeBytes));
          expect(record!.epoch).toBe(ack.round);
        }
        // Every record, acknowledged or not, is one the child really wrote.
        let epoch = 0;
        for (const record of records) {
          const payload = recordPayload(record) as { round: number; appender: number; sequence: number; body: string };
          expect(payload).toEqual(expectedPayload(payload.round, payload.appender, payload.sequence, payload.body.length));
          expect(record.epoch).toBe(payload.round);
          expect(record.epoch).toBeGreaterThanOrEqual(epoch);
          epoch = record.epoch;
        }
        totalRecords = records.length;
      } finally {
        await wal.close();
      }
    }
    console.log(`[wal crash] ${rounds} rounds, ${acknowledged.size} acknowledged, ${totalRecords} records in the log`);
    expect(acknowledged.size).toBeGreaterThanOrEqual(roundsWithAcknowledgement);
  });
});
