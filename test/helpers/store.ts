/**
 * Helpers shared by the engine tests: open a store that writes little (1 MiB segments, no
 * preallocation) and keeps its warnings, build small services, and read the commit records back.
 */
import * as path from 'node:path';
import { openStore, type Store, type StoreOptions } from '../../engine/index.js';
import { recordPayload } from '../../wal/wal.js';
import { replicationHooksOf } from '../../engine/replication-hooks.js';
import { recordTypes, type CommitPayload, type JournalPayload } from '../../engine/records.js';

export interface QuietStore {
  store: Store;
  /** What the store logged (a rebuilt state, a cut tail). */
  messages: string[];
}

/** Options most engine tests want: small segments, no preallocation, no fdatasync. */
export function lightOptions(dir: string, options: Partial<StoreOptions> = {}): StoreOptions {
  return { dir, segmentBytes: 1024 * 1024, preallocate: false, fsync: 'never', ...options };
}

export async function openQuietStore(dir: string, options: Partial<StoreOptions> = {}): Promise<QuietStore> {
  const messages: string[] = [];
  const store = await openStore({ ...lightOptions(dir, options), log: (message) => messages.push(message) });
  return { store, messages };
}

export function stateDirOf(dir: string): string {
  return path.join(dir, 'state');
}

/** Every commit record in the store's WAL, with its LSN. */
export function commitRecords(store: Store): Array<{ lsn: number; commit: CommitPayload }> {
  const commits: Array<{ lsn: number; commit: CommitPayload }> = [];
  for (const record of replicationHooksOf(store).readRecords(1)) {
    if (record.type === recordTypes.commit) commits.push({ lsn: record.lsn, commit: recordPayload(record) as CommitPayload });
  }
  return commits;
}

/** Every journal record in the store's WAL. */
export function journalRecords(store: Store): JournalPayload[] {
  const entries: JournalPayload[] = [];
  for (const record of replicationHooksOf(store).readRecords(1)) {
    if (record.type === recordTypes.journal) entries.push(recordPayload(record) as JournalPayload);
  }
  return entries;
}

/** The commit record of one request (the last one, if it was somehow written twice). */
export function commitOf(store: Store, clientId: string, requestId: number): CommitPayload | undefined {
  return commitRecords(store)
    .map(({ commit }) => commit)
    .filter((commit) => commit.clientId === clientId && commit.requestId === requestId)
    .at(-1);
}

/** Resolves after `turns` trips through the event loop (lets batches write and apply). */
export async function settle(turns = 3): Promise<void> {
  for (let turn = 0; turn < turns; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
}
