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
import { State, type ApplicableRecord, type JournalEntry } from './state.js';

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
 * Collects journal entries as records stream past and hands each commit its own. Entries of a
 * request that never commits stay until `entriesMax` forces the oldest out (it can then only
 * be checked as a divergence, never mistaken for a match).
 */
export class JournalCollector {
  private readonly entries = new Map<string, JournalEntry[]>();
  constructor(private readonly entriesMax = 100_000) {}

  add(journal: JournalPayload): void {
    const key = `${journal.clientId}\u0000${journal.requestId}`;
    const entry: JournalEntry = { callIndex: journal.callIndex, name: journal.name };
    if (journal.error !== undefined) entry.error = journal.error;
    else entry.result = journal.result;
    const list = this.entries.get(key);
    if (list === undefined) this.entries.set(key, [entry]);
    else list.push(entry);
    if (this.entries.size > this.entriesMax) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  take(commit: CommitPayload): JournalEntry[] {
    const key = `${commit.clientId}\u0000${commit.requestId}`;
    const list = this.entries.get(key) ?? [];
    this.entries.delete(key);
    return list;
  }
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
  const journal = new JournalCollector();
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
      if (record.type === recordTypes.journal) journal.add(payload as JournalPayload);
      if (record.type !== recordTypes.commit) continue;
      const commit = payload as CommitPayload;
      report.commits += 1;
      const divergence = await reexecute(options.service, record.lsn, commit, journal.take(commit), readAsOf);
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
