/**
 * What a store holds in memory, structure by structure, each against the limit that bounds it
 * (`store.resourceUsage()`; a node's `status().resources` adds its own). An operator reads it to
 * see how close a store is to a limit; the simulator checks every entry after every step.
 *
 * Every size is a counter or a collection's `.size` as it stands: asking costs a few property
 * reads and changes nothing. A limit is the most the structure may hold: an option or fixed
 * limit enforced where entries come in, a cap the structure keeps itself, or the bound of what
 * owns its entries (each release waiter waits for a record not yet released, say). `null` marks
 * a structure without a limit of its own; ARCHITECTURE.md ("Memory and its limits") says what
 * bounds each of those.
 */
import { applyBatchRecords } from './commit-pipeline.js';
import type { CommitAssembler } from './commit-assembler.js';
import type { CommitPipeline } from './commit-pipeline.js';
import type { ResolvedStoreOptions } from './options.js';
import type { ReplicationHooks } from './replication-hooks.js';
import { headsCachedMax } from './state.js';
import type { TransactionRunner } from './transaction-runner.js';

/** One structure: how many entries it holds now, and the most it may hold (`null`: no limit of its own). */
export interface ResourceUse {
  size: number;
  limit: number | null;
}

/** Every structure by name (see `storeResourceUsage` and the node's `nodeResourceUsage`). */
export type ResourceUsage = Record<string, ResourceUse>;

/** The parts of a store its usage is read from. */
export interface StoreResourceParts {
  options: ResolvedStoreOptions;
  pipeline: CommitPipeline;
  assembler: CommitAssembler;
  runner: TransactionRunner;
  hooks: ReplicationHooks;
  /** Transactions running (counted against `transactionsInFlightMax`). */
  transactionsRunning: number;
  /** Of those, the ones with a request id, by which a resend finds them. */
  requestIdsRunning: number;
}

export function storeResourceUsage(parts: StoreResourceParts): ResourceUsage {
  const { options, pipeline, assembler } = parts;
  const { limits, sessions } = options;
  const wal = pipeline.wal;
  const state = pipeline.state;
  const waiting = pipeline.waiting;
  const held = assembler.held;
  const releasedUnapplied = Math.max(0, pipeline.releasedLsn - state.appliedLsn);
  // A record not yet released is either not yet resolved by the WAL, or resolved and above the
  // release gate, waiting for the backup: then it belongs to a running transaction (or to one
  // `failUnreleased` answered, after which no transaction starts until the backup is back), or
  // it is the epoch record of a new primary.
  const unreleasedMax = wal.options.queueRecordsMax + limits.transactionsInFlightMax + 1;
  const pendingMax = unreleasedMax + applyBatchRecords;
  return {
    walAppendsWaiting: { size: wal.appendsWaiting, limit: wal.options.queueRecordsMax },
    walSegments: { size: wal.segmentCount, limit: null },
    recordsUnreleased: { size: Math.max(0, pipeline.pendingCount - releasedUnapplied), limit: unreleasedMax },
    recordsReleasedUnapplied: { size: releasedUnapplied, limit: applyBatchRecords },
    releaseWaiters: { size: waiting.releaseLsns, limit: unreleasedMax },
    applyWaiters: { size: waiting.appliedLsns, limit: pendingMax },
    nextBatchWaiters: { size: waiting.nextBatch, limit: null },
    transactionsRunning: { size: parts.transactionsRunning, limit: limits.transactionsInFlightMax },
    requestIdsRunning: { size: parts.requestIdsRunning, limit: limits.transactionsInFlightMax },
    handlerDeadlines: { size: parts.runner.deadlinesWaiting, limit: limits.transactionsInFlightMax },
    decidedCommits: { size: held.commits, limit: pendingMax },
    journaledCallsUnapplied: { size: held.calls, limit: pendingMax },
    streamHeadsUnapplied: { size: held.heads, limit: pendingMax * limits.eventsPerTransactionMax },
    streamHeadsCached: { size: state.cachedHeads, limit: headsCachedMax },
    // Fewer than `streamIndexFlushEntries` between commits: the commit that reaches it writes them all.
    streamIndexWaiting: { size: state.streamIndexWaiting, limit: options.streamIndexFlushEntries - 1 },
    clientSessions: { size: state.sessionTable.liveCount, limit: sessions.clientsMax },
    clientsWithJournal: { size: state.sessionTable.journalClients, limit: null },
    epochsBegun: { size: parts.hooks.epochsBegun, limit: 1 },
  };
}
