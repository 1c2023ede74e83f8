/**
 * The replies the session table keeps for resends (layout 6), laid out for LMDB's cost model: a
 * write transaction costs about one page copy per distinct B-tree page it dirties, a put about a
 * microsecond and a half whatever it holds, and a delete about what a put costs, so a commit
 * must neither write a page chosen by its client nor leave a key behind that someone deletes one
 * by one later.
 *
 * - Recent replies, in `generations` tables `replies-0`… used in turn: the replies of one apply
 *   go to the current one as a run (`stored-reply.ts`), keyed by its first LSN, at its B-tree's
 *   right edge (layouts 3 to 5 made a put per reply). A reply names the LSN of its client's
 *   previous reply, so one client's replies form a chain whose head is the session's `lastLsn`;
 *   a lookup walks it back, a seek per link to the run that holds it.
 * - `kept-replies`, keyed by client and request id: the survivors of sweeps.
 *
 * When the current generation holds `generationSize` replies, the oldest one is swept: its runs
 * say which replies are still inside their client's window (a slow or idle client's); those are
 * moved to `kept-replies`, and the table is emptied in one step (`mdb_drop`, no per-key delete)
 * to become the current one. The sweep comes before the reply that would take the current
 * generation past its size, and the run under way is written first, so which generation holds a
 * reply depends on the replies alone, not on how records were batched into applies: every node
 * and every rebuild keeps the same replies in each generation (their runs differ). The newest
 * `generations - 1` tables, at least `recentWindowsKept · live clients · requestWindow` replies,
 * are never swept, so a client at the average rate has left its window long before a sweep
 * reaches its replies, and moves (each a write to a page that its client's key chooses) stay rare.
 *
 * Bounds, for `clientsMax` C, `requestWindow` W, generation size G = max(`generationRepliesMin`,
 * ⌈2·C·W / 3⌉): the recent tables hold at most 4·G replies (a generation is swept before the
 * put that would take the current one past G, and G only grows with the live clients); `kept-replies` at most W per live
 * client (a move also deletes what that client's window has left) and none of an evicted one.
 * So at most 8/3·C·W + C·W = 11/3·C·W replies in all, or 4·1024 + C·W while 2·C·W < 3·1024.
 */
import type { Database, RootDatabase } from 'lmdb';
import { assert, assertionFailed } from '../wal/assert.js';
import { encodePayload } from '../wal/format.js';
import {
  decodeReplyRun,
  decodeStoredReply,
  encodeReplyRun,
  encodeReplyValue,
  keptKeyOf,
  keptRangeOf,
  runKeyOf,
  readKeptKey,
  replyInRun,
  runLsnOf,
  storedReplyOf,
  type ReplyIdentity,
  type RunReply,
  type StoredReply,
} from './stored-reply.js';

/** A run's key is its first LSN, which only grows: put at the B-tree's right edge. */
const appendOptions = { append: true } as const;

/** Tables of recent replies: one being written, the rest waiting to be swept in turn. */
export const generations = 4;

/** The fewest replies a generation holds: what one sweep reads at least (its runs: under a millisecond). */
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
  /** The generation being written, and how many replies it holds (those of the run under way included). */
  private current = 0;
  private currentCount = 0;
  /** The replies of the apply under way, written as one run at its end (`writeRun`) or before a sweep. */
  private readonly run: RunReply[] = [];
  private readonly kept: Database<Buffer, Buffer>;

  constructor(root: RootDatabase) {
    for (let generation = 0; generation < generations; generation++) {
      const table: Database<Buffer, Buffer> = root.openDB({ name: `replies-${generation}`, keyEncoding: 'binary', encoding: 'binary' });
      this.recent.push(table);
      let first: number | undefined;
      for (const key of table.getKeys({ limit: 1 })) first = runLsnOf(key);
      this.firstLsns.push(first);
      if (first !== undefined && first >= (this.firstLsns[this.current] ?? 0)) this.current = generation;
    }
    for (const { value } of this.recent[this.current]!.getRange({})) this.currentCount += value.readUInt32LE(0);
    this.kept = root.openDB({ name: 'kept-replies', keyEncoding: 'binary', encoding: 'binary' });
  }

  /**
   * Adds a commit's reply or error, as msgpack bytes or a value to pack, to the run under way
   * (inside the state's apply transaction).
   */
  put(identity: ReplyIdentity & { previousLsn: number }, failed: boolean, packed: Uint8Array | undefined, value: unknown): void {
    const last = this.run[this.run.length - 1];
    if (last !== undefined && identity.lsn <= last.lsn) assertionFailed(`reply at LSN ${identity.lsn} not above ${last.lsn}`);
    const outcome = packed ?? encodePayload(value);
    this.run.push({ lsn: identity.lsn, requestId: identity.requestId, clientId: identity.clientId, previousLsn: identity.previousLsn, failed, outcome });
    this.firstLsns[this.current] ??= identity.lsn;
    this.currentCount += 1;
  }

  /** Writes the run under way to the current generation (at the end of an apply, inside its transaction). */
  writeRun(): void {
    if (this.run.length === 0) return;
    const first = this.run[0]!.lsn;
    if (!(this.recent[this.current]!.putSync(runKeyOf(first), encodeReplyRun(this.run), appendOptions) as unknown)) assertionFailed(`replies from LSN ${first} not above the last`);
    this.run.length = 0;
  }

  /**
   * The reply of `requestId`, walking the client's chain back from `headLsn` for at most
   * `linksMax` replies, then among the kept ones. A link that is gone was swept, and whatever of
   * the chain from there on was still needed was moved to `kept-replies`: one more get decides.
   */
  find(clientId: string, requestId: number, headLsn: number, linksMax: number): StoredReply | undefined {
    let lsn = headLsn;
    for (let links = 0; lsn > 0 && links < linksMax; links += 1) {
      const reply = this.recentReply(lsn);
      if (reply === undefined) break;
      if (reply.clientId !== clientId) assertionFailed(`the reply chain of ${clientId} leads to LSN ${lsn}, a reply of ${reply.clientId}`);
      if (reply.requestId === requestId) return storedReplyOf(reply);
      lsn = reply.previousLsn;
    }
    const kept = this.kept.get(keptKeyOf(clientId, requestId));
    return kept === undefined ? undefined : decodeStoredReply({ clientId, requestId }, kept);
  }

  /** The recent reply of this LSN, or undefined when its generation was swept (or it kept none). */
  private recentReply(lsn: number): RunReply | undefined {
    const inRun = this.run.find((reply) => reply.lsn === lsn);
    if (inRun !== undefined) return inRun;
    let holder: number | undefined;
    for (let generation = 0; generation < generations; generation++) {
      const first = this.firstLsns[generation];
      if (first !== undefined && first <= lsn && (holder === undefined || first > this.firstLsns[holder]!)) holder = generation;
    }
    if (holder === undefined) return undefined;
    for (const { value } of this.recent[holder]!.getRange({ start: runKeyOf(lsn), reverse: true, limit: 1 })) {
      return replyInRun(value, lsn);
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
    // The current generation is full: what it has of the apply under way goes in it now.
    this.writeRun();
    const oldest = (this.current + 1) % generations;
    const table = this.recent[oldest]!;
    const moved = new Set<string>();
    for (const { value } of table.getRange({})) {
      for (const reply of decodeReplyRun(value)) {
        const expired = expiredUpTo(reply.clientId);
        if (expired === undefined || reply.requestId <= expired) continue;
        this.kept.putSync(keptKeyOf(reply.clientId, reply.requestId), encodeReplyValue(reply, reply.failed, reply.outcome));
        moved.add(reply.clientId);
      }
    }
    table.clearSync();
    this.firstLsns[oldest] = undefined;
    this.current = oldest;
    this.currentCount = 0;
    for (const clientId of moved) {
      const expired = expiredUpTo(clientId);
      if (expired === undefined) assertionFailed(`a reply of ${clientId} survived a sweep without a live session`);
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
    assert(this.run.length === 0, 'a dump inside an apply');
    const replies = this.recent.map((table) => [...table.getRange({})].flatMap(({ value }) => decodeReplyRun(value).map(storedReplyOf)));
    const keptReplies = [...this.kept.getRange({})].map(({ key, value }) => decodeStoredReply(readKeptKey(key), value));
    return { replies, keptReplies };
  }
}
