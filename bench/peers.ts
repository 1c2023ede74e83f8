/**
 * Peers a user would pick instead of txlog, each given the same one-event transaction and run
 * with the durability it promises by default:
 *
 * - `lmdb` (lmdb-js): an awaited `put` of the event under a new key, default options. On Linux
 *   lmdb-js defaults to `overlappingSync: true`, and its `put` promise resolves when the write
 *   transaction is *committed* (visible), before the fdatasync that makes it durable (which
 *   overlaps later transactions; `db.flushed` resolves after it). So its latency includes no
 *   fdatasync: a machine crash can lose the last acknowledged puts.
 * - `better-sqlite3` (SQLite): WAL journal mode, `synchronous=FULL` (the WAL is fsynced at
 *   every commit), one INSERT per transaction. Its API is synchronous: one transaction at a
 *   time whatever the concurrency, so it is measured at concurrency 1 only.
 *
 * Both are loaded with `import()`: a machine without them skips the peer with a note.
 */
import * as path from 'node:path';
import { encodePayload } from '../wal/index.js';
import type { Transaction } from './load.js';
import type { BenchEvent } from './txlog-subjects.js';

export interface PeerSubject {
  transaction: Transaction;
  /** What the awaited transaction promises, for the report. */
  durability: string;
  close(): Promise<void>;
}

export async function openLmdbPeer(dir: string, event: BenchEvent): Promise<PeerSubject> {
  const lmdb = await import('lmdb');
  const db = lmdb.open({ path: path.join(dir, 'lmdb-peer') });
  const sequence: number[] = [];
  return {
    durability: "put resolves when committed (overlappingSync, the Linux default); fdatasync follows, overlapped",
    transaction: async (worker) => {
      const next = sequence[worker] ?? 0;
      sequence[worker] = next + 1;
      await db.put(`stream-${worker}/${next}`, event);
    },
    close: async () => {
      await db.flushed;
      await db.close();
    },
  };
}

interface SqliteStatement {
  run(...values: unknown[]): unknown;
}
interface SqliteDatabase {
  pragma(source: string): unknown;
  exec(source: string): unknown;
  prepare(source: string): SqliteStatement;
  close(): void;
}
type SqliteConstructor = new (file: string) => SqliteDatabase;

export async function openSqlitePeer(dir: string, event: BenchEvent): Promise<PeerSubject> {
  const module = (await import('better-sqlite3')) as unknown as { default: SqliteConstructor };
  const Database = module.default;
  const db = new Database(path.join(dir, 'sqlite-peer.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE events (stream TEXT NOT NULL, version INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (stream, version))');
  const insert = db.prepare('INSERT INTO events (stream, version, data) VALUES (?, ?, ?)');
  const data = encodePayload(event);
  const versions: number[] = [];
  return {
    durability: 'journal_mode=WAL, synchronous=FULL: each autocommitted INSERT fsyncs the WAL before returning',
    transaction: async (worker) => {
      const version = versions[worker] ?? 0;
      versions[worker] = version + 1;
      insert.run(`stream-${worker}`, version, data);
    },
    close: async () => db.close(),
  };
}
