/**
 * The record types the engine writes to the WAL, and their payloads. The WAL itself knows only
 * numbers; these names are what `txlog inspect` prints. Payloads are plain msgpack maps; a new
 * field may be added, an existing one never changes meaning (format version 1). Fields added
 * since the first release say so, with what a record written before them means.
 */
import type { SerializedError } from '../wal/errors.js';

export const recordTypes = {
  /** One transaction's outcome: events, reply or error, recorded nondeterminism, read set. */
  commit: 1,
  /** The recorded result (or error) of one external call made by a handler. */
  journal: 2,
  /** A node became primary with this epoch; written before it serves anything. */
  epoch: 3,
} as const;

export type RecordTypeName = keyof typeof recordTypes;

export function recordTypeName(type: number): string {
  for (const [name, value] of Object.entries(recordTypes)) if (value === type) return name;
  return `unknown(${type})`;
}

export interface EventInput {
  /**
   * A UUID. Given by the caller, or drawn by the primary when it assembles the commit (then it is
   * in the commit record, not in the handler's outcome or its digest). Absent in logs written
   * before event ids: reads derive one from stream and version (`derivedEventId`).
   */
  id?: string;
  type: string;
  data?: unknown;
  /** The caller's own facts about the event; by convention `correlationId` and `causationId`. */
  metadata?: unknown;
}

export interface StreamWrite {
  stream: string;
  /**
   * What the handler asked for: -1 must not exist, n last version n, -2 at least one event
   * (`'stream_exists'`, added within format 1), undefined any (see `expected-version.ts`).
   */
  expectedVersion?: number;
  /** Version of the first event written (the stream's version before the write + 1). */
  firstVersion: number;
  events: EventInput[];
}

/**
 * What one run of a handler recorded besides its writes and its reply or error: the values it
 * was handed (clock, randomness, the versions it read, its journaled calls) and the digest of
 * what it did. A handler's outcome carries them into its commit record; re-execution hands them
 * back to the handler and compares the digest.
 */
export interface RecordedInputs {
  /** Values `ctx.now()` returned, in order. */
  now: number[];
  /** Values `ctx.random()` returned, in order. */
  random: number[];
  /** Each stream the handler read and the version it saw ([stream, version] pairs). */
  readSet: Array<[string, number]>;
  /**
   * Streams the transaction required at a version without writing them (`ctx.expectVersion`, the
   * built-in append's `checks`): [stream, expected version in the recorded form]. Added within
   * format 1; absent when there were none.
   */
  checks?: Array<[string, number]>;
  /** Number of journaled external calls the handler made. */
  calls: number;
  /**
   * LSN of each call's journal record, in call order (absent when one is not known: a call
   * journaled in a log written before this field; in a commit record, also when `calls` is 0).
   * Re-execution finds the commit's call results by these, wherever the records came from
   * (before a rejoin, a restart, or among concurrent one-off requests).
   */
  callLsns?: number[];
  /** Hex digest of the outcome (events and reply or error), compared on re-execution. */
  digest: string;
}

export interface CommitPayload extends RecordedInputs {
  clientId: string;
  requestId: number;
  command: string;
  args: unknown;
  /** Empty when the transaction failed. */
  events: StreamWrite[];
  /** Global position of the first event of this commit (positions are dense, from 0). */
  firstPosition: number;
  reply?: unknown;
  error?: SerializedError;
  /**
   * Wall-clock milliseconds of the primary's clock when it assembled the commit: every event's
   * `createdAt`. Recorded, so every node and every rebuild reads the same. Absent in logs written
   * before it (their events read without `createdAt`) and in failed commits.
   */
  createdAtMs?: number;
}

export interface JournalPayload {
  clientId: string;
  requestId: number;
  callIndex: number;
  name: string;
  /**
   * Digest of the request that made the call (its command and args; see `requestDigestOf`).
   * A journaled result is handed back only to a run of that same request: a different request
   * under a reused request id gets `REQUEST_ID_REUSED`, never another request's result. Absent
   * in logs written before this field (such entries are not bound).
   */
  request?: string;
  result?: unknown;
  error?: SerializedError;
}

export interface EpochPayload {
  epoch: number;
  /** Last LSN the new primary had when it took over. */
  fromLsn: number;
  nodeId: string;
  atMs: number;
}

/** One stream's events of a commit as the state's apply takes them (`commit-for-apply.ts`). */
export interface WriteForApply {
  stream: string;
  firstVersion: number;
  /**
   * Each event's map (`id`, `type`, `data`, `metadata`) as msgpack, or the event itself, packed
   * when it is stored (a record decoded into objects: a `StreamWrite` is a `WriteForApply`).
   */
  events: ReadonlyArray<Uint8Array | EventInput>;
}

/** A commit record as the state's apply takes it (`commit-for-apply.ts`). */
export interface CommitForApply {
  clientId: string;
  requestId: number;
  /** Journaled calls the handler made. */
  calls: number;
  firstPosition: number;
  createdAtMs: number | undefined;
  writes: readonly WriteForApply[];
  /** Whether the outcome is the recorded error (else the reply). */
  failed: boolean;
  /** The reply (nil when there is none) or the error, as msgpack; undefined: `outcomeValue`, packed when stored. */
  outcome: Uint8Array | undefined;
  outcomeValue?: unknown;
}

/** A record as the state applies it: its LSN, type and decoded payload. */
export interface ApplicableRecord {
  lsn: number;
  type: number;
  payload: unknown;
  /**
   * A commit record as the state applies it, with bytes it already has (`commit-for-apply.ts`:
   * read from the record's bytes in recovery, views of the record a primary packed); else the
   * apply takes it from `payload`.
   */
  commitForApply?(): CommitForApply;
}
