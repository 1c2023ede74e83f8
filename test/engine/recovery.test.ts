/**
 * Proves recovery: reopening a store replays the WAL into LMDB by applying the stored outcomes,
 * never re-running a handler (invocations are counted), whether the state is current, missing
 * (`DIR/state` deleted: rebuilt from the whole WAL), behind the WAL (an older copy of the state:
 * the tail is replayed), or unreadable (garbage: rebuilt, and said so). Each time the rebuilt
 * state deep-equals the one before (`dumpState`), and resends get the stored outcomes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defineService, type Context, type Store } from '../../engine/index.js';
import { useTempDir } from '../helpers/temp.js';
import { rejectedError } from '../helpers/wal.js';
import { openQuietStore, stateDirOf } from '../helpers/store.js';
import { open as openLmdb } from 'lmdb';
import { currentBootId } from '../../engine/state-files.js';
import { catchUpLoggedRecordsMin } from '../../engine/recovery.js';
import { nodePlatform } from '../../wal/index.js';

const newDir = useTempDir('txlog-recovery-');

function bankService(invocations: { count: number }) {
  return defineService({
    name: 'bank',
    commands: {
      async deposit(ctx: Context, args: { account: string; amount: number }) {
        invocations.count += 1;
        const ref = await ctx.call('ledger.ref', (key) => `ref-${key}`);
        const { version } = await ctx.readStream(`account-${args.account}`);
        ctx.append(`account-${args.account}`, [{ type: 'Deposited', data: { amount: args.amount, ref, at: ctx.now() } }], {
          expectedVersion: version,
        });
        return { ref, version: version + 1, luck: ctx.random() };
      },
      async transfer(ctx: Context, args: { from: string; to: string; amount: number }) {
        invocations.count += 1;
        ctx.append(`account-${args.from}`, [{ type: 'Withdrawn', data: { amount: args.amount } }]);
        ctx.append(`account-${args.to}`, [{ type: 'Deposited', data: { amount: args.amount } }]);
        return 'moved';
      },
      refuse(ctx: Context) {
        invocations.count += 1;
        throw new Error('refused');
      },
    },
  });
}

interface Sent {
  command: string;
  args: unknown;
  clientId: string;
  requestId: number;
  outcome: unknown;
}

/** A workload touching every kind of record: calls, several streams, failures, one-offs, built-ins. */
async function runWorkload(store: Store, clientPrefix: string, count: number): Promise<Sent[]> {
  const sent: Sent[] = [];
  const pending: Array<Promise<void>> = [];
  for (let index = 0; index < count; index++) {
    const clientId = `${clientPrefix}-${index % 10}`;
    const requestId = Math.floor(index / 10) + 1;
    const kind = index % 4;
    const [command, args] =
      kind === 0
        ? ['deposit', { account: `${index % 3}`, amount: index }]
        : kind === 1
          ? ['transfer', { from: `${index % 3}`, to: `${(index + 1) % 3}`, amount: 1 }]
          : kind === 2
            ? ['refuse', {}]
            : ['append', { stream: `log-${index % 2}`, events: [{ type: 'Logged', data: { index } }] }];
    pending.push(
      store.execute(command, args, { clientId, requestId }).then(
        (reply) => void sent.push({ command, args, clientId, requestId, outcome: reply }),
        (error: { code: string }) => void sent.push({ command, args, clientId, requestId, outcome: { error: error.code } }),
      ),
    );
  }
  await Promise.all(pending);
  await store.append('one-off', [{ type: 'NoIds' }]);
  return sent;
}

async function expectStoredOutcomes(store: Store, sent: readonly Sent[]): Promise<void> {
  for (const request of sent) {
    const outcome = await store.execute(request.command, request.args, { clientId: request.clientId, requestId: request.requestId }).then(
      (reply) => reply,
      (error: { code: string }) => ({ error: error.code }),
    );
    expect(outcome).toEqual(request.outcome);
  }
}

describe('recovery', () => {
  it('reopening applies nothing twice and runs no handler', async () => {
    const dir = newDir();
    const invocations = { count: 0 };
    let { store } = await openQuietStore(dir, { service: bankService(invocations) });
    const sent = await runWorkload(store, 'c', 60);
    const ranBefore = invocations.count;
    expect(ranBefore).toBe(45);
    const before = store.dumpState();
    const lastLsn = store.lastLsn;
    await store.close();
    ({ store } = await openQuietStore(dir, { service: bankService(invocations) }));
    try {
      expect(store.lastLsn).toBe(lastLsn);
      expect(store.appliedLsn).toBe(lastLsn);
      expect(store.dumpState()).toEqual(before);
      await expectStoredOutcomes(store, sent);
      expect(invocations.count).toBe(ranBefore);
    } finally {
      await store.close();
    }
  });

  it('a long catch-up says in the log when it begins, how far it is every few seconds, and when it ends', async () => {
    const dir = newDir();
    let { store } = await openQuietStore(dir);
    const perClient = Math.ceil(catchUpLoggedRecordsMin / 64);
    await Promise.all(
      Array.from({ length: 64 }, async (_, client) => {
        for (let count = 0; count < perClient; count++) await store.append(`stream-${client}`, [{ type: 'Counted', data: { count } }]);
      }),
    );
    const lastLsn = store.lastLsn;
    expect(lastLsn).toBeGreaterThanOrEqual(catchUpLoggedRecordsMin);
    await store.close();
    fs.rmSync(stateDirOf(dir), { recursive: true });
    // A monotonic clock that runs 2 s per reading: the rebuild looks long to the progress lines.
    let readings = 0;
    const clock = { ...nodePlatform.clock, monotonicMs: () => nodePlatform.clock.monotonicMs() + 2000 * readings++ };
    const rebuilt = await openQuietStore(dir, { platform: { ...nodePlatform, clock } });
    store = rebuilt.store;
    try {
      expect(store.appliedLsn).toBe(lastLsn);
      const [first, ...rest] = rebuilt.messages;
      expect(first).toBe(`applying ${lastLsn} records of the WAL to the state (LSN 1 to ${lastLsn})`);
      const last = rest.pop();
      expect(last).toMatch(new RegExp(`^applied ${lastLsn} records in \\d+\\.\\d s \\(\\d+ records a second\\); the state is at LSN ${lastLsn}$`));
      expect(rest.length).toBeGreaterThan(0);
      for (const line of rest) expect(line).toMatch(new RegExp(`^applied LSN \\d+ of ${lastLsn} \\(\\d+%, \\d+ records a second\\)$`));
    } finally {
      await store.close();
    }
    // A short catch-up (nothing to apply here) is silent.
    const quiet = await openQuietStore(dir);
    await quiet.store.close();
    expect(quiet.messages).toEqual([]);
  });

  it('deleting DIR/state and reopening rebuilds an identical state from the WAL, running no handler', async () => {
    const dir = newDir();
    const invocations = { count: 0 };
    let { store } = await openQuietStore(dir, { service: bankService(invocations), segmentBytes: 64 * 1024 });
    // Small segments: the rebuild reads across several of them.
    const sent = await runWorkload(store, 'c', 400);
    expect(fs.readdirSync(path.join(dir, 'wal')).filter((name) => name.endsWith('.wal')).length).toBeGreaterThan(1);
    const before = store.dumpState();
    const ranBefore = invocations.count;
    await store.close();
    fs.rmSync(stateDirOf(dir), { recursive: true });
    ({ store } = await openQuietStore(dir, { service: bankService(invocations), segmentBytes: 64 * 1024 }));
    try {
      expect(invocations.count).toBe(ranBefore);
      expect(store.dumpState()).toEqual(before);
      await expectStoredOutcomes(store, sent);
      expect(invocations.count).toBe(ranBefore);
      // It goes on from where it was: the next position and versions follow on.
      const next = await store.append('account-0', [{ type: 'After' }]);
      expect(next.position).toBe(before.nextPosition);
    } finally {
      await store.close();
    }
  });

  it('a state behind the WAL replays only the tail, reaching the same state', async () => {
    const dir = newDir();
    const invocations = { count: 0 };
    let { store } = await openQuietStore(dir, { service: bankService(invocations) });
    await runWorkload(store, 'early', 40);
    await store.close();
    const oldCopy = path.join(dir, 'state-old');
    fs.cpSync(stateDirOf(dir), oldCopy, { recursive: true });
    ({ store } = await openQuietStore(dir, { service: bankService(invocations) }));
    const sent = await runWorkload(store, 'late', 40);
    const before = store.dumpState();
    const ranBefore = invocations.count;
    await store.close();
    fs.rmSync(stateDirOf(dir), { recursive: true });
    fs.renameSync(oldCopy, stateDirOf(dir));
    ({ store } = await openQuietStore(dir, { service: bankService(invocations) }));
    try {
      expect(store.dumpState()).toEqual(before);
      await expectStoredOutcomes(store, sent);
      expect(invocations.count).toBe(ranBefore);
    } finally {
      await store.close();
    }
  });

  it('an unreadable state is rebuilt from the WAL, and the store says so', async () => {
    const dir = newDir();
    const invocations = { count: 0 };
    let { store } = await openQuietStore(dir, { service: bankService(invocations) });
    await runWorkload(store, 'c', 20);
    const before = store.dumpState();
    await store.close();
    fs.writeFileSync(path.join(stateDirOf(dir), 'data.mdb'), Buffer.alloc(64 * 1024, 0x5a));
    let messages: string[];
    ({ store, messages } = await openQuietStore(dir, { service: bankService(invocations) }));
    try {
      expect(messages.some((message) => message.includes('rebuilding it from the WAL'))).toBe(true);
      expect(store.dumpState()).toEqual(before);
      expect(invocations.count).toBe(15);
      const error = await rejectedError(() => store.execute('refuse', {}, { clientId: 'c-2', requestId: 1 }));
      expect(error.code).toBe('HANDLER_FAILED');
      expect(invocations.count).toBe(15);
    } finally {
      await store.close();
    }
  });

  it('a state left open under another boot is rebuilt (a machine crash); under this boot it is trusted', async () => {
    const dir = newDir();
    const invocations = { count: 0 };
    let { store } = await openQuietStore(dir, { service: bankService(invocations) });
    await runWorkload(store, 'c', 20);
    const before = store.dumpState();
    await store.close();
    // As the state looks when its process died without closing it, under this boot or another.
    const leaveOpen = async (bootId: string): Promise<void> => {
      const root = openLmdb({ path: stateDirOf(dir), maxDbs: 16, noSync: true });
      const meta = root.openDB({ name: 'meta' });
      root.transactionSync(() => {
        meta.putSync('cleanClose', 0);
        meta.putSync('bootId', bootId);
      });
      await root.close();
    };
    const bootId = currentBootId();
    expect(bootId, 'this test needs Linux boot ids').toBeDefined();
    await leaveOpen(bootId!);
    let messages: string[];
    ({ store, messages } = await openQuietStore(dir, { service: bankService(invocations) }));
    expect(messages.filter((message) => message.includes('rebuilding'))).toEqual([]);
    expect(store.dumpState()).toEqual(before);
    await store.close();
    await leaveOpen('a-boot-that-is-not-this-one');
    ({ store, messages } = await openQuietStore(dir, { service: bankService(invocations) }));
    try {
      expect(messages.some((message) => message.includes('not closed cleanly before the machine restarted'))).toBe(true);
      expect(store.dumpState()).toEqual(before);
      expect(invocations.count).toBe(15);
    } finally {
      await store.close();
    }
  });
});
