/**
 * Running one handler: the `ctx` it gets, and what comes out (buffered writes, reply or error,
 * recorded clock and random values, read set, digest). The same context class serves live
 * execution and re-execution; only its `Sources` differ, so a handler cannot tell them apart.
 */
import { assert } from '../wal/assert.js';
import { errorFromSerialized, infrastructureCodes, txlogError, type SerializedError, type TxlogError } from '../wal/errors.js';
import type { EventInput, RecordedInputs } from './records.js';
import type { AppendOptions, CommandHandler, Context, ContextReadOptions, StreamSlice } from './service.js';
import type { StoreLimits } from './options.js';
import type { JournalEntry } from './state.js';
import { checkedError, digestOf, isWellFormedName, snapshotChecked } from './values.js';
import { checkedEventId } from './event-ids.js';
import { recordedExpectedVersion, type ExpectedVersion } from './expected-version.js';

export interface PendingWrite {
  stream: string;
  expectedVersion?: number;
  events: EventInput[];
}

/** Where a context gets what is not the handler's own: reads, calls, clock and randomness. */
export interface Sources {
  read(stream: string, fromVersion: number, maxCount: number, readIndex: number): StreamSlice;
  /** Makes (live) or looks up (re-execution) call `callIndex`; resolves with its journaled outcome. */
  call(callIndex: number, name: string, fn: (idempotencyKey: string) => unknown): Promise<JournalEntry>;
  now(index: number): number;
  random(index: number): number;
}

/**
 * Infrastructure failed under a handler (the journal could not be replicated, the store
 * closed): the transaction is abandoned, not recorded, and the caller resends.
 */
export class TransactionAborted extends Error {
  override readonly name = 'TransactionAborted';
  readonly reason: Error;
  constructor(reason: Error) {
    super(reason.message);
    this.reason = reason;
  }
}

/** What a handler did (its writes, reply or error) and what it recorded on the way. */
export interface HandlerOutcome extends RecordedInputs {
  writes: PendingWrite[];
  /** Expected versions of streams the transaction checks without (necessarily) writing them. */
  checks: Array<[string, number]>;
  reply?: unknown;
  error?: SerializedError;
}

export class TransactionContext implements Context {
  readonly clientId: string;
  readonly requestId: number;
  readonly command: string;
  readonly writes: PendingWrite[] = [];
  readonly nowValues: number[] = [];
  readonly randomValues: number[] = [];
  readonly readSet: Array<[string, number]> = [];
  /** Expected versions of streams checked with `expectVersion` ([stream, recorded form]). */
  readonly checks: Array<[string, number]> = [];
  /** LSN of each call's journal record; undefined once a call's LSN is not known (an old log). */
  callLsns: number[] | undefined = [];
  private eventCount = 0;
  private callCount = 0;
  private callInProgress = false;
  private finished = false;
  /** Set when the handler broke a rule of the context (overlapping calls): the transaction fails with it. */
  misused: TxlogError | undefined;
  /** Set when a call's journaling failed: whatever the handler does next, nothing is recorded. */
  aborted: Error | undefined;
  private readonly limits: StoreLimits;
  private readonly sources: Sources;
  /** Whether events handed to `append` are already checked, private and within the event limit (see the constructor). */
  private readonly eventsPrechecked: boolean;

  /**
   * `recordedArgsBytes`: the handler is a built-in reading the request's recorded args, which
   * were checked and decoded into a private copy in this many bytes. An event it appends is a
   * part of that copy: already serializable, owned by nobody else, and smaller than the args,
   * so when the args fit in the event limit (less the `data: null` a check may add) it is
   * committed as it is, without being packed and decoded once more.
   */
  constructor(ids: { clientId: string; requestId: number; command: string }, limits: StoreLimits, sources: Sources, recordedArgsBytes?: number) {
    this.clientId = ids.clientId;
    this.requestId = ids.requestId;
    this.command = ids.command;
    this.limits = limits;
    this.sources = sources;
    this.eventsPrechecked = recordedArgsBytes !== undefined && recordedArgsBytes + precheckedSlackBytes <= limits.eventBytesMax;
  }

  get calls(): number {
    return this.callCount;
  }

  async readStream(stream: string, options: ContextReadOptions = {}): Promise<StreamSlice> {
    this.checkLive('readStream');
    checkStreamName(stream, this.limits);
    const fromVersion = options.fromVersion ?? 0;
    const maxCount = Math.min(options.maxCount ?? this.limits.readEventsMax, this.limits.readEventsMax);
    if (!Number.isSafeInteger(fromVersion) || fromVersion < 0 || !Number.isSafeInteger(maxCount) || maxCount < 0) {
      throw txlogError('BAD_REQUEST', 'readStream: fromVersion and maxCount must be non-negative integers');
    }
    const slice = this.sources.read(stream, fromVersion, maxCount, this.readSet.length);
    this.readSet.push([stream, slice.version]);
    return slice;
  }

  append(stream: string, events: EventInput[], options: AppendOptions = {}): void {
    this.checkLive('append');
    checkStreamName(stream, this.limits);
    if (!Array.isArray(events) || events.length === 0) {
      throw txlogError('BAD_REQUEST', `append to ${stream}: events must be a non-empty array`);
    }
    const expected = recordedExpectedVersion(options.expectedVersion, `append to ${stream}`);
    if (this.eventCount + events.length > this.limits.eventsPerTransactionMax) {
      throw txlogError('TOO_LARGE', `a transaction may write at most ${this.limits.eventsPerTransactionMax} events`);
    }
    const checked = events.map((event) => checkEvent(event, stream, this.limits, this.eventsPrechecked));
    this.eventCount += events.length;
    const existing = this.writes.find((write) => write.stream === stream);
    if (existing === undefined) {
      const write: PendingWrite = { stream, events: checked };
      if (expected !== undefined) write.expectedVersion = expected;
      this.writes.push(write);
      return;
    }
    if (expected !== undefined) {
      throw txlogError('BAD_REQUEST', `append to ${stream} twice in one transaction: only the first may pass expectedVersion`);
    }
    existing.events.push(...checked);
  }

  expectVersion(stream: string, expectedVersion: ExpectedVersion): void {
    this.checkLive('expectVersion');
    checkStreamName(stream, this.limits);
    const expected = recordedExpectedVersion(expectedVersion, `expectVersion on ${stream}`);
    if (expected === undefined) return;
    if (this.checks.length >= this.limits.checksPerTransactionMax) {
      throw txlogError('TOO_LARGE', `a transaction may check at most ${this.limits.checksPerTransactionMax} streams`);
    }
    this.checks.push([stream, expected]);
  }

  async call<T>(name: string, fn: (idempotencyKey: string) => Promise<T> | T): Promise<T> {
    this.checkLive('call');
    if (!isWellFormedName(name, this.limits.commandNameLengthMax)) {
      throw txlogError('BAD_REQUEST', `ctx.call needs a name of 1..${this.limits.commandNameLengthMax} characters of well-formed Unicode`);
    }
    if (typeof fn !== 'function') throw txlogError('BAD_REQUEST', 'ctx.call needs a function');
    if (this.callInProgress) {
      // Sticky: a handler that catches this must not commit as if its calls were in order.
      this.misused ??= txlogError('BAD_REQUEST', 'ctx.call started before the previous call was journaled; await each call');
      throw this.misused;
    }
    if (this.callCount >= this.limits.callsPerTransactionMax) {
      throw txlogError('TOO_LARGE', `a transaction may make at most ${this.limits.callsPerTransactionMax} calls`);
    }
    const callIndex = this.callCount++;
    this.callInProgress = true;
    try {
      let entry: JournalEntry;
      try {
        entry = await this.sources.call(callIndex, name, fn);
      } catch (error) {
        if (error instanceof TransactionAborted) this.aborted ??= error.reason;
        throw error;
      }
      if (entry.lsn === undefined) this.callLsns = undefined;
      else this.callLsns?.push(entry.lsn);
      if (entry.name !== name) {
        throw txlogError('DETERMINISM_VIOLATION', `call ${callIndex} is journaled as ${entry.name}, the handler now calls ${name}`);
      }
      if (entry.error !== undefined) throw errorFromSerialized(entry.error);
      return entry.result as T;
    } finally {
      this.callInProgress = false;
    }
  }

  now(): number {
    this.checkLive('now');
    const value = this.sources.now(this.nowValues.length);
    this.nowValues.push(value);
    return value;
  }

  random(): number {
    this.checkLive('random');
    const value = this.sources.random(this.randomValues.length);
    this.randomValues.push(value);
    return value;
  }

  private checkLive(what: string): void {
    if (this.finished) throw txlogError('BAD_REQUEST', `ctx.${what} used after the handler returned`);
  }

  /** Marks the context done: a handler's stray promise can no longer change the outcome. */
  finish(): void {
    this.finished = true;
  }

  /**
   * What this run recorded, with `digest` of what it did; asked once the context is finished.
   * From then on the clock, randomness and reads refuse, so those arrays are the record's own;
   * the call LSNs are a copy, because a call still settling after the handler returned or timed
   * out may add one to a commit record already assembled.
   */
  recorded(digest: string): RecordedInputs {
    assert(this.finished, 'a context is recorded once it is finished');
    const recorded: RecordedInputs = { now: this.nowValues, random: this.randomValues, readSet: this.readSet, calls: this.callCount, digest };
    if (this.callLsns !== undefined) recorded.callLsns = [...this.callLsns];
    return recorded;
  }
}

export function checkStreamName(stream: unknown, limits: StoreLimits): asserts stream is string {
  // A lone surrogate would be stored as U+FFFD: the stream would then read as empty under the
  // name it was written with, after a rebuild or on the backup.
  if (!isWellFormedName(stream, limits.streamNameLengthMax)) {
    throw txlogError('BAD_REQUEST', `stream names are strings of 1..${limits.streamNameLengthMax} characters of well-formed Unicode`);
  }
}

/** What normalizing an event may add to its bytes (a `data: null`), with room to spare. */
const precheckedSlackBytes = 64;

function checkEvent(event: unknown, stream: string, limits: StoreLimits, prechecked: boolean): EventInput {
  if (typeof event !== 'object' || event === null) throw txlogError('BAD_REQUEST', `append to ${stream}: each event must be an object`);
  const { id, type, data, metadata } = event as Record<string, unknown>;
  if (!isWellFormedName(type, limits.eventTypeLengthMax)) {
    throw txlogError('BAD_REQUEST', `append to ${stream}: each event needs a type of 1..${limits.eventTypeLengthMax} characters of well-formed Unicode`);
  }
  // No `id` key unless the caller gave one: the outcome's digest must stay what it was for
  // handlers written before event ids (a replay of an old log compares against it).
  // null is JSON's "absent", as for expectedVersion.
  const checked: EventInput = id === undefined || id === null ? { type, data: data ?? null } : { id: checkedEventId(id, stream), type, data: data ?? null };
  if (metadata !== undefined) checked.metadata = metadata;
  if (prechecked) return checked;
  // The snapshot, not the handler's object, is committed: growing the data after the append
  // can neither bypass the limit nor change what is recorded.
  return snapshotChecked(checked, limits.eventBytesMax, `an event of ${stream}`).value;
}

/**
 * A thrown value as it is recorded. Our errors about the transaction itself keep their code
 * (WRONG_EXPECTED_VERSION, TOO_LARGE, CALL_FAILED...); an infrastructure code thrown by service
 * code (NOT_PRIMARY, TIMEOUT, BUSY... from a client of another system, say) becomes `fallback`
 * with the original code in `details.thrownCode`: a recorded, final outcome must never read as
 * "retry" or "outcome unknown". Anything else is `fallback`.
 */
export function serializeThrown(error: unknown, fallback: 'HANDLER_FAILED' | 'CALL_FAILED'): SerializedError {
  const ours = checkedError(error);
  if (ours !== undefined && !infrastructureCodes.has(ours.code)) {
    return { code: ours.code, message: String(ours.message), details: ours.details ?? {} };
  }
  if (ours !== undefined) {
    return { code: fallback, message: `${ours.code}: ${String(ours.message)}`, details: { thrownCode: ours.code, thrownDetails: ours.details ?? {} } };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: fallback, message, details: {} };
}

/** Runs a handler to completion and packages what it did; throws only when the transaction was aborted. */
export async function runHandler(handler: CommandHandler, context: TransactionContext, args: unknown, limits: StoreLimits): Promise<HandlerOutcome> {
  let reply: unknown;
  let error: SerializedError | undefined;
  try {
    reply = recordedReply(await handler(context, args), limits);
  } catch (thrown) {
    error = serializeThrown(thrown, 'HANDLER_FAILED');
  } finally {
    context.finish();
  }
  return outcomeOf(context, reply, error);
}

/**
 * `runHandler` for a built-in command, whose handler returns at once (it never awaits, calls or
 * leaves a promise behind): the same outcome, without a promise or a turn of the microtask queue.
 */
export function runBuiltinHandler(handler: CommandHandler, context: TransactionContext, args: unknown, limits: StoreLimits): HandlerOutcome {
  let reply: unknown;
  let error: SerializedError | undefined;
  try {
    reply = recordedReply(handler(context, args), limits);
  } catch (thrown) {
    error = serializeThrown(thrown, 'HANDLER_FAILED');
  } finally {
    context.finish();
  }
  return outcomeOf(context, reply, error);
}

function recordedReply(reply: unknown, limits: StoreLimits): unknown {
  // No reply (a built-in's, say) is null, with nothing to check or copy.
  if (reply === undefined || reply === null) return null;
  // What is recorded and answered is the snapshot: a stray promise of the handler that keeps
  // changing the object it returned changes neither.
  return snapshotChecked(reply, limits.replyBytesMax, 'the reply').value;
}

function outcomeOf(context: TransactionContext, handlerReply: unknown, handlerError: SerializedError | undefined): HandlerOutcome {
  let reply = handlerError === undefined ? handlerReply : undefined;
  let error = handlerError;
  if (context.aborted !== undefined) throw context.aborted;
  if (error === undefined && context.misused !== undefined) {
    error = context.misused.toJSON();
    reply = undefined;
  }
  const writes = error === undefined ? context.writes : [];
  const checks = error === undefined ? context.checks : [];
  // Checks join the digest only when there are some: a commit written before them must replay
  // to the digest it was recorded with.
  const digested: unknown[] = [writes, error === undefined ? reply : null, error?.code ?? null];
  if (checks.length > 0) digested.push(checks);
  const outcome: HandlerOutcome = { writes, checks, ...context.recorded(digestOf(digested)) };
  if (error !== undefined) outcome.error = error;
  else outcome.reply = reply;
  return outcome;
}
