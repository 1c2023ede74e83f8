/**
 * Proves `replayLog`: over a log made by a deterministic service (calls, clock, random values,
 * reads, failures, built-in appends) it finds no divergence; with a changed handler it reports
 * each divergence with its LSN and command; and a handler that reads a stream while other
 * transactions interleave does not look nondeterministic, because re-execution reads as of the
 * recorded read set. `reexecute` alone answers the same for one commit. The journal collector a
 * backup re-executes with keeps nothing of a commit once it has handed its calls over, one-off
 * requests (no request id, one shared key) included.
 */
import { describe, expect, it } from 'vitest';
import { defineService, type Context, type Service } from '../../engine/index.js';
import { JournalCollector, replayLog } from '../../engine/replay.js';
import type { CommitPayload } from '../../engine/records.js';
import { useTempDir } from '../helpers/temp.js';
import { commitRecords, openQuietStore } from '../helpers/store.js';

const newDir = useTempDir('txlog-replay-');

function bank(variant: 'original' | 'changed-reply' | 'changed-events'): Service {
  return defineService({
    name: 'bank',
    commands: {
      async deposit(ctx: Context, args: { account: string; amount: number }) {
        const ref = await ctx.call('ledger.ref', (key) => `ref-${key}-${Math.random()}`);
        const { version, events } = await ctx.readStream(`account-${args.account}`);
        const balance = events.reduce((sum, event) => sum + (event.data as { amount: number }).amount, 0);
        // Time passes and other transactions commit while this one waits.
        await new Promise((resolve) => setTimeout(resolve, (args.amount % 3) + 1));
        const amount = variant === 'changed-events' ? args.amount * 2 : args.amount;
        ctx.append(`account-${args.account}`, [{ type: 'Deposited', data: { amount, ref, at: ctx.now(), luck: ctx.random() } }]);
        const reply = { ref, balance: balance + args.amount, version: version + 1 };
        return variant === 'changed-reply' ? { ...reply, balance: reply.balance + 1 } : reply;
      },
      refuse(ctx: Context, args: { why: string }) {
        throw new Error(args.why);
      },
    },
  });
}

async function makeLog(dir: string): Promise<void> {
  const { store } = await openQuietStore(dir, { service: bank('original') });
  try {
    const sends: Array<Promise<unknown>> = [];
    for (let index = 0; index < 30; index++) {
      // Concurrent deposits on two accounts: each reads while others commit around it.
      sends.push(store.execute('deposit', { account: `${index % 2}`, amount: index + 1 }, { clientId: 'c', requestId: index + 1 }));
    }
    sends.push(store.execute('refuse', { why: 'no' }, { clientId: 'd', requestId: 1 }).catch(() => undefined));
    sends.push(store.execute('nope', {}).catch(() => undefined));
    sends.push(store.append('plain', [{ type: 'P' }]));
    await Promise.all(sends);
  } finally {
    await store.close();
  }
}

describe('replayLog', () => {
  it('finds no divergence for the service that wrote the log, however its reads interleaved', async () => {
    const dir = newDir();
    await makeLog(dir);
    const report = await replayLog({ dir, service: bank('original') });
    expect(report.commits).toBe(33);
    expect(report.divergences).toEqual([]);
    // The interleaving was real: some deposit saw a version older than the head when it committed.
    const { store } = await openQuietStore(dir, { service: bank('original') });
    try {
      const deposits = commitRecords(store).filter(({ commit }) => commit.command === 'deposit');
      const stale = deposits.filter(({ commit }) => commit.readSet[0]![1] + 1 !== commit.events[0]!.firstVersion);
      expect(stale.length).toBeGreaterThan(0);
    } finally {
      await store.close();
    }
  });

  it('reports each divergence of a changed handler with its LSN and command', async () => {
    const dir = newDir();
    await makeLog(dir);
    const { store } = await openQuietStore(dir);
    const depositLsns = commitRecords(store)
      .filter(({ commit }) => commit.command === 'deposit')
      .map(({ lsn }) => lsn);
    await store.close();
    for (const variant of ['changed-reply', 'changed-events'] as const) {
      const report = await replayLog({ dir, service: bank(variant) });
      expect(report.commits).toBe(33);
      expect(report.divergences.map((divergence) => divergence.lsn)).toEqual(depositLsns);
      for (const divergence of report.divergences) {
        expect(divergence.command).toBe('deposit');
        expect(divergence.clientId).toBe('c');
        expect(divergence.recordedDigest).not.toBe(divergence.replayedDigest);
        expect(divergence.detail.length).toBeGreaterThan(0);
      }
    }
  });

  it('reports a command the new service lacks', async () => {
    const dir = newDir();
    await makeLog(dir);
    const withoutDeposit = defineService({ name: 'bank', commands: { refuse: bank('original').commands['refuse']! } });
    const report = await replayLog({ dir, service: withoutDeposit });
    expect(report.divergences.length).toBe(30);
    expect(report.divergences[0]?.detail).toContain('no command deposit');
  });

  it('replays built-in appends of every event shape to their recorded digests, events taken from the args as they are or checked again', async () => {
    // A built-in append whose args fit in the event limit commits the events of its private args
    // as they are; re-execution (and a store whose limit is close to the args) packs and decodes
    // each event once more. Both must record the same writes, or the digests would differ.
    const dir = newDir();
    const events = [
      { type: 'Bare' },
      { type: 'Null', data: null },
      { type: 'Nested', data: { a: [1, 2.5, -3, 2 ** 40, 'x', true, null], b: { c: { d: 'é∂😀' } } }, metadata: { correlationId: 'k' } },
      { type: 'Binary', data: Buffer.from([0, 1, 2, 255]) },
      { type: 'Dated', data: { at: new Date(1_700_000_000_000) } },
      { id: '0b7e8f0a-7c59-4d43-9a86-2f6d1b8f4c11', type: 'WithId', data: 'given' },
      { type: 'Sparse', data: { kept: 1, dropped: undefined } },
    ];
    const { store } = await openQuietStore(dir);
    try {
      await store.append('one', events);
      await store.execute('append', { writes: [{ stream: 'two', events: events.slice(0, 3) }, { stream: 'three', events: events.slice(3) }], checks: [{ stream: 'one', expectedVersion: 6 }] });
      await store.execute('append', { stream: 'big', events: [{ type: 'Big', data: 'x'.repeat(1000) }] }, { clientId: 'c', requestId: 1 });
    } finally {
      await store.close();
    }
    const { store: tight } = await openQuietStore(dir, { eventBytesMax: 1100 });
    try {
      // Args of about 1,040 bytes: within 64 bytes of the event limit, so the event is checked again.
      await tight.execute('append', { stream: 'big', events: [{ type: 'Big', data: 'y'.repeat(1000) }] }, { clientId: 'c', requestId: 2 });
      const read = await tight.readStream('one');
      expect(read.events.map(({ type, data, metadata }) => ({ type, data, metadata }))).toEqual(
        events.map(({ type, data, metadata }) => ({ type, data: data ?? null, metadata })),
      );
      expect((await tight.readStream('big')).version).toBe(1);
    } finally {
      await tight.close();
    }
    const report = await replayLog({ dir, service: undefined });
    expect(report.commits).toBe(4);
    expect(report.divergences).toEqual([]);
  });
});

describe('JournalCollector', () => {
  it('keeps nothing of a commit it handed its calls to, whether or not the commit has a request id', () => {
    const collector = new JournalCollector();
    let lsn = 0;
    for (let round = 0; round < 100; round++) {
      for (const requestId of [0, round + 1]) {
        const callLsn = ++lsn;
        collector.add(callLsn, { clientId: 'c', requestId, callIndex: 0, name: 'call', result: round });
        const commit = { clientId: 'c', requestId, calls: 1, callLsns: [callLsn] } as unknown as CommitPayload;
        expect(collector.take(commit)?.map((entry) => entry.result)).toEqual([round]);
      }
    }
    expect(collector.size).toBe(0);
    expect(collector.requestLsns).toBe(0);
  });
});
