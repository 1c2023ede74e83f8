/**
 * Proves exactly-once execution through the session table: a resend of a committed request
 * returns the stored reply (or error) and runs nothing; concurrent duplicate sends share one
 * execution; with `requestWindow: 4` a resend older than the window is REQUEST_EXPIRED; with
 * `clientsMax: 3` a fourth client evicts the least recently active one (by LSN), whose later
 * resend of an old id is REQUEST_EXPIRED and never a second execution, also once it is back with
 * a new id; the same holds after a reopen and after a rebuild of the state from the WAL, which
 * evicts identically; a state kept for another `requestWindow` (its sweeps dropped what a larger
 * window answers) or in another layout (1, or 2 with its 17-byte sessions) is rebuilt.
 *
 * Layout 3 keeps replies by LSN and sweeps them: a resend of each of the last `requestWindow`
 * ids, of a busy client and of an idle one, gets its reply after thousands of other clients'
 * commits and several sweeps; over 100,000 commits by 300 clients with `clientsMax: 200` the
 * replies kept stay within the bound `reply-table.ts` states, and an evicted client keeps none.
 */
import * as fs from 'node:fs';
import { open } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { defineService, type Context, type Store, type StoreOptions } from '../../engine/index.js';
import { generationSize, generations } from '../../engine/reply-table.js';
import { decodeReplyRun, type StoredReply } from '../../engine/stored-reply.js';
import { decodePayload } from '../../wal/format.js';
import { useTempDir } from '../helpers/temp.js';
import { rejectedError } from '../helpers/wal.js';
import { openQuietStore, stateDirOf } from '../helpers/store.js';

const newDir = useTempDir('txlog-sessions-');

/** Closes the store, removes its state and opens it again: the rebuild from the WAL must be the same state. */
async function rebuilt(store: Store, dir: string, options: Partial<StoreOptions>): Promise<Store> {
  const before = store.dumpState();
  await store.close();
  fs.rmSync(stateDirOf(dir), { recursive: true });
  const reopened = (await openQuietStore(dir, options)).store;
  try {
    expect(reopened.dumpState()).toEqual(before);
  } catch (error) {
    await reopened.close();
    throw error;
  }
  return reopened;
}

function countingService(invocations: string[]) {
  return defineService({
    name: 'counting',
    commands: {
      async add(ctx: Context, args: { stream: string; value: number }) {
        invocations.push(`${ctx.clientId}:${ctx.requestId}`);
        // Slow enough that a duplicate sent meanwhile finds it running.
        await new Promise((resolve) => setTimeout(resolve, 5));
        const { version } = await ctx.readStream(args.stream);
        ctx.append(args.stream, [{ type: 'Added', data: { value: args.value } }]);
        return { sawVersion: version, value: args.value, stamp: ctx.random() };
      },
      fail(ctx: Context) {
        invocations.push(`${ctx.clientId}:${ctx.requestId}`);
        throw new Error('always fails');
      },
    },
  });
}

describe('exactly-once', () => {
  it('a resend of a committed request returns the stored reply and runs nothing', async () => {
    const invocations: string[] = [];
    const { store } = await openQuietStore(newDir(), { service: countingService(invocations) });
    try {
      const reply = await store.execute('add', { stream: 's', value: 1 }, { clientId: 'c', requestId: 1 });
      await store.execute('add', { stream: 's', value: 2 }, { clientId: 'c', requestId: 2 });
      // Resent with the same ids: the stored reply (sawVersion -1, the same random stamp).
      expect(await store.execute('add', { stream: 's', value: 1 }, { clientId: 'c', requestId: 1 })).toEqual(reply);
      // Even with different args: the ids name the request, not its content.
      expect(await store.execute('add', { stream: 's', value: 99 }, { clientId: 'c', requestId: 1 })).toEqual(reply);
      const failed = await rejectedError(() => store.execute('fail', {}, { clientId: 'c', requestId: 3 }));
      const failedAgain = await rejectedError(() => store.execute('fail', {}, { clientId: 'c', requestId: 3 }));
      expect([failed.code, failedAgain.code]).toEqual(['HANDLER_FAILED', 'HANDLER_FAILED']);
      expect(invocations).toEqual(['c:1', 'c:2', 'c:3']);
      expect((await store.readStream('s')).version).toBe(1);
      // The same client's ids are distinct from another client's.
      await store.execute('add', { stream: 's', value: 3 }, { clientId: 'd', requestId: 1 });
      expect(invocations).toEqual(['c:1', 'c:2', 'c:3', 'd:1']);
    } finally {
      await store.close();
    }
  });

  it('concurrent duplicate sends share one execution', async () => {
    const invocations: string[] = [];
    const { store } = await openQuietStore(newDir(), { service: countingService(invocations) });
    try {
      const sends = Array.from({ length: 10 }, () => store.execute('add', { stream: 's', value: 1 }, { clientId: 'c', requestId: 1 }));
      const failing = Array.from({ length: 5 }, () =>
        store.execute('fail', {}, { clientId: 'c', requestId: 2 }).then(
          () => 'resolved',
          (error: { code: string }) => error.code,
        ),
      );
      const replies = await Promise.all(sends);
      expect(new Set(replies.map((reply) => JSON.stringify(reply))).size).toBe(1);
      expect(await Promise.all(failing)).toEqual(Array.from({ length: 5 }, () => 'HANDLER_FAILED'));
      expect(invocations).toEqual(['c:1', 'c:2']);
      expect((await store.readStream('s')).version).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('a one-off request (no ids) runs every time it is sent', async () => {
    const invocations: string[] = [];
    const { store } = await openQuietStore(newDir(), { service: countingService(invocations) });
    try {
      await store.execute('add', { stream: 's', value: 1 });
      await store.execute('add', { stream: 's', value: 1 });
      expect(invocations).toEqual([':0', ':0']);
      expect((await store.readStream('s')).version).toBe(1);
      expect(store.dumpState().sessions).toEqual([]);
    } finally {
      await store.close();
    }
  });
});

describe('session window', () => {
  it('with requestWindow 4, a resend older than the window is REQUEST_EXPIRED, never re-run, also after reopen and rebuild', async () => {
    const dir = newDir();
    const invocations: string[] = [];
    const options = { service: countingService(invocations), requestWindow: 4 };
    let { store } = await openQuietStore(dir, options);
    const replies: unknown[] = [];
    for (let requestId = 1; requestId <= 6; requestId++) {
      replies.push(await store.execute('add', { stream: 's', value: requestId }, { clientId: 'c', requestId }));
    }
    const check = async (): Promise<void> => {
      for (const requestId of [1, 2]) {
        const error = await rejectedError(() => store.execute('add', { stream: 's', value: requestId }, { clientId: 'c', requestId }));
        expect(error.code).toBe('REQUEST_EXPIRED');
        expect(error.details).toMatchObject({ clientId: 'c', requestId, latestRequestId: 6 });
      }
      for (const requestId of [3, 4, 5, 6]) {
        expect(await store.execute('add', { stream: 's', value: requestId }, { clientId: 'c', requestId })).toEqual(replies[requestId - 1]);
      }
      expect(invocations.length).toBe(6);
      expect((await store.readStream('s')).version).toBe(5);
    };
    await check();
    await store.close();
    ({ store } = await openQuietStore(dir, options));
    await check();
    await store.close();
    fs.rmSync(stateDirOf(dir), { recursive: true });
    ({ store } = await openQuietStore(dir, options));
    try {
      await check();
      // The next id runs as usual.
      await store.execute('add', { stream: 's', value: 7 }, { clientId: 'c', requestId: 7 });
      expect(invocations.length).toBe(7);
    } finally {
      await store.close();
    }
  });

  it('with clientsMax 3, a fourth client evicts the least recently active; its old ids expire; rebuild evicts the same', async () => {
    const dir = newDir();
    const invocations: string[] = [];
    const options = { service: countingService(invocations), clientsMax: 3 };
    let { store } = await openQuietStore(dir, options);
    // Activity order by LSN: a, b, c, then a again (so b is now the least recently active), then d.
    await store.execute('add', { stream: 's', value: 1 }, { clientId: 'a', requestId: 1 });
    await store.execute('add', { stream: 's', value: 1 }, { clientId: 'b', requestId: 1 });
    await store.execute('add', { stream: 's', value: 1 }, { clientId: 'b', requestId: 2 });
    await store.execute('add', { stream: 's', value: 1 }, { clientId: 'c', requestId: 1 });
    const aSecond = await store.execute('add', { stream: 's', value: 1 }, { clientId: 'a', requestId: 2 });
    await store.execute('add', { stream: 's', value: 1 }, { clientId: 'd', requestId: 1 });
    expect(invocations.length).toBe(6);

    const check = async (): Promise<void> => {
      for (const requestId of [1, 2]) {
        const error = await rejectedError(() => store.execute('add', { stream: 's', value: 1 }, { clientId: 'b', requestId }));
        expect(error.code).toBe('REQUEST_EXPIRED');
        expect(error.details['latestRequestId']).toBe(2);
      }
      // a, c and d keep their replies.
      expect(await store.execute('add', { stream: 's', value: 1 }, { clientId: 'a', requestId: 2 })).toEqual(aSecond);
      await store.execute('add', { stream: 's', value: 1 }, { clientId: 'c', requestId: 1 });
      await store.execute('add', { stream: 's', value: 1 }, { clientId: 'd', requestId: 1 });
      expect(invocations.length).toBe(6);
    };
    await check();
    store = await rebuilt(store, dir, options);
    try {
      await check();
      // b comes back with a new id: it runs, and b is live again, evicting the least recently active (c).
      await store.execute('add', { stream: 's', value: 1 }, { clientId: 'b', requestId: 3 });
      expect(invocations.length).toBe(7);
      const error = await rejectedError(() => store.execute('add', { stream: 's', value: 1 }, { clientId: 'c', requestId: 1 }));
      expect(error.code).toBe('REQUEST_EXPIRED');
      // b's ids up to its tombstone stay expired though its window (3 back from 3) would cover
      // them: their replies went with the eviction, so answering "unknown" would run them again.
      for (const requestId of [1, 2]) {
        const expired = await rejectedError(() => store.execute('add', { stream: 's', value: 1 }, { clientId: 'b', requestId }));
        expect(expired.code).toBe('REQUEST_EXPIRED');
      }
      expect(invocations.length).toBe(7);
    } finally {
      await store.close();
    }
  });

  it('a state kept for another requestWindow, or in another layout, is rebuilt: resends inside the new window get their replies, none runs twice', async () => {
    const dir = newDir();
    const invocations: string[] = [];
    const service = countingService(invocations);
    let { store } = await openQuietStore(dir, { service, requestWindow: 4 });
    const replies: unknown[] = [];
    for (let requestId = 1; requestId <= 10; requestId++) {
      replies.push(await store.execute('add', { stream: 's', value: requestId }, { clientId: 'c', requestId }));
    }
    await store.close();

    // With 4, the sweeps may have dropped the replies of ids 3..6, which a window of 8 answers.
    let messages: string[];
    ({ store, messages } = await openQuietStore(dir, { service, requestWindow: 8 }));
    const check = async (): Promise<void> => {
      // The rebuild kept every reply the new window covers (3..10), and 1..2 are expired.
      for (let requestId = 3; requestId <= 10; requestId++) {
        expect(await store.execute('add', { stream: 's', value: requestId }, { clientId: 'c', requestId })).toEqual(replies[requestId - 1]);
      }
      expect((await rejectedError(() => store.execute('add', { stream: 's', value: 2 }, { clientId: 'c', requestId: 2 }))).code).toBe('REQUEST_EXPIRED');
      expect(invocations.length).toBe(10);
    };
    try {
      expect(messages.join('\n')).toMatch(/requestWindow of 4, the store now has 8; rebuilding it from the WAL/);
      await check();
    } finally {
      await store.close();
    }

    // A state whose layout is another version's (here: its layout mark rewritten to 1).
    const root = open({ path: stateDirOf(dir), maxDbs: 16 });
    await root.openDB({ name: 'meta' }).put('layout', 1);
    await root.close();
    ({ store, messages } = await openQuietStore(dir, { service, requestWindow: 8 }));
    try {
      expect(messages.join('\n')).toMatch(/state has layout 1, this version keeps layout 6; rebuilding it from the WAL/);
      await check();
    } finally {
      await store.close();
    }

    // A state as layout 2 kept it: sessions of 17 bytes (which this version's reader refuses),
    // replies in slots per window, a streams table.
    await rewriteAsLayout2(stateDirOf(dir), 8);
    ({ store, messages } = await openQuietStore(dir, { service, requestWindow: 8 }));
    try {
      expect(messages.join('\n')).toMatch(/state has layout 2, this version keeps layout 6; rebuilding it from the WAL/);
      await check();
      expect(store.dumpState().streams).toEqual([['s', 9]]);
    } finally {
      await store.close();
    }
  });
});

/** Rewrites a state of this layout as layout 2 kept it (`engine/state.ts` of that version). */
async function rewriteAsLayout2(stateDir: string, requestWindow: number): Promise<void> {
  const root = open({ path: stateDir, maxDbs: 16 });
  const sessions = root.openDB({ name: 'sessions', encoding: 'binary' });
  const replies = Array.from({ length: generations }, (_, generation) => root.openDB<Buffer, Buffer>({ name: `replies-${generation}`, keyEncoding: 'binary', encoding: 'binary' }));
  const outcomes = root.openDB({ name: 'outcomes' });
  const streams = root.openDB({ name: 'streams' });
  const streamIndex = root.openDB({ name: 'stream-index' });
  await root.transaction(() => {
    for (const { key, value } of sessions.getRange({})) {
      const session = Buffer.alloc(17);
      value.copy(session, 0, 0, 16);
      session[16] = value[24]!;
      void sessions.put(key, session);
    }
    for (const { value } of replies.flatMap((table) => [...table.getRange({})])) {
      for (const { clientId, requestId, lsn, outcome } of decodeReplyRun(value)) {
        void outcomes.put([clientId, requestId % requestWindow], { requestId, lsn, reply: decodePayload(outcome) });
      }
    }
    for (const [stream, version] of streamIndex.getKeys({}) as Iterable<[string, number]>) void streams.put(stream, version);
    void root.openDB({ name: 'meta' }).put('layout', 2);
  });
  for (const table of replies) await table.drop();
  await root.openDB({ name: 'kept-replies', keyEncoding: 'binary', encoding: 'binary' }).drop();
  await root.close();
}

/** A service whose command writes no event (so a dump of many commits stays small). */
const noteService = defineService({
  name: 'notes',
  commands: {
    note(ctx: Context) {
      return { clientId: ctx.clientId, requestId: ctx.requestId, stamp: ctx.random() };
    },
  },
});

function note(store: Store, clientId: string, requestId: number): Promise<unknown> {
  return store.execute('note', {}, { clientId, requestId });
}

interface ReplyCounts {
  replies: number;
  kept: Array<[string, number]>;
}

function replyCounts(store: Store): ReplyCounts {
  const { replies, keptReplies } = store.dumpState();
  return { replies: (replies as StoredReply[][]).flat().length, kept: (keptReplies as StoredReply[]).map(({ clientId, requestId }) => [clientId, requestId]) };
}

describe('replies by LSN (layout 3)', () => {
  it("a resend of each of the last requestWindow ids, of a busy and of an idle client, gets its reply after others' commits and sweeps, also after a rebuild", async () => {
    const dir = newDir();
    const options = { service: noteService, requestWindow: 8, clientsMax: 200 };
    let { store } = await openQuietStore(dir, options);
    const idle = new Map<number, unknown>();
    for (let requestId = 1; requestId <= 20; requestId++) idle.set(requestId, await note(store, 'idle', requestId));
    // 150 other clients and a busy one, 70 rounds: 10,570 commits, far past the first sweep.
    const busy = new Map<number, unknown>();
    for (let round = 1; round <= 70; round++) {
      const others = Array.from({ length: 150 }, (_, index) => note(store, `other-${index}`, round));
      busy.set(round, await note(store, 'busy', round));
      await Promise.all(others);
    }
    const check = async (): Promise<void> => {
      for (let requestId = 13; requestId <= 20; requestId++) expect(await note(store, 'idle', requestId)).toEqual(idle.get(requestId));
      for (let requestId = 63; requestId <= 70; requestId++) expect(await note(store, 'busy', requestId)).toEqual(busy.get(requestId));
      for (const [clientId, requestId] of [['idle', 12], ['busy', 62]] as const) {
        expect((await rejectedError(() => note(store, clientId, requestId))).code).toBe('REQUEST_EXPIRED');
      }
    };
    await check();
    // The idle client's window was swept from the LSN table and kept by client; nobody else's.
    const counts = replyCounts(store);
    expect(counts.kept).toEqual(Array.from({ length: 8 }, (_, index) => ['idle', 13 + index]));
    expect(counts.replies).toBeLessThanOrEqual(generations * generationSize(152, 8));
    store = await rebuilt(store, dir, options);
    try {
      await check();
    } finally {
      await store.close();
    }
  });

  it('stays bounded over 100,000 commits by 300 clients with clientsMax 200; an evicted client keeps no reply', async () => {
    const options = { service: noteService, requestWindow: 8, clientsMax: 200 };
    // What `reply-table.ts` promises: its generations of recent replies, and a window per live client.
    const bound = generations * generationSize(options.clientsMax, options.requestWindow) + options.clientsMax * options.requestWindow;
    const { store } = await openQuietStore(newDir(), options);
    try {
      let largest = 0;
      for (let round = 1; round <= 334; round++) {
        await Promise.all(Array.from({ length: 300 }, (_, index) => note(store, `client-${index}`, round)));
        if (round % 16 !== 0) continue;
        const counts = replyCounts(store);
        largest = Math.max(largest, counts.replies + counts.kept.length);
        expect(counts.replies + counts.kept.length).toBeLessThanOrEqual(bound);
      }
      expect(store.lastLsn).toBeGreaterThanOrEqual(100_000);
      expect(largest).toBeGreaterThan(generationSize(options.clientsMax, options.requestWindow));
      // 300 clients round robin past 200 live: each is evicted before it commits again.
      const { sessions, keptReplies } = store.dumpState() as { sessions: Array<[string, { evicted: boolean }]>; keptReplies: StoredReply[] };
      const evicted = new Set(sessions.filter(([, session]) => session.evicted).map(([clientId]) => clientId));
      expect(evicted.size).toBe(100);
      expect(keptReplies.filter(({ clientId }) => evicted.has(clientId))).toEqual([]);
      const [oldest] = evicted;
      expect((await rejectedError(() => note(store, oldest!, 334))).code).toBe('REQUEST_EXPIRED');
      expect(await note(store, 'client-299', 334)).toMatchObject({ clientId: 'client-299', requestId: 334 });
    } finally {
      await store.close();
    }
  });
});
