/**
 * Running one transaction live: the handler with its `ctx`, its external calls (journaled, and
 * released before the handler sees their result), the handler timeout, and handing the outcome
 * to the assembler. Re-execution (`replay.ts`) runs the same handler with other sources.
 */
import { AssertionFailed } from '../wal/assert.js';
import { errorFromSerialized, txlogError } from '../wal/errors.js';
import { decodePayload } from '../wal/format.js';
import type { CommitAssembler } from './commit-assembler.js';
import type { CommitPipeline } from './commit-pipeline.js';
import { TransactionAborted, TransactionContext, runBuiltinHandler, runHandler, serializeThrown, type HandlerOutcome, type Sources } from './context.js';
import type { ResolvedStoreOptions } from './options.js';
import type { CommitPayload, JournalPayload } from './records.js';
import { checkCallBinding, requestDigest, type CheckedRequest } from './requests.js';
import { builtinCommands, type CommandHandler } from './service.js';
import type { JournalEntry } from './state.js';
import { snapshotChecked } from './values.js';
import { DeadlineQueue } from './deadline-queue.js';

/** How a transaction's caller is answered. */
interface Answer {
  resolve(reply: unknown): void;
  reject(error: unknown): void;
}

export class TransactionRunner {
  private readonly pipeline: CommitPipeline;
  private readonly assembler: CommitAssembler;
  private readonly options: ResolvedStoreOptions;

  /** Every running handler's deadline, on one timer. */
  private readonly deadlines: DeadlineQueue;

  constructor(pipeline: CommitPipeline, assembler: CommitAssembler, options: ResolvedStoreOptions) {
    this.pipeline = pipeline;
    this.assembler = assembler;
    this.options = options;
    this.deadlines = new DeadlineQueue(options.platform.clock, options.limits.handlerTimeoutMs);
  }

  /** Handlers running with a deadline (their timeout) waiting. */
  get deadlinesWaiting(): number {
    return this.deadlines.size;
  }

  /**
   * Runs the request's handler and commits its outcome; resolves (or rejects) once released.
   * `finished` runs once, just before the returned promise settles. Besides the handler's own,
   * this is the transaction's only promise: the deadline, the WAL and the release answer through
   * callbacks (a promise per step was garbage nobody needed: 17 per transaction, now 6 with the
   * handler's and the caller's). A built-in command runs with none of the handler's and no
   * deadline. The first answer counts; `finished` runs for it alone.
   */
  run(request: CheckedRequest, finished: () => void = () => undefined): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      let answered = false;
      const answer: Answer = {
        resolve: (reply) => {
          if (answered) return;
          answered = true;
          finished();
          resolve(reply);
        },
        reject: (error) => {
          if (answered) return;
          answered = true;
          finished();
          reject(error);
        },
      };
      try {
        this.start(request, answer);
      } catch (error) {
        answer.reject(error);
      }
    });
  }

  private start(request: CheckedRequest, answer: Answer): void {
    const { command, clientId, requestId } = request;
    const handler = this.handlerFor(command);
    if (requestId > 0) this.checkRequestIdNotReused(request);
    if (handler === undefined) return this.commit(request, unknownCommandOutcome(command), answer);
    // A service's handler gets a copy of the args of its own (whatever it does to them, the
    // recorded args stay); a built-in only reads them, so it gets the recorded snapshot, and the
    // events it appends from it are committed without another copy (see `TransactionContext`).
    const builtin = Object.hasOwn(builtinCommands, command);
    const recordedArgsBytes = builtin ? request.packedArgs.length : undefined;
    const context = new TransactionContext({ clientId, requestId, command }, this.options.limits, builtin ? builtinSources : this.liveSources(request), recordedArgsBytes);
    // A built-in returns at once: its outcome is committed in this turn, with no deadline to set.
    if (builtin) return this.commit(request, runBuiltinHandler(handler, context, request.args, this.options.limits), answer);
    const running = runHandler(handler, context, decodePayload(request.packedArgs), this.options.limits);
    // The handler's outcome, or a recorded failure once `handlerTimeoutMs` has passed: whichever
    // comes first is committed, the other is ignored.
    let settled = false;
    const deadline = this.deadlines.add(() => {
      if (settled) return;
      settled = true;
      // From here on the handler's ctx refuses everything; whatever it still does is ignored.
      context.finish();
      running.catch(() => undefined);
      this.commit(request, timedOutOutcome(context, this.options.limits.handlerTimeoutMs), answer);
    });
    running.then(
      (outcome) => {
        if (settled) return;
        settled = true;
        this.deadlines.remove(deadline);
        this.commit(request, outcome, answer);
      },
      (error: unknown) => {
        if (settled) return;
        settled = true;
        this.deadlines.remove(deadline);
        answer.reject(error);
      },
    );
  }

  /** Appends the outcome's commit record and answers once it is released. */
  private commit(request: CheckedRequest, outcome: HandlerOutcome, answer: Answer): void {
    let commit: { payload: CommitPayload; lsn: number };
    try {
      this.pipeline.checkOpen();
      commit = this.assembler.assembleAndAppend(request, outcome);
    } catch (error) {
      answer.reject(error);
      return;
    }
    this.pipeline.whenReleased(
      commit.lsn,
      () => {
        let reply: unknown;
        try {
          reply = outcomeOf(commit.payload);
        } catch (error) {
          answer.reject(error);
          return;
        }
        answer.resolve(reply);
      },
      answer.reject,
    );
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
    const pending = this.assembler.pendingCall(clientId, requestId, callIndex);
    if (pending !== undefined) return pending;
    const recorded = this.pipeline.state.sessionTable.journalEntry(clientId, requestId, callIndex);
    return recorded === undefined ? undefined : { entry: recorded, lsn: undefined };
  }

  private liveSources(request: CheckedRequest): Sources {
    const { clock, random } = this.options.platform;
    const { clientId, requestId } = request;
    return {
      read: (stream, fromVersion, maxCount) => this.pipeline.appliedState().readStream(stream, fromVersion, maxCount),
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
            if (journaled.lsn !== undefined) await this.pipeline.waitReleased(journaled.lsn).catch(abort);
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
    if (call.requestId > 0) payload.request = requestDigest(request);
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
      this.pipeline.checkOpen();
      await this.assembler.appendJournal(payload, entry).released;
    } catch (error) {
      abort(error);
    }
    return entry;
  }
}

/** What a caller gets for a commit: its reply, or its recorded error thrown. */
export function outcomeOf(commit: CommitPayload): unknown {
  if (commit.error !== undefined) throw errorFromSerialized(commit.error);
  return commit.reply;
}

/** What a built-in's context reads, calls and draws: nothing (the built-ins only append and check versions). */
const builtinSources: Sources = {
  read: () => builtinMisused('reads a stream'),
  call: () => builtinMisused('makes a call'),
  now: () => builtinMisused('reads the clock'),
  random: () => builtinMisused('draws a random number'),
};

function builtinMisused(what: string): never {
  throw new AssertionFailed(`a built-in command ${what}`);
}

/** An infrastructure failure under `ctx.call`: abandon the transaction, record nothing. */
function abort(error: unknown): never {
  throw new TransactionAborted(error instanceof Error ? error : new Error(String(error)));
}

function timedOutOutcome(context: TransactionContext, timeoutMs: number): HandlerOutcome {
  const error = txlogError('HANDLER_FAILED', `the handler did not finish within ${timeoutMs} ms`, { timedOut: true, timeoutMs }).toJSON();
  return { writes: [], checks: [], error, ...context.recorded('') };
}

function unknownCommandOutcome(command: string): HandlerOutcome {
  const error = txlogError('UNKNOWN_COMMAND', `unknown command ${command}`, { command }).toJSON();
  return { writes: [], checks: [], error, now: [], random: [], readSet: [], calls: 0, digest: '' };
}
