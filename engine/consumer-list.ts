/**
 * The durable consumers of a store: each consumer's checkpoint position, when it was written,
 * and its lag (events after it). `listConsumers` reads the WAL alone (read-only, never the LMDB
 * state), so `txlog consumers DIR` is safe beside a running store; `consumersOfState` reads a
 * running store's applied state (what a node answers `txlog consumers --servers` with).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Wal, recordPayload } from '../wal/wal.js';
import { checkpointEventType, consumerStreamPrefix } from './consumer.js';
import { txlogError } from '../wal/errors.js';
import { recordTypes, type CommitPayload } from './records.js';
import type { State } from './state.js';

/**
 * Consumers a running store lists at most. Each one's lag counts the other consumers'
 * checkpoints after its position (a binary search each), so the work grows with its square.
 */
export const consumersListedMax = 256;

export interface ConsumerStatus {
  name: string;
  /** Last global position its checkpoint covers (-1: none). */
  position: number;
  /** Version of its checkpoint stream (checkpoints written, less one). */
  checkpointVersion: number;
  /** Wall-clock milliseconds of the checkpoint's commit (absent in logs before `createdAtMs`). */
  updatedAtMs?: number;
  /**
   * Events after its position, consumers' checkpoints not counted. A consumer with a filter
   * passes over the events it does not want, so this is what it has still to look at.
   */
  lag: number;
}

export interface ConsumerList {
  /** Last global position in the log (-1: no events). */
  lastPosition: number;
  consumers: ConsumerStatus[];
}

/** Reads every commit of the log in `dir` (a store directory or its `wal/`). */
export async function listConsumers(dir: string): Promise<ConsumerList> {
  const walDir = fs.existsSync(path.join(dir, 'wal')) ? path.join(dir, 'wal') : dir;
  const wal = await Wal.open({ dir: walDir, readOnly: true, log: () => undefined });
  // [first position of a commit, events not of consumers before it]: a binary search gives how
  // many such events lie at or below any position (one entry per commit, not per event).
  const counted: Array<[number, number]> = [];
  let total = 0;
  let lastPosition = -1;
  const checkpoints = new Map<string, Omit<ConsumerStatus, 'lag'>>();
  try {
    for (const record of wal.read(wal.firstLsn)) {
      if (record.type !== recordTypes.commit) continue;
      const commit = recordPayload(record) as CommitPayload;
      if (commit.events.length === 0) continue;
      let position = commit.firstPosition;
      for (const write of commit.events) {
        const isConsumer = write.stream.startsWith(consumerStreamPrefix);
        write.events.forEach((event, index) => {
          if (!isConsumer) {
            counted.push([position, total]);
            total += 1;
          } else if (event.type === checkpointEventType) {
            const name = write.stream.slice(consumerStreamPrefix.length);
            const data = event.data as { position?: unknown } | null;
            const status: Omit<ConsumerStatus, 'lag'> = {
              name,
              position: typeof data?.position === 'number' ? data.position : -1,
              checkpointVersion: write.firstVersion + index,
            };
            if (commit.createdAtMs !== undefined) status.updatedAtMs = commit.createdAtMs;
            checkpoints.set(name, status);
          }
          lastPosition = position;
          position += 1;
        });
      }
    }
  } finally {
    await wal.close();
  }
  const consumers = [...checkpoints.values()]
    .sort(byName)
    .map((status) => ({ ...status, lag: total - countedUpTo(counted, status.position) }));
  return { lastPosition, consumers };
}

/** Events not of consumers at positions <= `position`. */
function countedUpTo(counted: ReadonlyArray<[number, number]>, position: number): number {
  let low = 0;
  let high = counted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (counted[middle]![0] <= position) low = middle + 1;
    else high = middle;
  }
  return low === 0 ? 0 : counted[low - 1]![1] + 1;
}

/**
 * The same list from a store's applied state: the `$consumer-` streams from the stream table,
 * each one's last checkpoint, and its lag as events after its position less the consumers'
 * checkpoints among them. More than `consumersListedMax` is TOO_LARGE.
 */
export function consumersOfState(state: State): ConsumerList {
  const streams = state.streamsWithPrefix(consumerStreamPrefix, consumersListedMax + 1);
  if (streams.length > consumersListedMax) {
    throw txlogError('TOO_LARGE', `more than ${consumersListedMax} consumers; list them from the log with txlog consumers DIR`);
  }
  const lastPosition = state.nextPosition - 1;
  const consumers: ConsumerStatus[] = [];
  for (const [stream, version] of streams) {
    const last = state.readStream(stream, version, 1).events[0];
    if (last?.type !== checkpointEventType) continue;
    const data = last.data as { position?: unknown } | null;
    const position = typeof data?.position === 'number' ? data.position : -1;
    const checkpoints = streams.reduce((sum, [other, head]) => sum + eventsAfter(state, other, head, position), 0);
    const status: ConsumerStatus = { name: stream.slice(consumerStreamPrefix.length), position, checkpointVersion: version, lag: lastPosition - position - checkpoints };
    if (last.createdAt !== undefined) status.updatedAtMs = last.createdAt.getTime();
    consumers.push(status);
  }
  // LMDB orders names by their UTF-8 bytes; both listings order them the same way.
  return { lastPosition, consumers: consumers.sort(byName) };
}

function byName(left: { name: string }, right: { name: string }): number {
  return left.name < right.name ? -1 : left.name > right.name ? 1 : 0;
}

/** Events of `stream` (last version `head`) at positions above `position`. */
function eventsAfter(state: State, stream: string, head: number, position: number): number {
  let low = 0;
  let high = head + 1;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((state.positionOf(stream, middle) ?? Number.POSITIVE_INFINITY) <= position) low = middle + 1;
    else high = middle;
  }
  return head + 1 - low;
}
