/**
 * Turning a handler's outcome into a commit record, and what is decided but not yet applied.
 *
 * `assembleAndAppend` checks every expected version against the stream heads *including commits
 * not yet applied*, assigns versions and global positions, and appends the record in the same
 * synchronous step, so LSN order is version order is position order. Until the pipeline applies
 * a record, this class remembers it: the heads and next position it claimed, and the decided
 * commit or journaled call a resend must wait for instead of running again. It forgets each one
 * when the pipeline reports it applied.
 */
import { txlogError, type TxlogError } from '../wal/errors.js';
import { encodePayload } from '../wal/format.js';
import { encodeCommitForApply } from './commit-encoding.js';
import type { CommitPipeline } from './commit-pipeline.js';
import type { HandlerOutcome } from './context.js';
import { recordTypes, type CommitPayload, type JournalPayload, type StreamWrite } from './records.js';
import type { CheckedRequest } from './requests.js';
import { RequestSlots } from './request-slots.js';
import type { AppendResult } from './service.js';
import type { ApplicableRecord, JournalEntry } from './state.js';
import { EventIdSource } from './event-ids.js';
import { expectationMet, expectedVersionName } from './expected-version.js';
import type { Platform } from '../wal/platform.js';

export interface Appended {
  /** Undefined when the WAL refused the record outright. */
  lsn: number | undefined;
  /** Resolves when the record is released (its caller may be answered). */
  released: Promise<number>;
}

/** A stream's head as the commits not yet applied left it (`CommitAssembler.pendingHeads`). */
interface PendingHead {
  version: number;
  lsn: number;
  /** Its commit is applied: the state's head is as recent (kept until `dropAppliedHeadsIfMany`). */
  applied: boolean;
}

/** Applied heads kept at least before they are dropped (see `CommitAssembler.pendingHeads`). */
const appliedHeadsMin = 1024;

export class CommitAssembler {
  private readonly pipeline: CommitPipeline;
  /**
   * Commits and journal entries in the WAL but not yet applied, by request (and call). A resend
   * that finds one waits for it instead of running again: its outcome is decided, only not yet
   * released (the backup has not acknowledged it). `RequestSlots`, not `Map`s keyed by request:
   * see there why (the garbage collector).
   */
  private readonly pendingCommits = new RequestSlots<{ lsn: number; payload: CommitPayload }>();
  /** Per request, its journaled calls by call index. */
  private readonly pendingCalls = new RequestSlots<Map<number, { lsn: number; entry: JournalEntry }>>();
  /** Journaled calls held in `pendingCalls`. */
  private pendingCallCount = 0;
  /**
   * Heads of streams with commits not yet applied: stream → version and LSN of the last. A head
   * is updated where it is and marked `applied` rather than deleted (a Map that drops and takes
   * keys all the time keeps garbage alive: see `lsn-slots.ts`); the applied ones are deleted all
   * at once when they are many (`appliedHeadsMin`, and half the map).
   */
  private readonly pendingHeads = new Map<string, PendingHead>();
  /** Heads in `pendingHeads` not applied yet. */
  private unappliedHeads = 0;
  private nextPosition: number;
  private readonly platform: Platform;
  private readonly eventIds: EventIdSource;

  constructor(pipeline: CommitPipeline, platform: Platform) {
    this.pipeline = pipeline;
    this.platform = platform;
    this.eventIds = new EventIdSource(platform.random);
    this.nextPosition = pipeline.state.nextPosition;
    pipeline.onApplied((records) => this.forgetApplied(records));
  }

  /** What it remembers until applied (for resource usage): decided commits, journaled calls, heads. */
  get held(): { commits: number; calls: number; heads: number } {
    return { commits: this.pendingCommits.size, calls: this.pendingCallCount, heads: this.unappliedHeads };
  }

  /** A commit of this request decided and waiting for release, if any. */
  decidedCommit(clientId: string, requestId: number): { lsn: number; payload: CommitPayload } | undefined {
    return this.pendingCommits.get(clientId, requestId);
  }

  /** Call `callIndex` of a request journaled and waiting for release, if any. */
  pendingCall(clientId: string, requestId: number, callIndex: number): { lsn: number; entry: JournalEntry } | undefined {
    return this.pendingCalls.get(clientId, requestId)?.get(callIndex);
  }

  /** The client's highest request id with a decided commit or a journaled call not yet applied (0: none). */
  highestPendingRequestId(clientId: string): number {
    return Math.max(this.pendingCommits.highestRequestId(clientId), this.pendingCalls.highestRequestId(clientId));
  }

  /** Appends a journal record of this store's own, remembered until applied. */
  appendJournal(payload: JournalPayload, entry: JournalEntry): Appended {
    const appended = this.pipeline.append(recordTypes.journal, payload, encodePayload(payload));
    if (appended.lsn !== undefined) {
      entry.lsn = appended.lsn;
      if (payload.requestId > 0) this.holdCall(payload, { lsn: appended.lsn, entry });
    }
    return appended;
  }

  /**
   * Checks expected versions against the heads (applied and pending), assigns versions and
   * positions, and appends the commit record, all in one synchronous step. Returns the record
   * and its LSN (the caller waits for its release with `pipeline.whenReleased`), or throws the
   * refusal of the pipeline or the WAL (nothing was appended).
   */
  assembleAndAppend(request: CheckedRequest, outcome: HandlerOutcome): { payload: CommitPayload; lsn: number } {
    const { command, clientId, requestId } = request;
    const payload: CommitPayload = {
      clientId,
      requestId,
      command,
      args: request.args,
      events: [],
      firstPosition: this.nextPosition,
      now: outcome.now,
      random: outcome.random,
      readSet: outcome.readSet,
      calls: outcome.calls,
      digest: outcome.digest,
    };
    if (outcome.calls > 0 && outcome.callLsns !== undefined) payload.callLsns = outcome.callLsns;
    if (outcome.error !== undefined) {
      payload.error = outcome.error;
    } else {
      const conflict = this.placeWrites(payload, outcome);
      if (conflict !== undefined) payload.error = conflict.toJSON();
      else payload.reply = command === 'append' ? appendReply(payload) : outcome.reply;
    }
    const recordBytesMax = this.pipeline.wal.options.recordBytesMax;
    // The args go in as the bytes they were checked as (they decode to `request.args`).
    let { packed, forApply } = encodeCommitForApply(payload, request.packedArgs);
    if (packed.length > recordBytesMax) {
      payload.events = [];
      delete payload.reply;
      delete payload.createdAtMs;
      payload.error = txlogError('TOO_LARGE', `the transaction's commit record is ${packed.length} bytes, more than ${recordBytesMax}`).toJSON();
      ({ packed, forApply } = encodeCommitForApply(payload, request.packedArgs));
    }
    const lsn = this.pipeline.appendRecord(recordTypes.commit, payload, packed, forApply);
    this.holdHeads(payload, lsn);
    if (requestId > 0) this.pendingCommits.set(clientId, requestId, { lsn, payload });
    return { payload, lsn };
  }

  /** Forgets everything not yet applied (the pipeline dropped it, or the state was rebuilt). */
  reset(): void {
    this.pendingCommits.clear();
    this.pendingCalls.clear();
    this.pendingCallCount = 0;
    this.pendingHeads.clear();
    this.unappliedHeads = 0;
    this.nextPosition = this.pipeline.state.nextPosition;
  }

  private placeWrites(payload: CommitPayload, outcome: HandlerOutcome): TxlogError | undefined {
    if (outcome.checks.length > 0) payload.checks = outcome.checks;
    for (const [stream, expected] of outcome.checks) {
      const conflict = this.conflictOf(stream, expected);
      if (conflict !== undefined) return conflict;
    }
    const placed: StreamWrite[] = [];
    for (const write of outcome.writes) {
      const head = this.headOf(write.stream);
      if (write.expectedVersion !== undefined) {
        const conflict = this.conflictOf(write.stream, write.expectedVersion);
        if (conflict !== undefined) return conflict;
      }
      // Ids are drawn here, after the digest: the record carries them and every node applies
      // them as recorded, so re-execution never has to draw the same ones.
      const events = write.events.map((event) => (event.id !== undefined ? event : { id: this.eventIds.next(), ...event }));
      const streamWrite: StreamWrite = { stream: write.stream, firstVersion: head + 1, events };
      if (write.expectedVersion !== undefined) streamWrite.expectedVersion = write.expectedVersion;
      placed.push(streamWrite);
    }
    payload.events = placed;
    if (placed.length > 0) payload.createdAtMs = this.platform.clock.nowMs();
    return undefined;
  }

  private conflictOf(stream: string, expected: number): TxlogError | undefined {
    const head = this.headOf(stream);
    if (expectationMet(expected, head)) return undefined;
    const name = expectedVersionName(expected);
    return txlogError('WRONG_EXPECTED_VERSION', `stream ${stream} is at version ${head}, not ${String(name)}`, {
      stream,
      expectedVersion: name,
      actualVersion: head,
    });
  }

  private holdHeads(payload: CommitPayload, lsn: number): void {
    if (payload.events.length === 0) return;
    for (const write of payload.events) {
      const version = write.firstVersion + write.events.length - 1;
      const head = this.pendingHeads.get(write.stream);
      if (head === undefined) {
        this.pendingHeads.set(write.stream, { version, lsn, applied: false });
        this.unappliedHeads += 1;
      } else {
        if (head.applied) this.unappliedHeads += 1;
        head.version = version;
        head.lsn = lsn;
        head.applied = false;
      }
    }
    this.nextPosition = payload.firstPosition + payload.events.reduce((sum, write) => sum + write.events.length, 0);
  }

  private headOf(stream: string): number {
    const head = this.pendingHeads.get(stream);
    return head !== undefined && !head.applied ? head.version : this.pipeline.state.streamVersion(stream);
  }

  private holdCall(journal: JournalPayload, held: { lsn: number; entry: JournalEntry }): void {
    let calls = this.pendingCalls.get(journal.clientId, journal.requestId);
    if (calls === undefined) {
      calls = new Map();
      this.pendingCalls.set(journal.clientId, journal.requestId, calls);
    }
    if (!calls.has(journal.callIndex)) this.pendingCallCount += 1;
    calls.set(journal.callIndex, held);
  }

  private dropAppliedHeadsIfMany(): void {
    const applied = this.pendingHeads.size - this.unappliedHeads;
    if (applied < appliedHeadsMin || applied * 2 < this.pendingHeads.size) return;
    for (const [stream, head] of this.pendingHeads) if (head.applied) this.pendingHeads.delete(stream);
  }

  private forgetCall(journal: JournalPayload): void {
    const calls = this.pendingCalls.get(journal.clientId, journal.requestId);
    if (calls === undefined || !calls.delete(journal.callIndex)) return;
    this.pendingCallCount -= 1;
    if (calls.size === 0) this.pendingCalls.delete(journal.clientId, journal.requestId);
  }

  private forgetApplied(records: readonly ApplicableRecord[]): void {
    // Nothing held (a backup's, which never assembles): nothing to look up per record.
    const holding = this.pendingCommits.size > 0 || this.pendingCallCount > 0 || this.unappliedHeads > 0;
    for (const record of holding ? records : []) {
      if (record.type === recordTypes.commit) {
        const commit = record.payload as CommitPayload;
        for (const write of commit.events) {
          const head = this.pendingHeads.get(write.stream);
          if (head === undefined || head.applied || head.lsn > record.lsn) continue;
          head.applied = true;
          this.unappliedHeads -= 1;
        }
        this.pendingCommits.delete(commit.clientId, commit.requestId);
      } else if (record.type === recordTypes.journal) {
        this.forgetCall(record.payload as JournalPayload);
      }
    }
    this.dropAppliedHeadsIfMany();
    // A backup never assembles commits, so only here does its next position catch up with what
    // it applied; a batch ending in a journal entry must not leave it stale for a promotion.
    if (this.pipeline.pendingCount === 0) this.nextPosition = Math.max(this.nextPosition, this.pipeline.state.nextPosition);
  }
}

function appendReply(payload: CommitPayload): AppendResult | null {
  const last = payload.events[payload.events.length - 1];
  if (last === undefined) return null;
  const total = payload.events.reduce((sum, write) => sum + write.events.length, 0);
  return {
    stream: last.stream,
    version: last.firstVersion + last.events.length - 1,
    position: payload.firstPosition + total - 1,
  };
}
