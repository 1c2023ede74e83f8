/**
 * The replies the session table keeps for resends (layout 3), laid out for LMDB's cost model: a
 * write transaction costs about one copy per distinct B-tree page it dirties, so a commit must
 * not write a page chosen by its client.
 *
 * - `replies`: LSN → stored reply (`stored-reply.ts`). Every commit appends at the B-tree's right
 *   edge. A reply names the LSN of its client's previous reply, so the replies of one client form
 *   a chain whose head is the session's `lastLsn`; a lookup walks it back.
 * - `kept-replies`: [client id, request id] → the same bytes. A sweep removes the oldest replies
 *   from `replies`' left edge in one range, every `sweepEveryReplies` commits; a reply still inside
 *   its client's window there (a slow or idle client's) is moved here rather than lost. A client
 *   at the average rate has left its window long before the sweep reaches its replies (see
 *   `recentWindowsKept`), so the moves, the only writes to a page chosen by a client, are rare.
 *
 * Bounds, for `clientsMax` C, `requestWindow` W and `sweepEveryReplies` N: `replies` holds fewer
 * than 2·live·W + 2N entries (the newest 2·live·W + N are left to the next sweep, which starts N
 * later); `kept-replies` holds at most W per live client (each move also deletes what that
 * client's window has left) and none of an evicted client's. So both hold fewer than 3·C·W + 2N.
 */
import type { Database, RootDatabase } from 'lmdb';
import { assert } from '../wal/assert.js';
import { decodeStoredReply, encodeStoredReply, readReplyHeader, type StoredReply } from './stored-reply.js';

/** Replies appended between two sweeps: what one sweep deletes (about 1 ms of work). */
export const sweepEveryReplies = 1024;

/**
 * The newest `recentWindowsKept · live clients · requestWindow` replies are never swept. With
 * every live client equally active a reply leaves its window after one such window of commits;
 * twice that lets a client at half the average rate, or a burst of others, pass too without
 * moves, at the cost of holding twice the live replies.
 */
const recentWindowsKept = 2;

export class ReplyTable {
  /** LSN → stored reply, every client's in commit order. */
  private readonly replies: Database<Buffer, number>;
  /** `keptKeyOf(clientId, requestId)` → stored reply: survivors of a sweep. */
  private readonly kept: Database<Buffer, Buffer>;
  /** Entries in `replies` (LMDB counts them; this follows every put and delete). */
  private repliesCount: number;

  constructor(root: RootDatabase) {
    this.replies = root.openDB({ name: 'replies', encoding: 'binary' });
    this.kept = root.openDB({ name: 'kept-replies', keyEncoding: 'binary', encoding: 'binary' });
    const stats = this.replies.getStats() as { entryCount?: unknown };
    assert(typeof stats.entryCount === 'number', 'lmdb-js stats without an entry count');
    this.repliesCount = stats.entryCount;
  }

  /** Appends a commit's reply (inside the state's apply transaction). */
  put(stored: StoredReply): void {
    this.replies.putSync(stored.lsn, encodeStoredReply(stored));
    this.repliesCount += 1;
  }

  /**
   * The reply of `requestId`, walking the client's chain back from `headLsn` for at most
   * `linksMax` replies, then among the kept ones. A link that is gone was swept, and whatever of
   * the chain from there on was still needed was moved to `kept-replies`: one more get decides.
   */
  find(clientId: string, requestId: number, headLsn: number, linksMax: number): StoredReply | undefined {
    let lsn = headLsn;
    for (let links = 0; lsn > 0 && links < linksMax; links += 1) {
      const bytes = this.replies.getBinaryFast(lsn);
      if (bytes === undefined) break;
      const header = readReplyHeader(bytes);
      assert(header.lsn === lsn && header.clientId === clientId, `the reply chain of ${clientId} leads to LSN ${lsn}, a reply of ${header.clientId} at ${header.lsn}`);
      if (header.requestId === requestId) return decodeStoredReply(bytes);
      lsn = header.previousLsn;
    }
    const kept = this.kept.get(keptKeyOf(clientId, requestId));
    return kept === undefined ? undefined : decodeStoredReply(kept);
  }

  /**
   * Sweeps when `sweepEveryReplies` replies have come since the last sweep: the oldest replies
   * past the newest `recentWindowsKept · liveClients · requestWindow + sweepEveryReplies` leave
   * `replies`. `expiredUpTo(clientId)` is the client's highest request id that is no longer
   * resent (undefined when the client keeps no replies: evicted); a reply above it is moved.
   * Depends only on the applied records, so every node and every rebuild sweeps alike.
   */
  sweepIfDue(liveClients: number, requestWindow: number, expiredUpTo: (clientId: string) => number | undefined): void {
    const recentKept = recentWindowsKept * liveClients * requestWindow + sweepEveryReplies;
    if (this.repliesCount < recentKept + sweepEveryReplies) return;
    const swept: number[] = [];
    const survivors: Array<{ clientId: string; requestId: number; bytes: Buffer }> = [];
    for (const { key, value } of this.replies.getRange({ limit: this.repliesCount - recentKept })) {
      swept.push(key);
      const { clientId, requestId } = readReplyHeader(value);
      const expired = expiredUpTo(clientId);
      if (expired !== undefined && requestId > expired) survivors.push({ clientId, requestId, bytes: value });
    }
    // Deleted after the walk, not during it: the range is adjacent keys, so few pages.
    for (const key of swept) this.replies.removeSync(key);
    this.repliesCount -= swept.length;
    const moved = new Set<string>();
    for (const { clientId, requestId, bytes } of survivors) {
      this.kept.putSync(keptKeyOf(clientId, requestId), bytes);
      moved.add(clientId);
    }
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
    const end = keptKeyOf(clientId, belowRequestId === 'all' ? 0 : belowRequestId);
    // A request id of all ones sorts after every key of the client (ids are safe integers).
    if (belowRequestId === 'all') end.fill(0xff, end.length - 8);
    for (const key of this.kept.getKeys({ start: keptKeyOf(clientId, 0), end })) {
      this.kept.removeSync(key);
    }
  }

  /** Every kept reply, decoded, in key order (for comparing two states, and for tests). */
  dump(): { replies: Array<[number, StoredReply]>; keptReplies: Array<[[string, number], StoredReply]> } {
    const replies = [...this.replies.getRange({})].map(({ key, value }): [number, StoredReply] => [key, decodeStoredReply(value)]);
    const keptReplies = [...this.kept.getRange({})].map(({ value }): [[string, number], StoredReply] => {
      const stored = decodeStoredReply(value);
      return [[stored.clientId, stored.requestId], stored];
    });
    return { replies, keptReplies };
  }
}

/**
 * The key of a kept reply: client id bytes (u16 BE), the client id (UTF-8), request id (u64 BE).
 * The length prefix keeps one client's keys contiguous whatever its id holds: ordered-binary
 * arrays would interleave `[id, n]` with the keys of an id that extends `id` by U+0000 (past 63
 * characters it writes such strings raw), and a range delete would then reach another client.
 */
function keptKeyOf(clientId: string, requestId: number): Buffer {
  const id = Buffer.from(clientId, 'utf8');
  const key = Buffer.allocUnsafe(2 + id.length + 8);
  key.writeUInt16BE(id.length, 0);
  id.copy(key, 2);
  key.writeUInt32BE(Math.floor(requestId / 2 ** 32), 2 + id.length);
  key.writeUInt32BE(requestId >>> 0, 6 + id.length);
  return key;
}
