/**
 * The peers a user would pick instead of txlog, as bench steps: lmdb and SQLite in this
 * process, PostgreSQL with a synchronous standby when asked for and installed. A peer that cannot
 * be loaded or started is skipped with a note, never a failed run; `peerNotes` says what each
 * peer's latency includes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openLmdbPeer, openSqlitePeer, type PeerSubject } from './peers.js';
import { findPostgresBin, startPostgresPair } from './postgres.js';
import type { BenchMode, BenchOptions, BenchSystem, Measure, Step } from './bench-types.js';
import type { BenchEvent } from './txlog-subjects.js';

/** What the steps of a peer need from the run: where data goes, the event, notes, measuring, the filter. */
export interface PeerStepContext {
  root: string;
  event: BenchEvent;
  notes: string[];
  measure: Measure;
  wanted(system: BenchSystem, mode: BenchMode): boolean;
}

/** lmdb at each concurrency and SQLite at one in flight (its API is synchronous), in this process. */
export function addLocalPeerSteps(steps: Step[], concurrencies: readonly number[], run: PeerStepContext): void {
  const { root, event, notes, measure } = run;
  if (run.wanted('lmdb', 'embedded')) {
    for (const concurrency of concurrencies) {
      steps.push({
        label: `lmdb put, ${concurrency} in flight`,
        run: () => runPeer(notes, 'lmdb', () => openLmdbPeer(fs.mkdtempSync(path.join(root, 'lmdb-')), event), async (peer) => {
          await measure({ name: `lmdb put c=${concurrency}`, system: 'lmdb', mode: 'embedded', fsync: 'overlapped', concurrency, floor: 'write+fdatasync' }, peer.transaction);
        }),
      });
    }
  }
  if (run.wanted('sqlite', 'embedded')) {
    steps.push({
      label: 'SQLite WAL synchronous=FULL, 1 in flight (its API is synchronous)',
      run: () => runPeer(notes, 'sqlite', () => openSqlitePeer(fs.mkdtempSync(path.join(root, 'sqlite-')), event), async (peer) => {
        await measure({ name: 'sqlite FULL c=1', system: 'sqlite', mode: 'embedded', fsync: 'always', concurrency: 1, floor: 'write+fdatasync' }, peer.transaction);
      }),
    });
  }
}

/** Opens a peer, runs `body`, closes it; a peer that cannot be loaded is skipped with a note. */
async function runPeer(notes: string[], name: string, open: () => Promise<PeerSubject>, body: (peer: PeerSubject) => Promise<void>): Promise<void> {
  let peer: PeerSubject;
  try {
    peer = await open();
  } catch (error) {
    const note = `${name} skipped: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
    if (!notes.includes(note)) notes.push(note);
    return;
  }
  try {
    await body(peer);
  } finally {
    await peer.close();
  }
}

/** PostgreSQL with a synchronous standby at each concurrency, one pair for all of them. */
export function addPostgresSteps(steps: Step[], options: Pick<BenchOptions, 'withPostgres' | 'concurrencies'>, run: PeerStepContext): void {
  const { root, event, notes, measure } = run;
  if (!options.withPostgres) {
    notes.push('postgres skipped: run with --with-postgres to include PostgreSQL with a synchronous standby');
    return;
  }
  const bin = findPostgresBin();
  if (bin === undefined) {
    notes.push('postgres skipped: no server binaries under /usr/lib/postgresql/*/bin (the bench does not install them)');
    return;
  }
  let pair: Awaited<ReturnType<typeof startPostgresPair>> | undefined;
  let failed = false;
  options.concurrencies.forEach((concurrency, index) => {
    steps.push({
      label: `PostgreSQL with a synchronous standby, ${concurrency} connections`,
      run: async () => {
        if (failed) return;
        try {
          if (pair === undefined) {
            pair = await startPostgresPair(root, bin, Math.max(...options.concurrencies));
            notes.push(`postgres: ${pair.version}, primary and synchronous standby on loopback (${bin}), one connection per transaction in flight`);
          }
          await runPeer(notes, 'postgres', () => pair!.open(concurrency, event), async (peer) => {
            await measure({ name: `postgres sync-standby c=${concurrency}`, system: 'postgres', mode: 'replicated', fsync: 'always', concurrency, floor: 'tcp-rtt+fdatasync' }, peer.transaction);
          });
        } catch (error) {
          failed = true;
          notes.push(`postgres skipped: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
        } finally {
          if (pair !== undefined && (failed || index === options.concurrencies.length - 1)) {
            await pair.close();
            pair = undefined;
          }
        }
      },
    });
  });
}

export function peerNotes(): string[] {
  return [
    "lmdb: default options; on Linux lmdb-js opens with overlappingSync, so an awaited put resolves when the transaction is committed (visible), and the fdatasync that makes it durable follows, overlapped with later transactions (db.flushed). Its latency has no fdatasync in it; fsync is shown as 'overlapped'.",
    'sqlite: better-sqlite3, journal_mode=WAL, synchronous=FULL (WAL fsynced at every commit), one INSERT per transaction; its API is synchronous, so only concurrency 1 is meaningful.',
    "txlog replicated: a commit is released when it is in the primary's WAL (fdatasync'd under always) and acknowledged by the backup's mirror; interval: written, fdatasync within 10 ms.",
  ];
}
