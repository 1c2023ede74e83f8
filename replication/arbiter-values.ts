/**
 * The values the arbiter keeps in etcd, read back as untrusted input: anyone with access to
 * etcd can write these keys, so each is checked before it decides who leads. A malformed one is
 * a `PROTOCOL_ERROR` naming the key; the arbiter never guesses around it.
 */
import type { IKeyValue } from 'etcd3';
import { txlogError } from '../wal/errors.js';
import { inSyncMembersMax, type InSyncSet, type LeaderKey } from './arbiter.js';

/** etcd sends 64-bit revisions as decimal strings; ours stay far below 2^53. */
export function revisionOf(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) throw txlogError('PROTOCOL_ERROR', `etcd sent the revision ${JSON.stringify(text)}`);
  return value;
}

function malformed(entry: IKeyValue, what: string): Error {
  return txlogError('PROTOCOL_ERROR', `etcd key ${entry.key.toString()} does not hold ${what}: ${JSON.stringify(entry.value.toString().slice(0, 200))}`);
}

function parseJson(entry: IKeyValue, what: string): unknown {
  try {
    return JSON.parse(entry.value.toString());
  } catch {
    throw malformed(entry, what);
  }
}

export function decodeLeader(entry: IKeyValue | undefined): (LeaderKey & { leaseId: string; revision: number }) | undefined {
  if (entry === undefined) return undefined;
  const value = parseJson(entry, 'a leader');
  if (typeof value !== 'object' || value === null) throw malformed(entry, 'a leader');
  const { nodeId, epoch } = value as Record<string, unknown>;
  if (typeof nodeId !== 'string' || nodeId === '' || !Number.isSafeInteger(epoch) || (epoch as number) < 1) {
    throw malformed(entry, 'a leader');
  }
  return { nodeId, epoch: epoch as number, leaseId: entry.lease, revision: revisionOf(entry.mod_revision) };
}

export function decodeEpoch(entry: IKeyValue | undefined): { value: number; revision: number } {
  if (entry === undefined) return { value: 0, revision: 0 };
  const text = entry.value.toString();
  const value = Number(text);
  if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(value)) throw malformed(entry, 'an epoch');
  return { value, revision: revisionOf(entry.mod_revision) };
}

export function decodeInSync(entry: IKeyValue | undefined): InSyncSet {
  if (entry === undefined) return { members: [], revision: 0 };
  const value = parseJson(entry, 'an in-sync set');
  if (
    !Array.isArray(value) ||
    value.length > inSyncMembersMax ||
    !value.every((member) => typeof member === 'string' && member !== '') ||
    new Set(value).size !== value.length
  ) {
    throw malformed(entry, 'an in-sync set');
  }
  return { members: (value as string[]).slice().sort(), revision: revisionOf(entry.mod_revision) };
}
