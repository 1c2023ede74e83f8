/**
 * The record types the engine writes to the WAL, and their payloads. The WAL itself knows only
 * numbers; these names are what `txlog inspect` prints. Payloads are plain msgpack maps; a new
 * field may be added, an existing one never changes meaning (format version 1).
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
  type: string;
  data?: unknown;
  metadata?: unknown;
}

export interface StreamWrite {
  stream: string;
  /** What the handler asked for: -1 must not exist, n last version n, undefined any. */
  expectedVersion?: number;
  /** Version of the first event written (the stream's version before the write + 1). */
  firstVersion: number;
  events: EventInput[];
}

export interface CommitPayload {
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
  /** Values `ctx.now()` returned, in order. */
  now: number[];
  /** Values `ctx.random()` returned, in order. */
  random: number[];
  /** Each stream the handler read and the version it saw ([stream, version] pairs). */
  readSet: Array<[string, number]>;
  /** Number of journaled external calls the handler made. */
  calls: number;
  /** Hex digest of the outcome (events and reply or error), compared on re-execution. */
  digest: string;
}

export interface JournalPayload {
  clientId: string;
  requestId: number;
  callIndex: number;
  name: string;
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
