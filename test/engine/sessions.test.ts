/**
 * Proves exactly-once execution through the session table: a resend of a committed request
 * returns the stored reply (or error) and runs nothing; concurrent duplicate sends share one
 * execution; with `requestWindow: 4` a resend older than the window is REQUEST_EXPIRED; with
 * `clientsMax: 3` a fourth client evicts the least recently active one (by LSN), whose later
 * resend of an old id is REQUEST_EXPIRED and never a second execution; the same holds after a
 * reopen and after a rebuild of the state from the WAL, which evicts identically; a state kept
 * for another `requestWindow` (its outcome slots are per window) or in another layout is rebuilt.
 */
import * as fs from 'node:fs';
import { open } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { defineService, type Context } from '../../engine/index.js';
import { useTempDir } from '../helpers/temp.js';
import { rejectedError } from '../helpers/wal.js';
import { openQuietStore, stateDirOf } from '../helpers/store.js';

const newDir = useTempDir('txlog-sessions-');

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
    const before = store.dumpState();
    await store.close();
    fs.rmSync(stateDirOf(dir), { recursive: true });
    ({ store } = await openQuietStore(dir, options));
    try {
      expect(store.dumpState()).toEqual(before);
      await check();
      // b comes back with a new id: it runs, and b is live again, evicting the least recently active (c).
      await store.execute('add', { stream: 's', value: 1 }, { clientId: 'b', requestId: 3 });
      expect(invocations.length).toBe(7);
      const error = await rejectedError(() => store.execute('add', { stream: 's', value: 1 }, { clientId: 'c', requestId: 1 }));
      expect(error.code).toBe('REQUEST_EXPIRED');
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

    // Outcome slots are per requestWindow: with 8, id 5 lives in another slot than with 4.
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
      expect(messages.join('\n')).toMatch(/state has layout 1, this version keeps layout 2; rebuilding it from the WAL/);
      await check();
    } finally {
      await store.close();
    }
  });
});
