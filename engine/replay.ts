/**
 * Re-execution: running a recorded transaction again through a service, with its journaled call
 * results, recorded clock and random values, and reads answered as of the versions the original
 * run saw. The backup does this live for every commit; `txlog replay` does it over a whole log
 * before new handler code is deployed. A digest that differs is a determinism violation.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Wal, recordPayload } from '../wal/wal.js';
import { txlogError } from '../wal/errors.js';
import { TransactionContext, runHandler, type Sources } from './context.js';
import { recordTypes, type CommitPayload, type JournalPayload } from './records.js';
import { builtinCommands, type CommandHandler, type Service, type StreamSlice } from './service.js';
import { sessionLimitDefaults, storeLimitDefaults, type StoreLimits } from './options.js';
import { State, journalEntryOf, type ApplicableRecord, type JournalEntry } from './state.js';

export type ReadAsOf = (stream: string, fromVersion: number, maxCount: number, asOfVersion: number) => StreamSlice;

export interface Divergence {
  lsn: number;
  clientId: string;
  requestId: number;
  command: string;
  recordedDigest: string;
  replayedDigest: string;
  /** What differed, in words: the recorded and replayed reply or error. */
  detail: string;
}

function replaySources(commit: CommitPayload, journal: readonly JournalEntry[], readAsOf: ReadAsOf): Sources {
  const violation = (what: string): never => {
    throw txlogError('DETERMINISM_VIOLATION', `re-execution ${what}`);
  };
  return {
    read(stream, fromVersion, maxCount, readIndex) {
      const seen = commit.readSet[readIndex];
      if (seen === undefined || seen[0] !== stream) {
        return violation(`read ${stream} as read ${readIndex}; the original run read ${seen?.[0] ?? 'nothing'}`);
      }
      return readAsOf(stream, fromVersion, maxCount, seen[1]);
    },
    call: async (callIndex, name) => {
      const entry = journal.find((candidate) => candidate.callIndex === callIndex);
      return entry ?? violation(`made call ${callIndex} (${name}), which the original run did not journal`);
    },
    now: (index) => commit.now[index] ?? violation(`asked the clock ${index + 1} times; the original run asked ${commit.now.length}`),
    random: (index) =>
      commit.random[index] ?? violation(`drew ${index + 1} random values; the original run drew ${commit.random.length}`),
  };
}

function handlerOf(service: Service | undefined, command: string): CommandHandler | undefined {
  if (Object.hasOwn(builtinCommands, command)) return builtinCommands[command];
  if (service !== undefined && Object.hasOwn(service.commands, command)) return service.commands[command];
  return undefined;
}

/** Re-executes one commit; returns a divergence, or undefined when the outcome matches. */
export async function reexecute(
  service: Service | undefined,
  lsn: number,
  commit: CommitPayload,
  journal: readonly JournalEntry[],
  readAsOf: ReadAsOf,
  limits: StoreLimits = storeLimitDefaults,
): Promise<Divergence | undefined> {
  const base = { lsn, clientId: commit.clientId, requestId: commit.requestId, command: commit.command, recordedDigest: commit.digest };
  // A handler stopped by handlerTimeoutMs has no outcome to reproduce.
  const details = commit.error?.details as Record<string, unknown> | undefined;
  if (details?.['timedOut'] === true) return undefined;
  const handler = handlerOf(service, commit.command);
  if (handler === undefined) {
    if (commit.error?.code === 'UNKNOWN_COMMAND') return undefined;
    return { ...base, replayedDigest: '', detail: `the service has no command ${commit.command}` };
  }
  const context = new TransactionContext(
    { clientId: commit.clientId, requestId: commit.requestId, command: commit.command },
    limits,
    replaySources(commit, journal, readAsOf),
  );
  let outcome;
  try {
    outcome = await runHandler(handler, context, commit.args, limits);
  } catch (error) {
    return { ...base, replayedDigest: '', detail: `re-execution aborted: ${String(error)}` };
  }
  if (outcome.digest === commit.digest) return undefined;
  const recorded = commit.error !== undefined ? `error ${commit.error.code}` : `reply ${JSON.stringify(commit.reply)}`;
  const replayed = outcome.error !== undefined ? `error ${outcome.error.code}: ${outcome.error.message}` : `reply ${JSON.stringify(outcome.reply)}`;
  return { ...base, replayedDigest: outcome.digest, detail: `recorded ${recorded}; replayed ${replayed} (events or reply differ)` };
}

/**
 * Collects journal entries as records stream past and hands each commit its own. A commit that
 * lists its calls' LSNs (`callLsns`) gets exactly those records, from memory or, for records that
 * came before this collector started (a backup that rejoined, a restarted node) or were pushed
 * out, from `readEarlier` (the WAL). A commit of an older log without `callLsns` gets the entries
 * seen under its client and request id. Memory is bounded by `entriesMax`: entries of requests
 * that never commit are forgotten oldest first.
 */
export class JournalCollector {
  private readonly byLsn = new Map<number, { key: string; entry: JournalEntry }>();
  private readonly lsnsByRequest = new Map<string, number[]>();

  constructor(
    private readonly readEarlier: (lsn: number) => JournalEntry | undefined = () => undefined,
    readonly entriesMax = 100_000,
  ) {}

  /** Journal entries held (at most `entriesMax`). */
  get size(): number {
    return this.byLsn.size;
  }

  /** LSNs held under their requests' keys (never more than the entries held). */
  get requestLsns(): number {
    let count = 0;
    for (const lsns of this.lsnsByRequest.values()) count += lsns.length;
    return count;
  }

  add(lsn: number, journal: JournalPayload): void {
    const key = requestKeyOf(journal.clientId, journal.requestId);
    this.byLsn.set(lsn, { key, entry: journalEntryOf(lsn, journal) });
    const lsns = this.lsnsByRequest.get(key);
    if (lsns === undefined) this.lsnsByRequest.set(key, [lsn]);
    else lsns.push(lsn);
    while (this.byLsn.size > this.entriesMax) {
      const oldest = this.byLsn.entries().next().value;
      if (oldest === undefined) break;
      this.byLsn.delete(oldest[0]);
      this.lsnsByRequest.delete(oldest[1].key);
    }
  }

  /**
   * The journal entries of `commit`, in call order; undefined when one of them cannot be found
   * (it is older than the log this node still has), so the commit cannot be checked.
   */
  take(commit: CommitPayload): JournalEntry[] | undefined {
    const key = requestKeyOf(commit.clientId, commit.requestId);
    if (commit.callLsns !== undefined) {
      const entries: JournalEntry[] = [];
      for (const lsn of commit.callLsns) {
        const entry = this.byLsn.get(lsn)?.entry ?? this.readEarlier(lsn);
        this.byLsn.delete(lsn);
        if (entry === undefined) return undefined;
        entries.push(entry);
      }
      // One-off requests share a key: drop only what this commit used (all of the key's LSNs
      // were kept before, one per one-off call for the life of the node).
      if (commit.requestId > 0) this.forgetRequest(key);
      else this.forgetLsns(key, commit.callLsns);
      return entries;
    }
    const lsns = this.lsnsByRequest.get(key) ?? [];
    this.forgetRequest(key);
    const entries: JournalEntry[] = [];
    for (const lsn of lsns) {
      const found = this.byLsn.get(lsn);
      this.byLsn.delete(lsn);
      if (found !== undefined) entries.push(found.entry);
    }
    return entries;
  }

  private forgetLsns(key: string, used: readonly number[]): void {
    const left = (this.lsnsByRequest.get(key) ?? []).filter((lsn) => !used.includes(lsn));
    if (left.length > 0) this.lsnsByRequest.set(key, left);
    else this.lsnsByRequest.delete(key);
  }

  private forgetRequest(key: string): void {
    for (const lsn of this.lsnsByRequest.get(key) ?? []) this.byLsn.delete(lsn);
    this.lsnsByRequest.delete(key);
  }
}

function requestKeyOf(clientId: string, requestId: number): string {
  return `${clientId}\u0000${requestId}`;
}

/** Reads the journal record at `lsn` from a WAL, or undefined when it is not there. */
export function journalFromWal(wal: Wal, lsn: number): JournalEntry | undefined {
  if (lsn < wal.firstLsn || lsn > wal.lastLsn) return undefined;
  for (const record of wal.read(lsn)) {
    if (record.lsn !== lsn || record.type !== recordTypes.journal) return undefined;
    return journalEntryOf(lsn, recordPayload(record) as JournalPayload);
  }
  return undefined;
}

export interface ReplayReport {
  commits: number;
  divergences: Divergence[];
  lastLsn: number;
}

/**
 * Re-runs every commit in `dir`'s WAL through `service`, rebuilding state in a temporary
 * directory as it goes so each commit reads exactly what its original run could see. Read-only
 * for `dir`.
 */
export async function replayLog(options: {
  dir: string;
  service: Service | undefined;
  onProgress?: (lsn: number, lastLsn: number) => void;
}): Promise<ReplayReport> {
  const walDir = fs.existsSync(path.join(options.dir, 'wal')) ? path.join(options.dir, 'wal') : options.dir;
  const wal = await Wal.open({ dir: walDir, readOnly: true, log: () => undefined });
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'txlog-replay-'));
  const state = State.open(stateDir, 64 * 1024 ** 3);
  const journal = new JournalCollector((lsn) => journalFromWal(wal, lsn));
  const report: ReplayReport = { commits: 0, divergences: [], lastLsn: wal.lastLsn };
  const readAsOf: ReadAsOf = (stream, fromVersion, maxCount, version) => state.readStream(stream, fromVersion, maxCount, version);
  try {
    for (const record of wal.read(wal.firstLsn)) {
      const payload = recordPayload(record);
      const applicable: ApplicableRecord = { lsn: record.lsn, type: record.type, payload };
      if (state.appliedLsn === 0 && record.lsn > 1) {
        throw txlogError('NOT_FOUND', `the WAL starts at LSN ${record.lsn}; replay needs it from LSN 1`);
      }
      state.apply([applicable], sessionLimitDefaults);
      if (record.type === recordTypes.journal) journal.add(record.lsn, payload as JournalPayload);
      if (record.type !== recordTypes.commit) continue;
      const commit = payload as CommitPayload;
      report.commits += 1;
      const calls = journal.take(commit);
      const divergence =
        calls === undefined
          ? { lsn: record.lsn, clientId: commit.clientId, requestId: commit.requestId, command: commit.command, recordedDigest: commit.digest, replayedDigest: '', detail: 'a journal record of this commit is missing from the log' }
          : await reexecute(options.service, record.lsn, commit, calls, readAsOf);
      if (divergence !== undefined) report.divergences.push(divergence);
      options.onProgress?.(record.lsn, wal.lastLsn);
    }
  } finally {
    await state.close();
    fs.rmSync(stateDir, { recursive: true, force: true });
    await wal.close();
  }
  return report;
}
