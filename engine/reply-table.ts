/**
 * The replies the session table keeps for resends (layout 3), laid out for LMDB's cost model: a
 * write transaction costs about one page copy per distinct B-tree page it dirties, and a delete
 * costs about what a put does, so a commit must neither write a page chosen by its client nor
 * leave a key behind that someone deletes one by one later.
 *
 * - Recent replies, in `generations` tables `replies-0`… used in turn, keyed by LSN first
 *   (`stored-reply.ts`): every commit appends to the current one at its B-tree's right edge. A
 *   reply names the LSN of its client's previous reply, so one client's replies form a chain
 *   whose head is the session's `lastLsn`; a lookup walks it back.
 * - `kept-replies`, keyed by client and request id: the survivors of sweeps.
 *
 * When the current generation holds `generationSize` replies, the oldest one is swept: its keys
 * (client and request id) say which replies are still inside their client's window (a slow or
 * idle client's); those are moved to `kept-replies`, and the table is emptied in one step
 * (`mdb_drop`, no per-key delete) to become the current one. The newest `generations - 1` tables,
 * at least `recentWindowsKept · live clients · requestWindow` replies, are never swept, so a
 * client at the average rate has left its window long before a sweep reaches its replies, and
 * moves (each a write to a page that its client's key chooses) stay rare.
 *
 * Bounds, for `clientsMax` C, `requestWindow` W, generation size G = max(`generationRepliesMin`,
 * ⌈2·C·W / 3⌉): the recent tables hold at most 4·G replies (a generation is swept before the
 * put that would take the current one past G, and G only grows with the live clients); `kept-replies` at most W per live
 * client (a move also deletes what that client's window has left) and none of an evicted one.
 * So at most 8/3·C·W + C·W = 11/3·C·W replies in all, or 4·1024 + C·W while 2·C·W < 3·1024.
 */
import type { Database, RootDatabase } from 'lmdb';
import { assert } from '../wal/assert.js';
import {
  decodeStoredReply,
  encodeReplyValue,
  keptKeyOf,
  keptRangeOf,
  lsnPrefixOf,
  previousLsnOf,
  readKeptKey,
  readRecentKey,
  recentKeyOf,
  type ReplyIdentity,
  type StoredReply,
} from './stored-reply.js';

/** A recent reply's key starts with its LSN, which only grows: put at the B-tree's right edge. */
const appendOptions = { append: true } as const;

/** Tables of recent replies: one being written, the rest waiting to be swept in turn. */
export const generations = 4;

/** The fewest replies a generation holds: what one sweep reads at least (the keys alone: under a millisecond). */
export const generationRepliesMin = 1024;

/**
 * With every live client equally active a reply leaves its window after `live · requestWindow`
 * commits; keeping twice that unswept lets a client at half the average rate, or a burst of
 * others, pass too without moves, at the cost of holding twice the live replies.
 */
const recentWindowsKept = 2;

export function generationSize(liveClients: number, requestWindow: number): number {
  return Math.max(generationRepliesMin, Math.ceil((recentWindowsKept * liveClients * requestWindow) / (generations - 1)));
}

export class ReplyTable {
  private readonly recent: Array<Database<Buffer, Buffer>> = [];
  /** The first LSN in each generation (undefined while empty): which table holds an LSN. */
  private readonly firstLsns: Array<number | undefined> = [];
  /** The generation being written, and how many replies it holds. */
  private current = 0;
  private currentCount = 0;
  private readonly kept: Database<Buffer, Buffer>;

  constructor(root: RootDatabase) {
    for (let generation = 0; generation < generations; generation++) {
      const table: Database<Buffer, Buffer> = root.openDB({ name: `replies-${generation}`, keyEncoding: 'binary', encoding: 'binary' });
      this.recent.push(table);
      let first: number | undefined;
      for (const key of table.getKeys({ limit: 1 })) first = readRecentKey(key).lsn;
      this.firstLsns.push(first);
      if (first !== undefined && first >= (this.firstLsns[this.current] ?? 0)) this.current = generation;
    }
    this.currentCount = entryCountOf(this.recent[this.current]!);
    this.kept = root.openDB({ name: 'kept-replies', keyEncoding: 'binary', encoding: 'binary' });
  }

  /** Appends a commit's reply or error, as msgpack bytes or a value to pack (inside the state's apply transaction). */
  put(identity: ReplyIdentity & { previousLsn: number }, failed: boolean, packed: Uint8Array | undefined, value: unknown): void {
    assert(this.recent[this.current]!.putSync(recentKeyOf(identity), encodeReplyValue(identity, failed, packed, value), appendOptions), `reply at LSN ${identity.lsn} not above the last`);
    this.firstLsns[this.current] ??= identity.lsn;
    this.currentCount += 1;
  }

  /**
   * The reply of `requestId`, walking the client's chain back from `headLsn` for at most
   * `linksMax` replies, then among the kept ones. A link that is gone was swept, and whatever of
   * the chain from there on was still needed was moved to `kept-replies`: one more get decides.
   */
  find(clientId: string, requestId: number, headLsn: number, linksMax: number): StoredReply | undefined {
    let lsn = headLsn;
    for (let links = 0; lsn > 0 && links < linksMax; links += 1) {
      const entry = this.recentEntry(lsn);
      if (entry === undefined) break;
      const identity = readRecentKey(entry.key);
      assert(identity.clientId === clientId, `the reply chain of ${clientId} leads to LSN ${lsn}, a reply of ${identity.clientId}`);
      if (identity.requestId === requestId) return decodeStoredReply(identity, entry.value);
      lsn = previousLsnOf(entry.value);
    }
    const kept = this.kept.get(keptKeyOf(clientId, requestId));
    return kept === undefined ? undefined : decodeStoredReply({ clientId, requestId }, kept);
  }

  /** The recent reply of this LSN, or undefined when its generation was swept (or it kept none). */
  private recentEntry(lsn: number): { key: Buffer; value: Buffer } | undefined {
    let holder: number | undefined;
    for (let generation = 0; generation < generations; generation++) {
      const first = this.firstLsns[generation];
      if (first !== undefined && first <= lsn && (holder === undefined || first > this.firstLsns[holder]!)) holder = generation;
    }
    if (holder === undefined) return undefined;
    const prefix = lsnPrefixOf(lsn);
    for (const { key, value } of this.recent[holder]!.getRange({ start: prefix, limit: 1 })) {
      if (key.subarray(0, prefix.length).equals(prefix)) return { key, value };
    }
    return undefined;
  }

  /**
   * Sweeps the oldest generation when the current one is full, and makes it the current one;
   * called before a `put`, so the current generation is never empty between commits and a
   * reopened table finds it (the newest) without storing which it is. `expiredUpTo(clientId)` is
   * the client's highest request id that is no longer resent (undefined when the client keeps no
   * replies: evicted); a reply above it is moved. Depends only on the applied records, so every
   * node and every rebuild sweeps alike.
   */
  sweepIfDue(liveClients: number, requestWindow: number, expiredUpTo: (clientId: string) => number | undefined): void {
    if (this.currentCount < generationSize(liveClients, requestWindow)) return;
    const oldest = (this.current + 1) % generations;
    const table = this.recent[oldest]!;
    const moved = new Set<string>();
    for (const key of table.getKeys({})) {
      const { clientId, requestId } = readRecentKey(key);
      const expired = expiredUpTo(clientId);
      if (expired === undefined || requestId <= expired) continue;
      const value = table.get(key);
      assert(value !== undefined, `a swept key of ${clientId} has no value`);
      this.kept.putSync(keptKeyOf(clientId, requestId), value);
      moved.add(clientId);
    }
    table.clearSync();
    this.firstLsns[oldest] = undefined;
    this.current = oldest;
    this.currentCount = 0;
    for (const clientId of moved) {
      const expired = expiredUpTo(clientId);
      assert(expired !== undefined, `a reply of ${clientId} survived a sweep without a live session`);
      this.removeKept(clientId, expired + 1);
    }
  }

  /** Deletes every kept reply of a client (evicted: no resend of it will ever be answered). */
  dropKept(clientId: string): void {
    this.removeKept(clientId, 'all');
  }

  /** Deletes the client's kept replies below `belowRequestId`, or all of them. */
  private removeKept(clientId: string, belowRequestId: number | 'all'): void {
    for (const key of this.kept.getKeys(keptRangeOf(clientId, belowRequestId))) this.kept.removeSync(key);
  }

  /**
   * Every kept reply, decoded (for comparing two states, and tests): the recent ones by
   * generation, each in LSN order (which table holds a reply is state too: it decides when the
   * reply is swept), and the kept ones by client.
   */
  dump(): { replies: StoredReply[][]; keptReplies: StoredReply[] } {
    const replies = this.recent.map((table) => [...table.getRange({})].map(({ key, value }) => decodeStoredReply(readRecentKey(key), value)));
    const keptReplies = [...this.kept.getRange({})].map(({ key, value }) => decodeStoredReply(readKeptKey(key), value));
    return { replies, keptReplies };
  }
}

function entryCountOf(database: Database<Buffer, Buffer>): number {
  const stats = database.getStats() as { entryCount?: unknown };
  assert(typeof stats.entryCount === 'number', 'lmdb-js stats without an entry count');
  return stats.entryCount;
}
