/**
 * The session table, in the state's LMDB environment: for each client its highest committed
 * request id and the replies of its last `requestWindow` ids (what a resend gets back, kept by
 * `reply-table.ts`), and the journaled calls of requests not yet committed (what a resend after
 * a crash or failover hands back instead of calling out again). Written in the same LMDB
 * transaction as the rest of the state (see `State.apply`).
 *
 * Live sessions are also held in memory (at most `clientsMax`); past it the least recently
 * active client by LSN, the same on every node, keeps only its highest request id (a tombstone)
 * and any resend at or below it is REQUEST_EXPIRED, also after the client comes back with a new id.
 */
import type { Database, Key, RootDatabase } from 'lmdb';
import { assert, assertionFailed } from '../wal/assert.js';
import type { SerializedError } from '../wal/errors.js';
import type { SessionLimits } from './options.js';
import type { CommitForApply, JournalPayload } from './records.js';
import { LiveSessions, type SessionRecord } from './live-sessions.js';
import { ReplyTable } from './reply-table.js';
import type { StoredReply } from './stored-reply.js';

export interface Outcome {
  requestId: number;
  lsn: number;
  reply?: unknown;
  error?: SerializedError;
}

export type SessionLookup =
  | { kind: 'unknown' }
  | { kind: 'committed'; outcome: Outcome }
  | { kind: 'expired'; latest: number };

export interface JournalEntry {
  callIndex: number;
  name: string;
  result?: unknown;
  error?: SerializedError;
  /** The digest of the request that made the call (see `JournalPayload.request`). */
  request?: string;
  /** LSN of the journal record (absent in a state built before this field). */
  lsn?: number;
}

/** A journal record as the runtime hands it back. */
export function journalEntryOf(lsn: number, journal: JournalPayload): JournalEntry {
  const entry: JournalEntry = { callIndex: journal.callIndex, name: journal.name, lsn };
  if (journal.error !== undefined) entry.error = journal.error;
  else entry.result = journal.result;
  if (journal.request !== undefined) entry.request = journal.request;
  return entry;
}

/** What `dump` shows of the session table. */
export interface SessionTableDump {
  sessions: unknown[];
  replies: unknown[];
  keptReplies: unknown[];
  journal: unknown[];
}

/** The highest request id of a live session that is no longer answered with its reply. */
function expiredUpTo(session: SessionRecord, limits: SessionLimits): number {
  return Math.max(session.floor, session.latest - limits.requestWindow);
}

/**
 * Links a lookup walks at most. Every reply in a chain was inside its window when kept: a reply
 * newer than request r's has an id above (latest then) - W >= r - W and at most the current
 * latest, which is below r + W while r is in the window; so fewer than 2W - 1 replies come before
 * r's, and a lookup that has walked 2W - 1 links without finding r never will.
 */
function chainLinksMax(limits: SessionLimits): number {
  return 2 * limits.requestWindow - 1;
}

export class SessionTable {
  /** clientId → the session, 25 bytes (see `encodeSession`). */
  private readonly sessions: Database<Buffer, string>;
  /** Replies by LSN, chained per client, swept in ranges (see `reply-table.ts`). */
  private readonly replies: ReplyTable;
  /** Sessions not evicted, in activity order (by LSN), at most `clientsMax`; loaded at open. */
  private readonly liveSessions = new LiveSessions();
  /**
   * Clients whose live session the apply under way changed and did not store yet (each once:
   * `LiveSession.changed`): stored as they are at the end of the apply (`storeChangedSessions`),
   * however many of their commits the batch holds. An array, emptied after each apply.
   */
  private readonly changedClients: string[] = [];
  /** [clientId, requestId, callIndex] → journaled call outcome, until the commit lands. */
  private readonly journal: Database<Omit<JournalEntry, 'callIndex'>, [string, number, number]>;
  /**
   * Journal entries kept per client (never fewer than there are; counted at open): a client with
   * none, nearly every one, costs no journal read when it sends a request.
   */
  private readonly journalCounts = new Map<string, number>();

  /**
   * With `layoutIsCurrent` false the state is another layout's, opened only to be found so and
   * rebuilt: nothing stored is decoded (its sessions may be of another size).
   */
  constructor(root: RootDatabase, layoutIsCurrent: boolean) {
    this.sessions = root.openDB({ name: 'sessions', encoding: 'binary' });
    this.replies = new ReplyTable(root);
    this.journal = root.openDB({ name: 'journal' });
    if (!layoutIsCurrent) return;
    const live: Array<[string, SessionRecord]> = [];
    for (const { key, value } of this.sessions.getRange({})) {
      const session = decodeSession(value);
      if (!session.evicted) live.push([key, session]);
    }
    live.sort((a, b) => a[1].lastLsn - b[1].lastLsn);
    for (const [clientId, session] of live) this.liveSessions.add(clientId, session);
    for (const [clientId] of this.journal.getKeys({})) this.countJournal(clientId, 1);
  }

  private countJournal(clientId: string, change: number): void {
    const count = (this.journalCounts.get(clientId) ?? 0) + change;
    if (count > 0) this.journalCounts.set(clientId, count);
    else this.journalCounts.delete(clientId);
  }

  /** Sessions kept with their reply windows (not evicted). */
  get liveCount(): number {
    return this.liveSessions.size;
  }

  /** Clients with journaled calls kept (of requests not yet committed). */
  get journalClients(): number {
    return this.journalCounts.size;
  }

  lookup(clientId: string, requestId: number, limits: SessionLimits): SessionLookup {
    const session = this.sessionOf(clientId);
    if (session === undefined) return { kind: 'unknown' };
    if (session.evicted) {
      return requestId <= session.latest ? { kind: 'expired', latest: session.latest } : { kind: 'unknown' };
    }
    // Nothing above the highest committed id has an outcome: a new request costs no read.
    if (requestId > session.latest) return { kind: 'unknown' };
    if (requestId <= expiredUpTo(session, limits)) return { kind: 'expired', latest: session.latest };
    // A resend (rare): a few gets along the client's reply chain.
    const stored = this.replies.find(clientId, requestId, session.lastLsn, chainLinksMax(limits));
    return stored === undefined ? { kind: 'unknown' } : { kind: 'committed', outcome: outcomeOf(stored) };
  }

  /**
   * The client's highest request id with any trace here: committed, or with a journaled call
   * of a request that never committed (its process died between the call and the commit).
   */
  latestRequestId(clientId: string): number {
    const committed = this.sessionOf(clientId)?.latest ?? 0;
    if (!this.journalCounts.has(clientId)) return committed;
    for (const key of this.journal.getKeys({ start: [clientId, Number.MAX_SAFE_INTEGER], end: [clientId, 0], reverse: true, limit: 1 })) {
      return Math.max(committed, key[1]);
    }
    return committed;
  }

  private sessionOf(clientId: string): SessionRecord | undefined {
    const live = this.liveSessions.get(clientId);
    if (live !== undefined) return live;
    const stored = this.sessions.get(clientId);
    return stored === undefined ? undefined : decodeSession(stored);
  }

  journalEntry(clientId: string, requestId: number, callIndex: number): JournalEntry | undefined {
    if (!this.journalCounts.has(clientId)) return undefined;
    const entry = this.journal.get([clientId, requestId, callIndex]);
    return entry === undefined ? undefined : { callIndex, ...entry };
  }

  /** Keeps a journaled call (inside the state's apply transaction). */
  putJournal(lsn: number, journal: JournalPayload): void {
    const { callIndex, ...stored } = journalEntryOf(lsn, journal);
    this.journal.putSync([journal.clientId, journal.requestId, callIndex], stored);
    this.countJournal(journal.clientId, 1);
  }

  /** Records a commit's outcome (inside the state's apply transaction). */
  recordOutcome(lsn: number, commit: CommitForApply, limits: SessionLimits): void {
    const { clientId, requestId } = commit;
    if (commit.calls > 0) this.removeJournal(clientId, requestId, requestId + 1);
    const previous = this.sessionOf(clientId);
    const live = previous !== undefined && !previous.evicted;
    // A client back from eviction starts a new chain above its tombstone: the replies of its ids
    // up to there are gone, so a resend of one must stay REQUEST_EXPIRED, never run again.
    const floor = previous === undefined ? 0 : previous.evicted ? previous.latest : previous.floor;
    const previousLatest = previous?.latest ?? 0;
    const latest = Math.max(previousLatest, requestId);
    // An outcome already outside the window would never be asked for: keep nothing, change
    // nothing (the session, and with it the chain's head, stays as it was).
    if (requestId <= expiredUpTo({ latest, lastLsn: lsn, floor, evicted: false }, limits)) return;
    const previousLsn = live ? previous.lastLsn : 0;
    // The session is updated where it is (see `live-sessions.ts`).
    let session = this.liveSessions.get(clientId);
    if (session === undefined) {
      session = this.liveSessions.add(clientId, { latest, lastLsn: lsn, floor, evicted: false });
    } else {
      session.latest = latest;
      session.lastLsn = lsn;
      session.floor = floor;
      this.liveSessions.touched(session);
    }
    if (!session.changed) {
      session.changed = true;
      this.changedClients.push(clientId);
    }
    // Calls journaled by requests that never committed are dropped once the window passes them;
    // checked once per window's worth of requests, so the scan costs nothing per commit.
    if (Math.floor(latest / limits.requestWindow) > Math.floor(previousLatest / limits.requestWindow)) {
      this.removeJournal(clientId, 0, latest - limits.requestWindow + 1);
    }
    while (this.liveSessions.size > limits.clientsMax) this.evictOldestSession();
    this.replies.sweepIfDue(this.liveSessions.size, limits.requestWindow, (swept) => {
      const sweptSession = this.liveSessions.get(swept);
      return sweptSession === undefined ? undefined : expiredUpTo(sweptSession, limits);
    });
    this.replies.put({ lsn, requestId, previousLsn, clientId }, commit.failed, commit.outcome, commit.outcomeValue);
  }

  /**
   * Stores what the apply changed (inside its write transaction, at its end): its replies, as
   * one run, and the sessions. Until then the live ones are read from memory, where they are
   * current; an evicted one is stored at once, and is stored again only if the client comes back.
   */
  storeChangedSessions(): void {
    this.replies.writeRun();
    for (const clientId of this.changedClients) {
      const session = this.liveSessions.get(clientId);
      // Evicted since (stored then as a tombstone), or listed twice (evicted and back): stored once.
      if (session === undefined || !session.changed) continue;
      session.changed = false;
      this.sessions.putSync(clientId, encodeSession(session));
    }
    this.changedClients.length = 0;
  }

  private removeJournal(clientId: string, fromRequestId: number, toRequestId: number): void {
    if (toRequestId <= fromRequestId || !this.journalCounts.has(clientId)) return;
    for (const key of this.journal.getKeys({ start: [clientId, fromRequestId, 0], end: [clientId, toRequestId, 0] })) {
      this.journal.removeSync(key);
      this.countJournal(clientId, -1);
    }
  }

  private evictOldestSession(): void {
    const session = this.liveSessions.oldest;
    assert(session !== undefined, 'evicting from an empty session table');
    const { clientId } = session;
    this.liveSessions.remove(session);
    session.changed = false;
    this.sessions.putSync(clientId, encodeSession({ ...session, evicted: true }));
    // Its kept replies go now; its recent ones go with the sweep of their generation, which
    // finds no live session for them: deleting them now would dirty a page per reply, and no
    // lookup reads them (the tombstone answers first).
    this.replies.dropKept(clientId);
    this.removeJournal(clientId, 0, Number.MAX_SAFE_INTEGER);
  }


  dump(): SessionTableDump {
    const sessions = entriesOf(this.sessions).map(([clientId, bytes]) => [clientId, decodeSession(bytes)]);
    return { sessions, ...this.replies.dump(), journal: entriesOf(this.journal) };
  }
}

function outcomeOf(stored: StoredReply): Outcome {
  const outcome: Outcome = { requestId: stored.requestId, lsn: stored.lsn };
  if (stored.error !== undefined) outcome.error = stored.error;
  else outcome.reply = stored.reply;
  return outcome;
}

/** A session as stored: latest request id, last LSN and floor (f64 LE each), then 1 if evicted. */
function encodeSession(session: SessionRecord): Buffer {
  const bytes = Buffer.allocUnsafe(25);
  bytes.writeDoubleLE(session.latest, 0);
  bytes.writeDoubleLE(session.lastLsn, 8);
  bytes.writeDoubleLE(session.floor, 16);
  bytes[24] = session.evicted ? 1 : 0;
  return bytes;
}

function decodeSession(bytes: Uint8Array): SessionRecord {
  if (bytes.length !== 25) assertionFailed(`a stored session is 25 bytes, not ${bytes.length}`);
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { latest: view.readDoubleLE(0), lastLsn: view.readDoubleLE(8), floor: view.readDoubleLE(16), evicted: view[24] === 1 };
}

/** Every key and value of a database, in key order (for comparing two states). */
export function entriesOf<K extends Key, V>(database: Database<V, K>): Array<[K, V]> {
  return [...database.getRange({})].map(({ key, value }) => [key, value] as [K, V]);
}
