/**
 * Proves the session table of layout 3 against a model, over seeded random commits: busy clients,
 * idle ones, ids committed out of order and late (already outside the window), failures,
 * evictions past `clientsMax` and clients coming back after them. After every few applied
 * batches, every lookup of ids around each client's window answers what the model says (a reply
 * found along the chain, among the kept ones, expired or unknown); the replies kept stay within
 * the bounds `reply-table.ts` states (at most `generations` generations of recent ones, at most W
 * kept per live client, none for an evicted one); the same commits applied in other batches with
 * a reopen halfway or after every commit, or read back by a reopened table, give the same table,
 * generation by generation. And a reply 2W - 1
 * links down its chain, the most that ids committed out of order can put before it, is found.
 * Prints its seed; `TXLOG_SEED` replays it.
 */
import { open, type RootDatabase } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { commitForApply } from '../../engine/commit-for-apply.js';
import type { CommitPayload } from '../../engine/records.js';
import { generationSize, generations } from '../../engine/reply-table.js';
import type { StoredReply } from '../../engine/stored-reply.js';
import { SessionTable, type SessionLookup } from '../../engine/session-table.js';
import type { SessionLimits } from '../../engine/options.js';
import { seededRandom, testSeed, type SeededRandom } from '../helpers/random.js';
import { useTempDir } from '../helpers/temp.js';

const newDir = useTempDir('txlog-session-table-');

interface ModelSession {
  latest: number;
  floor: number;
  evicted: boolean;
  replies: Map<number, { lsn: number; value: unknown; failed: boolean }>;
}

/** The session table's promise, kept in plain maps. */
class Model {
  readonly sessions = new Map<string, ModelSession>();
  /** Live clients, least recently active first. */
  private readonly order = new Map<string, true>();

  constructor(private readonly limits: SessionLimits) {}

  commit(lsn: number, clientId: string, requestId: number, value: unknown, failed: boolean): void {
    const previous = this.sessions.get(clientId);
    const floor = previous === undefined ? 0 : previous.evicted ? previous.latest : previous.floor;
    const latest = Math.max(previous?.latest ?? 0, requestId);
    if (requestId <= Math.max(floor, latest - this.limits.requestWindow)) return;
    const replies = previous !== undefined && !previous.evicted ? previous.replies : new Map();
    replies.set(requestId, { lsn, value, failed });
    this.sessions.set(clientId, { latest, floor, evicted: false, replies });
    this.order.delete(clientId);
    this.order.set(clientId, true);
    while (this.order.size > this.limits.clientsMax) {
      const [oldest] = this.order.keys();
      this.order.delete(oldest!);
      const session = this.sessions.get(oldest!)!;
      session.evicted = true;
      session.replies = new Map();
    }
  }

  lookup(clientId: string, requestId: number): SessionLookup {
    const session = this.sessions.get(clientId);
    if (session === undefined) return { kind: 'unknown' };
    if (session.evicted) return requestId <= session.latest ? { kind: 'expired', latest: session.latest } : { kind: 'unknown' };
    if (requestId > session.latest) return { kind: 'unknown' };
    if (requestId <= Math.max(session.floor, session.latest - this.limits.requestWindow)) return { kind: 'expired', latest: session.latest };
    const reply = session.replies.get(requestId);
    if (reply === undefined) return { kind: 'unknown' };
    const outcome = reply.failed ? { requestId, lsn: reply.lsn, error: reply.value } : { requestId, lsn: reply.lsn, reply: reply.value };
    return { kind: 'committed', outcome } as SessionLookup;
  }

  get liveCount(): number {
    return this.order.size;
  }
}

interface Commit {
  lsn: number;
  payload: CommitPayload;
}

function commitPayload(clientId: string, requestId: number, value: unknown, failed: boolean): CommitPayload {
  const payload: CommitPayload = { clientId, requestId, command: 'test', args: null, events: [], firstPosition: 0, now: [], random: [], readSet: [], calls: 0, digest: '' };
  if (failed) payload.error = value as CommitPayload['error'] & object;
  else payload.reply = value;
  return payload;
}

/**
 * Commits of a seeded workload: in phase one 12 busy clients, 6 that go idle after a few requests
 * and 3 slow ones (fewer than `clientsMax`, so the idle and slow ones stay live, and their replies
 * must survive the sweeps, again and again for the slow ones); in phase two 40 more clients, so
 * sessions are evicted and some come back.
 */
function workload(random: SeededRandom, limits: SessionLimits, count: number): Commit[] {
  const next = new Map<string, number>();
  const skipped = new Map<string, number[]>();
  const commits: Commit[] = [];
  let lsn = 0;
  const idle = Array.from({ length: 6 }, (_, index) => `idle-${index}`);
  const busy = Array.from({ length: 12 }, (_, index) => `busy-${index}`);
  const slow = Array.from({ length: 3 }, (_, index) => `slow-${index}`);
  const more = Array.from({ length: 40 }, (_, index) => `more-${index}`);
  for (let index = 0; index < count; index++) {
    const phaseTwo = index >= count / 2;
    const pool = index < 200 ? [...idle, ...busy, ...slow] : phaseTwo ? [...busy, ...more] : busy;
    const clientId = !phaseTwo && random.float() < 0.003 ? random.pick(slow) : random.pick(pool);
    const nextId = next.get(clientId) ?? 1;
    const behind = skipped.get(clientId) ?? [];
    let requestId: number;
    if (behind.length > 0 && random.float() < 0.3) {
      // A request sent earlier commits now: inside the window, or already past it.
      requestId = behind.splice(random.integer(0, behind.length - 1), 1)[0]!;
    } else {
      // Now and then a client has several requests in flight: the ids it skips commit later.
      const jump = random.float() < 0.1 ? random.integer(1, limits.requestWindow) : 0;
      for (let id = nextId; id < nextId + jump; id++) behind.push(id);
      requestId = nextId + jump;
      next.set(clientId, requestId + 1);
    }
    skipped.set(clientId, behind.slice(-2 * limits.requestWindow));
    // Journal and epoch records take LSNs too.
    lsn += random.float() < 0.2 ? random.integer(2, 4) : 1;
    const failed = random.float() < 0.1;
    const value = failed ? { code: 'HANDLER_FAILED', message: `failed ${clientId}:${requestId}` } : { clientId, requestId, size: 'x'.repeat(random.integer(0, 40)) };
    commits.push({ lsn, payload: commitPayload(clientId, requestId, value, failed) });
  }
  return commits;
}

function openRoot(dir: string): RootDatabase {
  return open({ path: dir, maxDbs: 16, noSync: true, compression: false });
}

function applyAll(root: RootDatabase, table: SessionTable, commits: Commit[], batch: number, limits: SessionLimits, afterBatch: (applied: number) => void = () => undefined): void {
  for (let start = 0; start < commits.length; start += batch) {
    // As `State.apply` does: the batch's outcomes, then the sessions they changed, in one transaction.
    root.transactionSync(() => {
      for (const { lsn, payload } of commits.slice(start, start + batch)) table.recordOutcome(lsn, commitForApply(payload), limits);
      table.storeChangedSessions();
    });
    afterBatch(Math.min(commits.length, start + batch));
  }
}

function checkLookups(table: SessionTable, model: Model, limits: SessionLimits): void {
  for (const [clientId, session] of model.sessions) {
    for (let requestId = Math.max(1, session.latest - 2 * limits.requestWindow); requestId <= session.latest + 1; requestId++) {
      expect(table.lookup(clientId, requestId, limits), `${clientId}:${requestId}`).toEqual(model.lookup(clientId, requestId));
    }
  }
}

function checkBounds(table: SessionTable, model: Model, limits: SessionLimits): { replies: number; kept: number } {
  const { replies: generationsKept, keptReplies } = table.dump() as { replies: StoredReply[][]; keptReplies: StoredReply[] };
  const replies = generationsKept.flat();
  expect(replies.length).toBeLessThanOrEqual(generations * generationSize(model.liveCount, limits.requestWindow));
  const keptPerClient = new Map<string, number>();
  for (const { clientId } of keptReplies) keptPerClient.set(clientId, (keptPerClient.get(clientId) ?? 0) + 1);
  for (const [clientId, kept] of keptPerClient) {
    expect(model.sessions.get(clientId)?.evicted, `${clientId} is live`).toBe(false);
    expect(kept, `kept replies of ${clientId}`).toBeLessThanOrEqual(limits.requestWindow);
  }
  return { replies: replies.length, kept: keptReplies.length };
}

describe('session table (layout 3)', () => {
  it('finds a reply 2W - 1 links down its chain, the most ids committed out of order can put there', async () => {
    const limits: SessionLimits = { requestWindow: 4, clientsMax: 10 };
    const root = openRoot(newDir());
    const table = new SessionTable(root, true);
    // 5 first, then 2..4 (inside 5's window), then 6..8: the window is 5..8, and 5's reply is the
    // seventh link back from the head (8, 7, 6, 4, 3, 2, 5).
    const ids = [5, 2, 3, 4, 6, 7, 8];
    const commits = ids.map((requestId, index) => ({ lsn: index + 1, payload: commitPayload('c', requestId, { requestId }, false) }));
    applyAll(root, table, commits, 64, limits);
    expect(table.lookup('c', 5, limits)).toEqual({ kind: 'committed', outcome: { requestId: 5, lsn: 1, reply: { requestId: 5 } } });
    expect(table.lookup('c', 4, limits)).toEqual({ kind: 'expired', latest: 8 });
    await root.close();
  });

  it('answers every lookup as the model does, within its bounds, the same in any batches and after a reopen', async () => {
    const seed = testSeed('session table model');
    const limits: SessionLimits = { requestWindow: 8, clientsMax: 30 };
    const commits = workload(seededRandom(seed), limits, 40_000);
    const model = new Model(limits);
    const root = openRoot(newDir());
    let table = new SessionTable(root, true);
    let applied = 0;
    let keptSeen = 0;
    applyAll(root, table, commits, 64, limits, (upTo) => {
      for (; applied < upTo; applied++) {
        const { lsn, payload } = commits[applied]!;
        model.commit(lsn, payload.clientId, payload.requestId, payload.error ?? payload.reply, payload.error !== undefined);
      }
      if (upTo % (64 * 16) !== 0 && upTo !== commits.length) return;
      checkLookups(table, model, limits);
      keptSeen = Math.max(keptSeen, checkBounds(table, model, limits).kept);
    });
    // Five times the bound were kept over the run, so the bounds held through sweeps; and the
    // sweeps moved the idle clients' replies rather than losing them (the lookups found them).
    expect(commits.length).toBeGreaterThan(5 * generations * generationSize(limits.clientsMax, limits.requestWindow));
    expect(keptSeen).toBeGreaterThan(0);
    const live = table.dump();
    // A reopened table (sessions and eviction order loaded from LMDB) answers alike.
    table = new SessionTable(root, true);
    checkLookups(table, model, limits);
    expect(table.dump()).toEqual(live);
    // Applied again in other batches and reopened halfway (a rebuild, a restart): the same table.
    const otherRoot = openRoot(newDir());
    const half = commits.length / 2 + 7;
    applyAll(otherRoot, new SessionTable(otherRoot, true), commits.slice(0, half), 1000, limits);
    applyAll(otherRoot, new SessionTable(otherRoot, true), commits.slice(half), 1000, limits);
    expect(new SessionTable(otherRoot, true).dump()).toEqual(live);
    await root.close();
    await otherRoot.close();
  });

  it('sweeps alike when reopened after every commit', async () => {
    const limits: SessionLimits = { requestWindow: 8, clientsMax: 30 };
    const commits = workload(seededRandom(testSeed('session table reopened')), limits, 2 * generationSize(limits.clientsMax, limits.requestWindow) + 500);
    const straightRoot = openRoot(newDir());
    applyAll(straightRoot, new SessionTable(straightRoot, true), commits, 64, limits);
    const reopenedRoot = openRoot(newDir());
    for (const commit of commits) applyAll(reopenedRoot, new SessionTable(reopenedRoot, true), [commit], 1, limits);
    expect(new SessionTable(reopenedRoot, true).dump()).toEqual(new SessionTable(straightRoot, true).dump());
    await straightRoot.close();
    await reopenedRoot.close();
  });
});
