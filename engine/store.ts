/**
 * The embedded store: event streams, the service runtime and exactly-once transactions over one
 * WAL and its LMDB state. The replicated node wraps this class unchanged: it gates when commits
 * are released (backup acknowledged) and feeds a backup's store with the primary's frames.
 *
 * Life of a transaction here:
 *   1. `execute` checks the session table: a committed request returns its stored outcome; one
 *      running already shares the running promise; one older than the window is REQUEST_EXPIRED.
 *   2. The handler runs with a live context; each `ctx.call` is journaled (WAL record, released)
 *      before the handler sees its result.
 *   3. The commit is assembled synchronously: expected versions are checked against the stream
 *      heads including commits not yet applied, versions and global positions assigned, and the
 *      record appended to the WAL in the same tick, so LSN order is version and position order.
 *   4. Once the WAL has it (per the fsync policy) and the release gate allows (the backup's
 *      acknowledgement, when replicated), records are applied to LMDB in LSN order, one LMDB
 *      transaction per batch, and only then the caller gets its reply: a reader never sees a
 *      commit that could still be lost.
 */
import * as path from 'node:path';
import { Wal, recordPayload } from '../wal/wal.js';
import { TxlogError, errorFromSerialized, txlogError } from '../wal/errors.js';
import { assert } from '../wal/assert.js';
import { decodePayload, encodePayload } from '../wal/format.js';
import { recordTypes, type CommitPayload, type EpochPayload, type JournalPayload, type StreamWrite } from './records.js';
import { resolveStoreOptions, type ResolvedStoreOptions, type StoreOptions } from './options.js';
import { builtinCommands, type CommandHandler, type RecordedEvent, type ReadStreamOptions, type StreamSlice } from './service.js';
import { State, currentBootId, type ApplicableRecord, type JournalEntry } from './state.js';
import { TransactionAborted, TransactionContext, checkStreamName, runHandler, serializeThrown, type HandlerOutcome, type Sources } from './context.js';
import { isWellFormedName, requestDigestOf, snapshotChecked } from './values.js';
import type { EventInput } from './records.js';

export interface RequestIds {
  /** Who sends: with `requestId`, makes the request exactly-once. Omit both for a one-off. */
  clientId?: string;
  /** Grows by one per client; a resend reuses it. */
  requestId?: number;
}

export interface AppendResult {
  stream: string;
  /** Version of the last event written. */
  version: number;
  /** Global position of the last event written. */
  position: number;
}

export interface SubscribeOptions {
  /** First global position to deliver. @default 0 */
  fromPosition?: number;
  /** Called once when the subscription has delivered everything committed so far. */
  onCaughtUp?: () => void;
  signal?: AbortSignal;
}

/** A request as checked on arrival: its args recorded as they were then. */
interface CheckedRequest {
  command: string;
  clientId: string;
  requestId: number;
  /** The args as recorded in the commit (a private copy, decoded from `packedArgs`). */
  args: unknown;
  packedArgs: Buffer;
  /** The request's digest (command and packed args), computed once when first asked. */
  digest: () => string;
}

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
}

/** Reads the store applies per LMDB transaction while recovering. */
const recoveryBatchRecords = 1024;
/** Events a subscription reads from LMDB at a time. */
const subscribePageEvents = 512;

export async function openStore(options: StoreOptions): Promise<Store> {
  return Store.open(options);
}

export class Store {
  readonly options: ResolvedStoreOptions;
  readonly wal: Wal;
  private state: State;
  private epochValue: number;
  /** Records appended to the WAL and not yet applied, by LSN. */
  private readonly pending = new Map<number, ApplicableRecord>();
  private readonly appliedWaiters = new Map<number, Waiter[]>();
  /**
   * Commits and journal entries in the WAL but not yet applied, by request (and call). A resend
   * that finds one waits for it instead of running again: its outcome is decided, only not yet
   * released (the backup has not acknowledged it).
   */
  private readonly pendingCommits = new Map<string, { lsn: number; payload: CommitPayload }>();
  private readonly pendingCalls = new Map<string, { lsn: number; entry: JournalEntry }>();
  /** Highest LSN whose WAL append resolved (written, or durable under `always`). */
  private walResolvedLsn: number;
  private releaseGate: () => number = () => Number.MAX_SAFE_INTEGER;
  private applyScheduled = false;
  /** Heads of streams with commits not yet applied: stream → version and LSN of the last. */
  private readonly pendingHeads = new Map<string, { version: number; lsn: number }>();
  private nextPositionValue: number;
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private inFlightCount = 0;
  private readonly applyListeners = new Set<(records: readonly ApplicableRecord[]) => void>();
  private readonly applyWakers = new Set<() => void>();
  private readonly failureListeners = new Set<(failure: TxlogError) => void>();
  private failure: TxlogError | undefined;
  private closed = false;
  /** Set while this store must not write records of its own (a node that is not primary). */
  private notWritable: TxlogError | undefined;
  /** Epochs this store began ([epoch, LSN of its record]), applied or not yet. */
  private readonly begunEpochs: Array<[number, number]> = [];

  private constructor(options: ResolvedStoreOptions, wal: Wal, state: State) {
    this.options = options;
    this.wal = wal;
    this.state = state;
    this.walResolvedLsn = wal.lastLsn;
    this.nextPositionValue = state.nextPosition;
    this.epochValue = Math.max(wal.lastEpoch, state.epoch);
  }

  static async open(options: StoreOptions): Promise<Store> {
    const resolved = resolveStoreOptions(options);
    const walOptions: Parameters<typeof Wal.open>[0] = {
      dir: path.join(resolved.dir, 'wal'),
      fsync: resolved.fsync,
      platform: resolved.platform,
      log: resolved.log,
    };
    if (resolved.fsyncIntervalMs !== undefined) walOptions.fsyncIntervalMs = resolved.fsyncIntervalMs;
    if (resolved.segmentBytes !== undefined) walOptions.segmentBytes = resolved.segmentBytes;
    if (resolved.preallocate !== undefined) walOptions.preallocate = resolved.preallocate;
    if (resolved.recordBytesMax !== undefined) walOptions.recordBytesMax = resolved.recordBytesMax;
    if (resolved.syncOnWorkerThread !== undefined) walOptions.syncOnWorkerThread = resolved.syncOnWorkerThread;
    const wal = await Wal.open(walOptions);
    try {
      const state = await openState(resolved, wal);
      return new Store(resolved, wal, state);
    } catch (error) {
      await wal.close();
      throw error;
    }
  }

  /** The epoch this store writes records with (raised by promotion). */
  get epoch(): number {
    return this.epochValue;
  }

  get appliedLsn(): number {
    return this.state.appliedLsn;
  }

  get lastLsn(): number {
    return this.wal.lastLsn;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // ---------------------------------------------------------------- transactions

  /**
   * Runs `command` once. Resolves with the handler's reply once the commit is applied: in the
   * WAL per the fsync policy (durable under `always`) and, when replicated, acknowledged by the
   * backup. A failed transaction is recorded too and rejects with its `TxlogError` every time it
   * is resent. A resend of a committed request (same client and request id) returns the stored
   * outcome and runs nothing.
   */
  execute(command: string, args?: unknown, ids: RequestIds = {}): Promise<unknown> {
    try {
      this.checkOpen();
      const checked = this.checkRequest(command, args, ids);
      const key = checked.requestId > 0 ? requestKey(checked.clientId, checked.requestId) : undefined;
      if (key !== undefined) {
        const running = this.inFlight.get(key);
        if (running !== undefined) return running;
        const decided = this.pendingCommits.get(key);
        if (decided !== undefined) return this.waitApplied(decided.lsn).then(() => outcomeOf(decided.payload));
        const known = this.lookupOutcome(checked.clientId, checked.requestId);
        if (known !== undefined) return known;
      }
      if (this.inFlightCount >= this.options.limits.transactionsInFlightMax) {
        throw txlogError('BUSY', `${this.options.limits.transactionsInFlightMax} transactions are running; retry later`);
      }
      this.inFlightCount += 1;
      const running = this.run(checked).finally(() => {
        this.inFlightCount -= 1;
        if (key !== undefined) this.inFlight.delete(key);
      });
      if (key !== undefined) this.inFlight.set(key, running);
      return running;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Appends events to one stream (the built-in `append` command). */
  async append(stream: string, events: EventInput[], options: { expectedVersion?: number } & RequestIds = {}): Promise<AppendResult> {
    checkStreamName(stream, this.options.limits);
    const args: Record<string, unknown> = { stream, events };
    if (options.expectedVersion !== undefined) args['expectedVersion'] = options.expectedVersion;
    const ids: RequestIds = {};
    if (options.clientId !== undefined) ids.clientId = options.clientId;
    if (options.requestId !== undefined) ids.requestId = options.requestId;
    return (await this.execute('append', args, ids)) as AppendResult;
  }

  private checkRequest(command: unknown, args: unknown, ids: RequestIds): CheckedRequest {
    const limits = this.options.limits;
    if (!isWellFormedName(command, limits.commandNameLengthMax)) {
      throw txlogError('BAD_REQUEST', `command must be a string of 1..${limits.commandNameLengthMax} characters of well-formed Unicode`);
    }
    if (typeof ids !== 'object' || ids === null) throw txlogError('BAD_REQUEST', 'request ids must be an object');
    const clientId = ids.clientId ?? '';
    const requestId = ids.requestId ?? 0;
    if (typeof clientId !== 'string' || clientId.length > limits.clientIdLengthMax || !clientId.isWellFormed()) {
      throw txlogError('BAD_REQUEST', `clientId must be a string of at most ${limits.clientIdLengthMax} characters of well-formed Unicode`);
    }
    if (!Number.isSafeInteger(requestId) || requestId < 0) {
      throw txlogError('BAD_REQUEST', 'requestId must be a non-negative integer');
    }
    if ((clientId === '') !== (requestId === 0)) {
      throw txlogError('BAD_REQUEST', 'clientId and requestId (>= 1) go together: give both or neither');
    }
    // Args are recorded as they were when the request arrived: the handler gets its own copy,
    // so mutating it changes neither the commit record nor what replay and the backup see.
    const snapshot = snapshotChecked(args ?? null, limits.argsBytesMax, 'the command args');
    let digest: string | undefined;
    return {
      command,
      clientId,
      requestId,
      args: snapshot.value,
      packedArgs: snapshot.packed,
      digest: () => (digest ??= requestDigestOf(command, snapshot.packed)),
    };
  }

  private lookupOutcome(clientId: string, requestId: number): Promise<unknown> | undefined {
    const lookup = this.state.lookupSession(clientId, requestId, this.options.sessions);
    switch (lookup.kind) {
      case 'unknown':
        return undefined;
      case 'expired':
        return Promise.reject(
          txlogError('REQUEST_EXPIRED', `request ${requestId} of client ${clientId} is older than the session window`, {
            clientId,
            requestId,
            latestRequestId: lookup.latest,
          }),
        );
      case 'committed':
        return lookup.outcome.error !== undefined
          ? Promise.reject(errorFromSerialized(lookup.outcome.error))
          : Promise.resolve(lookup.outcome.reply);
    }
  }

  private async run(request: CheckedRequest): Promise<unknown> {
    const { command, clientId, requestId } = request;
    const handler = this.handlerFor(command);
    if (requestId > 0) this.checkRequestIdNotReused(request);
    const context = new TransactionContext({ clientId, requestId, command }, this.options.limits, this.liveSources(request));
    const outcome: HandlerOutcome =
      handler === undefined
        ? unknownCommandOutcome(command)
        : await this.runWithTimeout(runHandler(handler, context, decodePayload(request.packedArgs), this.options.limits), context);
    this.checkOpen();
    const commit = this.assembleAndAppend(command, request.args, clientId, requestId, outcome);
    await commit.applied;
    return outcomeOf(commit.payload);
  }

  /** The handler's outcome, or a recorded failure once `handlerTimeoutMs` has passed. */
  private runWithTimeout(running: Promise<HandlerOutcome>, context: TransactionContext): Promise<HandlerOutcome> {
    const timeoutMs = this.options.limits.handlerTimeoutMs;
    return new Promise<HandlerOutcome>((resolve, reject) => {
      const timer = this.options.platform.clock.setTimeout(() => {
        // From here on the handler's ctx refuses everything; whatever it still does is ignored.
        context.finish();
        running.catch(() => undefined);
        resolve(timedOutOutcome(context, timeoutMs));
      }, timeoutMs);
      running.then(
        (outcome) => {
          timer.cancel();
          resolve(outcome);
        },
        (error: unknown) => {
          timer.cancel();
          reject(error);
        },
      );
    });
  }

  private handlerFor(command: string): CommandHandler | undefined {
    if (Object.hasOwn(builtinCommands, command)) return builtinCommands[command];
    const commands = this.options.service?.commands;
    if (commands !== undefined && Object.hasOwn(commands, command)) return commands[command];
    return undefined;
  }

  /**
   * A journaled call is handed back only to the request that made it. A different request under
   * a reused id (a restarted client that picked its ids by hand) is refused before its handler
   * runs, and nothing is recorded for it: the original request can still be resent.
   */
  private checkRequestIdNotReused(request: CheckedRequest): void {
    const first = this.journaledCall(request.clientId, request.requestId, 0);
    if (first !== undefined) checkCallBinding(first.entry, request);
  }

  /** Call `callIndex` of a request as journaled by an earlier attempt, applied or not yet. */
  private journaledCall(clientId: string, requestId: number, callIndex: number): { entry: JournalEntry; lsn: number | undefined } | undefined {
    const pending = this.pendingCalls.get(callKey(clientId, requestId, callIndex));
    if (pending !== undefined) return pending;
    const recorded = this.state.journalEntry(clientId, requestId, callIndex);
    return recorded === undefined ? undefined : { entry: recorded, lsn: undefined };
  }

  private liveSources(request: CheckedRequest): Sources {
    const { clock, random } = this.options.platform;
    const { clientId, requestId } = request;
    return {
      read: (stream, fromVersion, maxCount) => this.state.readStream(stream, fromVersion, maxCount),
      call: async (callIndex, name, fn) => {
        if (requestId > 0) {
          // A resend finds calls journaled by an earlier attempt (before a crash or failover).
          const journaled = this.journaledCall(clientId, requestId, callIndex);
          if (journaled !== undefined) {
            try {
              checkCallBinding(journaled.entry, request);
            } catch (error) {
              abort(error);
            }
            if (journaled.lsn !== undefined) await this.waitApplied(journaled.lsn).catch(abort);
            return journaled.entry;
          }
        }
        return this.makeCall({ clientId, requestId, callIndex, name }, request, fn);
      },
      now: () => clock.nowMs(),
      random: () => random.float(),
    };
  }

  private async makeCall(
    call: { clientId: string; requestId: number; callIndex: number; name: string },
    request: CheckedRequest,
    fn: (idempotencyKey: string) => unknown,
  ): Promise<JournalEntry> {
    const key = `${call.clientId}:${call.requestId}:${call.callIndex}`;
    const payload: JournalPayload = { ...call };
    if (call.requestId > 0) payload.request = request.digest();
    try {
      const result = await fn(key);
      // The handler gets the snapshot, exactly what the journal record holds and a backup or
      // replay will hand back, not the object the outside system returned.
      payload.result = snapshotChecked(result === undefined ? null : result, this.options.limits.replyBytesMax, `the result of call ${call.name}`).value;
    } catch (error) {
      payload.error = serializeThrown(error, 'CALL_FAILED');
    }
    const entry: JournalEntry = { callIndex: call.callIndex, name: call.name };
    if (payload.error !== undefined) entry.error = payload.error;
    else entry.result = payload.result;
    if (payload.request !== undefined) entry.request = payload.request;
    try {
      this.checkOpen();
      const appended = this.appendRecord(recordTypes.journal, payload, encodePayload(payload));
      if (appended.lsn !== undefined) {
        entry.lsn = appended.lsn;
        if (call.requestId > 0) this.pendingCalls.set(callKey(call.clientId, call.requestId, call.callIndex), { lsn: appended.lsn, entry });
      }
      await appended.applied;
    } catch (error) {
      abort(error);
    }
    return entry;
  }

  /**
   * Checks expected versions against the heads (applied and pending), assigns versions and
   * positions, and appends the commit record, all in one synchronous step.
   */
  private assembleAndAppend(
    command: string,
    args: unknown,
    clientId: string,
    requestId: number,
    outcome: HandlerOutcome,
  ): { payload: CommitPayload; applied: Promise<number> } {
    const payload: CommitPayload = {
      clientId,
      requestId,
      command,
      args,
      events: [],
      firstPosition: this.nextPositionValue,
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
    let packed = encodePayload(payload);
    if (packed.length > this.wal.options.recordBytesMax) {
      payload.events = [];
      delete payload.reply;
      payload.error = txlogError('TOO_LARGE', `the transaction's commit record is ${packed.length} bytes, more than ${this.wal.options.recordBytesMax}`).toJSON();
      packed = encodePayload(payload);
    }
    const appended = this.appendRecord(recordTypes.commit, payload, packed);
    if (appended.lsn !== undefined) {
      this.holdHeads(payload, appended.lsn);
      if (requestId > 0) this.pendingCommits.set(requestKey(clientId, requestId), { lsn: appended.lsn, payload });
    }
    return { payload, applied: appended.applied };
  }

  private placeWrites(payload: CommitPayload, outcome: HandlerOutcome): TxlogError | undefined {
    const placed: StreamWrite[] = [];
    for (const write of outcome.writes) {
      const head = this.headOf(write.stream);
      if (write.expectedVersion !== undefined && write.expectedVersion !== head) {
        return txlogError('WRONG_EXPECTED_VERSION', `stream ${write.stream} is at version ${head}, not ${write.expectedVersion}`, {
          stream: write.stream,
          expectedVersion: write.expectedVersion,
          actualVersion: head,
        });
      }
      const streamWrite: StreamWrite = { stream: write.stream, firstVersion: head + 1, events: write.events };
      if (write.expectedVersion !== undefined) streamWrite.expectedVersion = write.expectedVersion;
      placed.push(streamWrite);
    }
    payload.events = placed;
    return undefined;
  }

  private holdHeads(payload: CommitPayload, lsn: number): void {
    if (payload.events.length === 0) return;
    for (const write of payload.events) {
      this.pendingHeads.set(write.stream, { version: write.firstVersion + write.events.length - 1, lsn });
    }
    this.nextPositionValue = payload.firstPosition + payload.events.reduce((sum, write) => sum + write.events.length, 0);
  }

  private headOf(stream: string): number {
    return this.pendingHeads.get(stream)?.version ?? this.state.streamVersion(stream);
  }

  // ---------------------------------------------------------------- the commit pipeline

  /**
   * Appends a record and returns when it is applied. The LSN is known at once (the WAL assigns
   * it synchronously); `lsn` is undefined when the WAL refused the record outright.
   */
  private appendRecord(type: number, payload: unknown, packed: Buffer): { lsn: number | undefined; applied: Promise<number> } {
    if (this.notWritable !== undefined) return { lsn: undefined, applied: Promise.reject(this.notWritable) };
    const lsn = this.wal.nextLsn;
    const written = this.wal.appendPacked(type, packed, this.epochValue);
    if (this.wal.nextLsn === lsn) return { lsn: undefined, applied: written };
    return { lsn, applied: this.track({ lsn, type, payload }, written) };
  }

  private track(record: ApplicableRecord, written: Promise<number>): Promise<number> {
    this.pending.set(record.lsn, record);
    const applied = this.waitApplied(record.lsn).then(() => record.lsn);
    written.then(
      (lsn) => {
        // A record dropped meanwhile (a primary stepping down) no longer counts.
        if (this.pending.get(lsn) !== record) return;
        if (lsn > this.walResolvedLsn) this.walResolvedLsn = lsn;
        this.scheduleApply();
      },
      (error: unknown) => this.fail(error),
    );
    return applied;
  }

  /** Resolves when `lsn` is applied; rejects when the store fails or gives up on it. */
  waitApplied(lsn: number): Promise<void> {
    if (lsn <= this.state.appliedLsn) return Promise.resolve();
    if (this.failure !== undefined) return Promise.reject(outcomeUnknown(this.failure));
    if (this.closed) return Promise.reject(txlogError('CLOSED', 'the store is closed'));
    return new Promise<void>((resolve, reject) => {
      const waiters = this.appliedWaiters.get(lsn);
      if (waiters === undefined) this.appliedWaiters.set(lsn, [{ resolve, reject }]);
      else waiters.push({ resolve, reject });
    });
  }

  /**
   * A replicated node allows local writes only while it is primary; otherwise transactions fail
   * with `error` (NOT_PRIMARY) before anything reaches the WAL.
   */
  setWritable(writable: boolean, error?: TxlogError): void {
    this.notWritable = writable ? undefined : (error ?? txlogError('NOT_PRIMARY', 'this node is not the primary'));
  }

  /**
   * Drops every record not yet applied, from memory and from the WAL (a primary stepping down:
   * what it never released may be missing from the new primary's log). Their callers get `error`.
   */
  async dropUnapplied(error: TxlogError): Promise<void> {
    this.checkOpen();
    await this.wal.settle();
    this.checkOpen();
    this.rejectWaiters(error);
    this.pending.clear();
    this.pendingCommits.clear();
    this.pendingCalls.clear();
    this.pendingHeads.clear();
    this.nextPositionValue = this.state.nextPosition;
    if (this.wal.lastLsn > this.state.appliedLsn) this.wal.truncateAfter(this.state.appliedLsn);
    this.walResolvedLsn = this.wal.lastLsn;
    this.epochValue = Math.max(this.wal.lastEpoch, this.state.epoch);
  }

  /**
   * The client's highest request id with any trace in this store: committed, decided but not yet
   * released, running, or with a journaled call of a request that never committed (0 when
   * unknown). A restarted client continues above it; continuing above the committed ones only
   * would reuse the id of a request in flight, or hand a new request the old one's call results.
   */
  latestRequestId(clientId: string): number {
    let latest = this.state.latestRequestId(clientId);
    const prefix = `${clientId}\u0000`;
    for (const key of [...this.pendingCommits.keys(), ...this.inFlight.keys(), ...this.pendingCalls.keys()]) {
      // Only keys of exactly this client: another id may start with this one and a NUL.
      const rest = key.startsWith(prefix) ? key.slice(prefix.length) : '';
      const requestId = /^(\d+)(\u0000\d+)?$/.exec(rest)?.[1];
      if (requestId !== undefined) latest = Math.max(latest, Number(requestId));
    }
    return latest;
  }

  /** `readStream` as of a version (re-execution on a backup). */
  readStreamAsOf(stream: string, fromVersion: number, maxCount: number, version: number): StreamSlice {
    return this.state.readStream(stream, fromVersion, maxCount, version);
  }

  /** Resolves when something is applied, or after `timeoutMs`. */
  async waitForEvents(timeoutMs: number): Promise<void> {
    const controller = new AbortController();
    const timer = this.options.platform.clock.setTimeout(() => controller.abort(), timeoutMs);
    try {
      await this.waitForApply(controller.signal);
    } finally {
      timer.cancel();
    }
  }

  /** Resolves when every record appended so far is applied. */
  async whenIdle(): Promise<void> {
    while (this.pending.size > 0 && !this.closed && this.failure === undefined) {
      await this.waitApplied(this.wal.nextLsn - 1);
    }
  }


  /** See `State.endOfEpoch`. */
  endOfEpoch(epoch: number): number {
    const applied = this.state.endOfEpoch(epoch);
    if (applied !== undefined) return applied;
    const begun = this.begunEpochs.find(([started]) => started > epoch);
    return begun === undefined ? this.wal.lastLsn : begun[1] - 1;
  }

  /** Backup side: appends a frame received from the primary, as it is. Resolves when applied. */
  appendReplicated(frame: Buffer): { lsn: number; written: Promise<number>; applied: Promise<number> } {
    this.checkOpen();
    const lsn = this.wal.nextLsn;
    const written = this.wal.appendFrame(frame);
    if (this.wal.nextLsn === lsn) return { lsn, written, applied: written };
    const record = { lsn, type: frame.readUInt8(8), payload: recordPayload({ frame }) };
    if (record.type === recordTypes.epoch) this.epochValue = Math.max(this.epochValue, (record.payload as EpochPayload).epoch);
    this.epochValue = Math.max(this.epochValue, frame.readUInt32LE(12));
    return { lsn, written, applied: this.track(record, written) };
  }

  /**
   * Replication sets this: records are applied (and callers answered) only up to the LSN it
   * returns. Call `releaseMore()` when it grows.
   */
  setReleaseGate(gate: () => number): void {
    this.releaseGate = gate;
  }

  releaseMore(): void {
    this.scheduleApply();
  }

  /** Listeners see each applied batch (the backup re-executes commits from here). */
  onApplied(listener: (records: readonly ApplicableRecord[]) => void): () => void {
    this.applyListeners.add(listener);
    return () => this.applyListeners.delete(listener);
  }

  private scheduleApply(): void {
    if (this.applyScheduled) return;
    this.applyScheduled = true;
    queueMicrotask(() => {
      this.applyScheduled = false;
      this.applyReady();
    });
  }

  private applyReady(): void {
    if (this.failure !== undefined || this.closed) return;
    const limit = Math.min(this.walResolvedLsn, this.releaseGate());
    const batch: ApplicableRecord[] = [];
    for (let lsn = this.state.appliedLsn + 1; lsn <= limit; lsn++) {
      const record = this.pending.get(lsn);
      if (record === undefined) break;
      batch.push(record);
    }
    if (batch.length === 0) return;
    try {
      this.state.apply(batch, this.options.sessions);
    } catch (error) {
      this.fail(error);
      return;
    }
    for (const record of batch) {
      this.pending.delete(record.lsn);
      this.forgetDecided(record);
      const waiters = this.appliedWaiters.get(record.lsn);
      this.appliedWaiters.delete(record.lsn);
      for (const waiter of waiters ?? []) waiter.resolve();
    }
    // A backup never assembles commits, so only here does its next position catch up with what
    // it applied; a batch ending in a journal entry must not leave it stale for a promotion.
    if (this.pending.size === 0) this.nextPositionValue = Math.max(this.nextPositionValue, this.state.nextPosition);
    for (const listener of this.applyListeners) listener(batch);
    const wakers = [...this.applyWakers];
    this.applyWakers.clear();
    for (const wake of wakers) wake();
  }

  private forgetDecided(record: ApplicableRecord): void {
    if (record.type === recordTypes.commit) {
      const commit = record.payload as CommitPayload;
      this.releaseHeads(record.lsn, commit);
      this.pendingCommits.delete(requestKey(commit.clientId, commit.requestId));
    } else if (record.type === recordTypes.journal) {
      const journal = record.payload as JournalPayload;
      this.pendingCalls.delete(callKey(journal.clientId, journal.requestId, journal.callIndex));
    }
  }

  private releaseHeads(lsn: number, commit: CommitPayload): void {
    for (const write of commit.events) {
      const head = this.pendingHeads.get(write.stream);
      if (head !== undefined && head.lsn <= lsn) this.pendingHeads.delete(write.stream);
    }
    if (this.pending.size === 0) this.nextPositionValue = Math.max(this.nextPositionValue, this.state.nextPosition);
  }

  /** A failed disk or state write: refuse everything from now on (an fsync error is not retried). */
  private fail(error: unknown): void {
    if (this.failure !== undefined) return;
    this.failure =
      error instanceof TxlogError ? error : txlogError('STORE_FAILED', `store failed: ${String(error)}`, {}, error);
    this.options.log(`store failed, refusing all requests: ${this.failure.message}`);
    // Whoever waits waits for a record the WAL took: it may be in the log (a restart would then
    // apply it), so its outcome is unknown, not failed.
    this.rejectWaiters(outcomeUnknown(this.failure));
    for (const listener of this.failureListeners) listener(this.failure);
  }

  /** The failure that stopped the store (a disk or state write), if any. */
  get failedWith(): TxlogError | undefined {
    return this.failure;
  }

  /** Called once if the store fails: a replicated node then stops serving so its peer can take over. */
  onFailure(listener: (failure: TxlogError) => void): () => void {
    this.failureListeners.add(listener);
    return () => this.failureListeners.delete(listener);
  }

  private rejectWaiters(error: Error): void {
    const waiting = [...this.appliedWaiters.values()];
    this.appliedWaiters.clear();
    for (const waiters of waiting) for (const waiter of waiters) waiter.reject(error);
  }

  /**
   * Fails every commit not yet applied with `error` (a primary that lost its backup). The
   * records stay in the WAL: their outcome is unknown to the caller, who resends.
   */
  failUnreleased(error: TxlogError): void {
    this.rejectWaiters(error);
  }

  private checkOpen(): void {
    if (this.closed) throw txlogError('CLOSED', 'the store is closed');
    if (this.failure !== undefined) throw this.failure;
  }

  // ---------------------------------------------------------------- replication support

  /** Writes an epoch record (a promotion) and applies it before anything else is served. */
  /**
   * Writes an epoch record (a node becoming primary) and makes it durable at once whatever the
   * fsync policy: fencing depends on it. Returns its LSN; serve nothing before it is applied
   * (`waitApplied`), which in a pair also means the backup has it.
   */
  beginEpoch(epoch: number, nodeId: string): number {
    assert(epoch > this.epochValue, 'a new epoch must be higher');
    this.epochValue = epoch;
    const payload: EpochPayload = { epoch, fromLsn: this.wal.nextLsn - 1, nodeId, atMs: this.options.platform.clock.nowMs() };
    const appended = this.appendRecord(recordTypes.epoch, payload, encodePayload(payload));
    appended.applied.catch(() => undefined);
    if (appended.lsn === undefined) throw txlogError('STORE_FAILED', 'the epoch record could not be written');
    this.begunEpochs.push([epoch, appended.lsn]);
    this.wal.flush();
    this.wal.syncNow();
    return appended.lsn;
  }

  /** Raises the epoch without writing (a backup learning its primary's epoch). */
  observeEpoch(epoch: number): void {
    this.epochValue = Math.max(this.epochValue, epoch);
  }

  /**
   * Cuts the WAL after `lsn` (a rejoining node dropping a tail the primary never had) and
   * rebuilds the LMDB state if it had applied any of it.
   */
  async truncateAfter(lsn: number): Promise<void> {
    this.checkOpen();
    assert(this.pending.size === 0, 'truncateAfter with records in flight');
    await this.wal.settle();
    this.wal.truncateAfter(lsn);
    this.walResolvedLsn = this.wal.lastLsn;
    this.epochValue = this.wal.lastEpoch;
    if (this.state.appliedLsn > lsn) {
      await this.state.close();
      State.destroy(path.join(this.options.dir, 'state'));
      this.state = await openState(this.options, this.wal);
      this.nextPositionValue = this.state.nextPosition;
      this.pendingHeads.clear();
    }
    this.epochValue = Math.max(this.wal.lastEpoch, this.state.epoch);
  }


  // ---------------------------------------------------------------- reads

  /** Reads a stream as applied (never a commit that could still be lost). */
  async readStream(stream: string, options: ReadStreamOptions = {}): Promise<StreamSlice> {
    this.checkOpen();
    const limits = this.options.limits;
    checkStreamName(stream, limits);
    const fromVersion = options.fromVersion ?? 0;
    const maxCount = options.maxCount ?? limits.readEventsMax;
    checkCount(fromVersion, 'fromVersion');
    checkCount(maxCount, 'maxCount');
    return this.state.readStream(stream, fromVersion, Math.min(maxCount, limits.readEventsMax));
  }

  /** Events in global commit order from `fromPosition`. */
  async readAll(options: { fromPosition?: number; maxCount?: number } = {}): Promise<RecordedEvent[]> {
    this.checkOpen();
    const fromPosition = options.fromPosition ?? 0;
    const maxCount = options.maxCount ?? this.options.limits.readEventsMax;
    checkCount(fromPosition, 'fromPosition');
    checkCount(maxCount, 'maxCount');
    return this.state.readAll(fromPosition, Math.min(maxCount, this.options.limits.readEventsMax));
  }

  /**
   * Every event from `fromPosition` in global order, then live ones as they are applied. The
   * subscription pulls pages from LMDB at its own pace, so a slow consumer costs no memory and
   * the switch from catch-up to live has no gap and no duplicate. Ends when the signal aborts,
   * the consumer stops, or the store closes.
   */
  async *subscribe(options: SubscribeOptions = {}): AsyncGenerator<RecordedEvent> {
    let next = options.fromPosition ?? 0;
    checkCount(next, 'fromPosition');
    let caughtUp = false;
    const stopped = (): boolean => this.closed || options.signal?.aborted === true;
    while (!stopped()) {
      this.checkOpen();
      const page = this.state.readAll(next, subscribePageEvents);
      if (page.length > 0) {
        for (const event of page) {
          yield event;
          next = event.position + 1;
          if (stopped()) return;
        }
        continue;
      }
      if (!caughtUp) {
        caughtUp = true;
        options.onCaughtUp?.();
      }
      await this.waitForApply(options.signal);
    }
  }

  private waitForApply(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.closed || signal?.aborted === true) return resolve();
      const wake = (): void => {
        signal?.removeEventListener('abort', wake);
        this.applyWakers.delete(wake);
        resolve();
      };
      this.applyWakers.add(wake);
      signal?.addEventListener('abort', wake, { once: true });
    });
  }

  /** For tests and `status`: the whole derived state in comparable form. */
  dumpState(): ReturnType<State['dump']> {
    return this.state.dump();
  }

  /** Writes what is queued, applies what can be applied, fails the rest with CLOSED, closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.wal.settle();
    // Let the resolved appends run their continuations and apply.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.closed) return;
    this.closed = true;
    this.rejectWaiters(
      txlogError('OUTCOME_UNKNOWN', 'the store closed after this commit reached the WAL but before it was released; resend the same request id', {
        reason: 'CLOSED',
      }),
    );
    for (const wake of this.applyWakers) wake();
    this.applyWakers.clear();
    await this.wal.close();
    await this.state.close();
  }
}

function requestKey(clientId: string, requestId: number): string {
  return `${clientId}\u0000${requestId}`;
}

function callKey(clientId: string, requestId: number, callIndex: number): string {
  return `${clientId}\u0000${requestId}\u0000${callIndex}`;
}

/** Refuses a journaled call to a request other than the one that made it (see `JournalPayload.request`). */
function checkCallBinding(entry: JournalEntry, request: CheckedRequest): void {
  if (entry.request === undefined || entry.request === request.digest()) return;
  throw txlogError(
    'REQUEST_ID_REUSED',
    `request ${request.requestId} of client ${request.clientId} was already used by another request (other command or args) that made external calls; use a new request id`,
    { clientId: request.clientId, requestId: request.requestId },
  );
}

function outcomeOf(commit: CommitPayload): unknown {
  if (commit.error !== undefined) throw errorFromSerialized(commit.error);
  return commit.reply;
}

/** The answer to a caller whose record the WAL took before the store failed. */
function outcomeUnknown(failure: TxlogError): TxlogError {
  return txlogError(
    'OUTCOME_UNKNOWN',
    `the store failed after this commit reached the WAL (${failure.code}: ${failure.message}); it may be committed: resend the same request id once the store is reopened`,
    { reason: failure.code },
    failure,
  );
}

/** An infrastructure failure under `ctx.call`: abandon the transaction, record nothing. */
function abort(error: unknown): never {
  throw new TransactionAborted(error instanceof Error ? error : new Error(String(error)));
}

function checkCount(value: unknown, name: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw txlogError('BAD_REQUEST', `${name} must be a non-negative integer`);
  }
}

function timedOutOutcome(context: TransactionContext, timeoutMs: number): HandlerOutcome {
  const error = txlogError('HANDLER_FAILED', `the handler did not finish within ${timeoutMs} ms`, { timedOut: true, timeoutMs }).toJSON();
  return {
    writes: [],
    error,
    now: [...context.nowValues],
    random: [...context.randomValues],
    readSet: [...context.readSet],
    calls: context.calls,
    callLsns: context.callLsns === undefined ? undefined : [...context.callLsns],
    digest: '',
  };
}

function unknownCommandOutcome(command: string): HandlerOutcome {
  const error = txlogError('UNKNOWN_COMMAND', `unknown command ${command}`, { command }).toJSON();
  return { writes: [], error, now: [], random: [], readSet: [], calls: 0, callLsns: [], digest: '' };
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

/** Opens LMDB, rebuilding it from the WAL when it is unreadable or ahead of the WAL. */
async function openState(options: ResolvedStoreOptions, wal: Wal): Promise<State> {
  const stateDir = path.join(options.dir, 'state');
  let state: State;
  try {
    state = State.open(stateDir, options.stateMapBytes);
  } catch (error) {
    options.log(`state in ${stateDir} cannot be opened (${String(error)}); rebuilding it from the WAL`);
    State.destroy(stateDir);
    state = State.open(stateDir, options.stateMapBytes);
  }
  const bootId = currentBootId();
  const reason =
    state.appliedLsn > wal.lastLsn
      ? `state is ahead of the WAL (LSN ${state.appliedLsn} > ${wal.lastLsn})`
      : state.mayBeDamagedByMachineCrash(bootId)
        ? 'state was not closed cleanly before the machine restarted'
        : undefined;
  if (reason !== undefined) {
    options.log(`${reason}; rebuilding it from the WAL`);
    await state.close();
    State.destroy(stateDir);
    state = State.open(stateDir, options.stateMapBytes);
  }
  state.markOpen(bootId);
  if (state.appliedLsn + 1 < wal.firstLsn) {
    throw txlogError('CORRUPT_LOG', `state is at LSN ${state.appliedLsn} but the WAL starts at ${wal.firstLsn}`);
  }
  let batch: ApplicableRecord[] = [];
  for (const record of wal.read(state.appliedLsn + 1)) {
    batch.push({ lsn: record.lsn, type: record.type, payload: recordPayload(record) });
    if (batch.length >= recoveryBatchRecords) {
      state.apply(batch, options.sessions);
      batch = [];
    }
  }
  state.apply(batch, options.sessions);
  return state;
}
