/**
 * Proves the etcd arbiter (replication/arbiter.ts, arbiter-etcd.ts) against a real etcd
 * (test/helpers/etcd.ts):
 * - nodes campaigning at once against an empty etcd: exactly one leads each round, and epochs
 *   strictly increase across leadership changes (and stay above a node's own log);
 * - a leader cut from etcd: its `leaseValidUntilMs` passes while etcd still holds its lease (so
 *   it stops acknowledging before anyone else can lead), the lease then expires, another node
 *   leads with a higher epoch, and the old leader, once it hears etcd again, learns it lost;
 * - the in-sync set: a compare-and-swap on a stale revision fails, only the leader may change
 *   it, and a node outside it may not lead;
 * - etcd stopped and restarted: the arbiter reports it unreachable, rejects requests with a
 *   retryable TIMEOUT, never throws out of the process, and recovers;
 * - a malformed `etcd://` URL is a USAGE error, broken timing relations a BAD_REQUEST;
 * - importing the package's main entry loads no etcd client.
 *
 * No assertion is on speed: every wait is a poll with a generous limit, and the one race with
 * the clock (the lease outliving our validity) has a margin of seconds.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { TxlogError } from '../../wal/errors.js';
import { openArbiter, parseArbiterUrl, resolveArbiterOptions, type Arbiter, type ArbiterOptions } from '../../replication/arbiter.js';
import { sleep, useEtcd } from '../helpers/etcd.js';
import { useTcpProxies } from '../helpers/tcp-proxy.js';
import { packagesLoaded } from '../helpers/loaded-modules.js';

/** Short enough for tests, with a margin that a noisy 2-core machine cannot eat. */
const testTiming = { leaseTtlMs: 6000, marginMs: 3000, renewIntervalMs: 500, requestTimeoutMs: 1000 } as const;
const pollWaitMsMax = 30_000;

const startEtcd = useEtcd();
const proxy = useTcpProxies();
const opened: Arbiter[] = [];
afterEach(() => {
  for (const arbiter of opened.splice(0)) arbiter.close();
});

async function arbiterOn(endpoint: string, extra: Partial<ArbiterOptions> = {}): Promise<Arbiter> {
  const arbiter = await openArbiter({ endpoints: [endpoint], prefix: '/txlog/test', ...testTiming, ...extra });
  opened.push(arbiter);
  return arbiter;
}

async function waitFor(what: string, condition: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = performance.now() + pollWaitMsMax;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * Runs `request` until etcd answers it: right after a link heals, gRPC may still be backing off
 * from its failed connects and fail a call at once, which the arbiter reports as a retryable
 * TIMEOUT (the behaviour callers are built for, proven in "etcd stopped and restarted").
 */
async function onceReachable<T>(request: () => Promise<T>): Promise<T> {
  const deadline = performance.now() + pollWaitMsMax;
  for (;;) {
    try {
      return await request();
    } catch (error) {
      if (!(error instanceof TxlogError) || error.code !== 'TIMEOUT' || performance.now() > deadline) throw error;
      await sleep(100);
    }
  }
}

describe('campaigns', () => {
  it('nodes campaigning at once: exactly one leads each round, epochs strictly increase', async () => {
    const etcd = await startEtcd();
    const arbiters = await Promise.all(['a', 'b', 'c'].map(() => arbiterOn(etcd.endpoint)));
    const ids = ['a', 'b', 'c'];
    const epochs: number[] = [];
    for (let round = 0; round < 5; round++) {
      const outcomes = await Promise.all(arbiters.map((arbiter, index) => arbiter.campaign({ nodeId: ids[index]!, epochAbove: 0, bootstrap: true })));
      const leaders = outcomes.flatMap((outcome, index) => (outcome.outcome === 'leader' ? [{ index, epoch: outcome.epoch }] : []));
      expect(leaders, `round ${round}: ${JSON.stringify(outcomes)}`).toHaveLength(1);
      const winner = leaders[0]!;
      epochs.push(winner.epoch);
      for (const outcome of outcomes) {
        if (outcome.outcome !== 'leader') expect(outcome).toEqual({ outcome: 'held', holder: { nodeId: ids[winner.index], epoch: winner.epoch } });
      }
      const status = await arbiters[(winner.index + 1) % 3]!.status();
      expect(status.leader).toMatchObject({ nodeId: ids[winner.index], epoch: winner.epoch });
      expect(status.leader!.leaseRemainingMs).toBeGreaterThan(0);
      expect(arbiters[winner.index]!.leadership()).toEqual({ nodeId: ids[winner.index], epoch: winner.epoch });
      await arbiters[winner.index]!.resign();
      expect(arbiters[winner.index]!.leaseValidUntilMs()).toBe(-Infinity);
    }
    expect(epochs).toEqual([1, 2, 3, 4, 5]);

    // A node whose log has seen a higher epoch (the cluster adopted the arbiter late) takes one
    // above it; etcd remembers it for the next leader.
    const above = await arbiters[0]!.campaign({ nodeId: 'a', epochAbove: 41, bootstrap: true });
    expect(above).toMatchObject({ outcome: 'leader', epoch: 42 });
    await arbiters[0]!.resign();
    expect(await arbiters[1]!.campaign({ nodeId: 'b', epochAbove: 3, bootstrap: true })).toMatchObject({ outcome: 'leader', epoch: 43 });
  });

  it('a leader cut from etcd stops being valid before etcd expires its lease; another then leads', async () => {
    const etcd = await startEtcd();
    const link = await proxy(etcd.endpoint);
    const lost: string[] = [];
    const renewals: number[] = [];
    const leader = await arbiterOn(link.address, {
      onLeadershipLost: (reason) => lost.push(reason),
      onLeaseRenewed: (validUntilMs) => renewals.push(validUntilMs),
    });
    const observer = await arbiterOn(etcd.endpoint);

    const campaigned = await leader.campaign({ nodeId: 'a', epochAbove: 0, bootstrap: true });
    expect(campaigned.outcome).toBe('leader');
    // Renewals move the validity on (from their send times).
    const first = leader.leaseValidUntilMs();
    await waitFor('a renewal', () => leader.leaseValidUntilMs() > first);
    expect(leader.leaseValidUntilMs()).toBeGreaterThan(performance.now());
    expect(renewals.at(-1)).toBe(leader.leaseValidUntilMs());

    link.cut();
    await sleep(200);
    const validUntilMs = leader.leaseValidUntilMs();
    // A timer may fire a fraction of a millisecond early by performance.now() (libuv counts its
    // loop time in whole milliseconds): sleep until the clock has passed it.
    while (performance.now() <= validUntilMs) await sleep(Math.max(1, validUntilMs - performance.now()));
    expect(performance.now()).toBeGreaterThan(validUntilMs);
    // Our validity is over; etcd must still hold the lease (the key lives exactly as long).
    const meanwhile = await observer.status();
    expect(meanwhile.leader).toMatchObject({ nodeId: 'a', epoch: 1 });
    expect(await observer.campaign({ nodeId: 'b', epochAbove: 0, bootstrap: true })).toEqual({ outcome: 'held', holder: { nodeId: 'a', epoch: 1 } });
    expect(leader.leaseValidUntilMs()).toBe(validUntilMs);

    await waitFor('etcd to expire the lease', async () => (await observer.status()).leader === undefined);
    expect(leader.leaseValidUntilMs()).toBe(validUntilMs);
    expect(await observer.campaign({ nodeId: 'b', epochAbove: 0, bootstrap: true })).toMatchObject({ outcome: 'leader', epoch: 2 });

    // Healed: etcd's own compare refuses the old leader's in-sync change, and its next renewal
    // learns the lease is gone.
    link.restore();
    expect(await onceReachable(() => leader.setInSync(['a'], 0))).toEqual({ ok: false, reason: 'not-leader' });
    await waitFor('the old leader to learn it lost', () => leader.leadership() === undefined);
    expect(lost).toHaveLength(1);
    expect(leader.leaseValidUntilMs()).toBe(-Infinity);
    expect(await observer.readInSync()).toEqual({ members: [], revision: 0 });
    // No renewal landed after the cut: the last one reported is the validity that ran out.
    expect(renewals.at(-1)).toBe(validUntilMs);
  });
});

describe('the in-sync set', () => {
  it('changes only by compare-and-swap on the revision read, only by the leader, and decides who may lead', async () => {
    const etcd = await startEtcd();
    const a = await arbiterOn(etcd.endpoint);
    const b = await arbiterOn(etcd.endpoint);
    expect(await a.campaign({ nodeId: 'a', epochAbove: 0, bootstrap: true })).toMatchObject({ outcome: 'leader', epoch: 1 });
    expect(await a.readInSync()).toEqual({ members: [], revision: 0 });

    const both = await a.setInSync(['b', 'a'], 0);
    expect(both.ok).toBe(true);
    const bothRevision = both.ok ? both.revision : 0;
    expect(await b.readInSync()).toEqual({ members: ['a', 'b'], revision: bothRevision });
    expect(await a.setInSync(['a'], 0)).toEqual({ ok: false, reason: 'stale-revision' });
    expect(await b.setInSync(['b'], bothRevision)).toEqual({ ok: false, reason: 'not-leader' });

    // The backup is lost: the primary removes it on the revision it read, then goes on alone.
    const alone = await a.setInSync(['a'], bothRevision);
    expect(alone.ok).toBe(true);
    expect(await a.setInSync(['a', 'b'], bothRevision)).toEqual({ ok: false, reason: 'stale-revision' });
    const read = await b.readInSync();
    expect(read.members).toEqual(['a']);
    expect(read.revision).toBeGreaterThan(bothRevision);

    // The primary goes away; a node outside the set may not lead, even with bootstrap.
    await a.resign();
    expect(await b.campaign({ nodeId: 'b', epochAbove: 0, bootstrap: true })).toEqual({ outcome: 'not-in-sync', inSync: read });
    expect(await a.campaign({ nodeId: 'a', epochAbove: 0, bootstrap: false })).toMatchObject({ outcome: 'leader', epoch: 2 });
  });

  it('an absent set lets a node lead only with bootstrap', async () => {
    const etcd = await startEtcd();
    const a = await arbiterOn(etcd.endpoint);
    expect(await a.campaign({ nodeId: 'a', epochAbove: 0, bootstrap: false })).toEqual({ outcome: 'not-in-sync', inSync: { members: [], revision: 0 } });
    expect(a.leadership()).toBeUndefined();
  });
});

describe('etcd stopped and restarted', () => {
  it('reports unreachable, rejects with a retryable TIMEOUT, never throws out of the process, recovers', async () => {
    const unhandled: unknown[] = [];
    const record = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', record);
    try {
      const etcd = await startEtcd();
      const a = await arbiterOn(etcd.endpoint);
      const b = await arbiterOn(etcd.endpoint);
      expect(await a.campaign({ nodeId: 'a', epochAbove: 0, bootstrap: true })).toMatchObject({ outcome: 'leader', epoch: 1 });

      await etcd.stop();
      const down = await a.status();
      expect(down.reachable).toBe(false);
      expect(down.error).toMatch(/etcd/);
      expect(down.self.leading).toBe(true);
      const failure = await a.readInSync().then(() => undefined, (error: unknown) => error);
      expect(failure).toBeInstanceOf(TxlogError);
      expect((failure as TxlogError).code).toBe('TIMEOUT');
      expect((failure as TxlogError).retryable).toBe(true);
      await expect(b.campaign({ nodeId: 'b', epochAbove: 0, bootstrap: true })).rejects.toMatchObject({ code: 'TIMEOUT' });
      // With etcd gone no renewal lands, so the validity runs out: a primary stops acknowledging.
      await waitFor('the validity to run out', () => performance.now() > a.leaseValidUntilMs());

      await etcd.start();
      // etcd extends every lease when it elects itself again, so the leader keeps its lease.
      await waitFor('a renewal after the restart', () => a.leaseValidUntilMs() > performance.now());
      const up = await a.status();
      expect(up).toMatchObject({ reachable: true, leader: { nodeId: 'a', epoch: 1 }, epoch: 1, self: { leading: true, epoch: 1 } });
      expect(await onceReachable(() => b.campaign({ nodeId: 'b', epochAbove: 0, bootstrap: true }))).toEqual({ outcome: 'held', holder: { nodeId: 'a', epoch: 1 } });
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', record);
    }
  });

  it('an etcd that is not there at all: status says so, campaign rejects with TIMEOUT', async () => {
    const link = await proxy(undefined);
    const arbiter = await arbiterOn(link.address);
    const status = await arbiter.status();
    expect(status).toMatchObject({ reachable: false, self: { leading: false, leaseValidForMs: 0 } });
    await expect(arbiter.campaign({ nodeId: 'a', epochAbove: 0, bootstrap: true })).rejects.toMatchObject({ code: 'TIMEOUT', retryable: true });
  });
});

describe('configuration', () => {
  it('parses etcd:// URLs', () => {
    expect(parseArbiterUrl('etcd://127.0.0.1:2379/txlog/bank')).toEqual({ endpoints: ['127.0.0.1:2379'], prefix: '/txlog/bank' });
    expect(parseArbiterUrl('etcd://etcd-1.example:2379,10.0.0.2:2380,[::1]:2379/a_b.c-d')).toEqual({
      endpoints: ['etcd-1.example:2379', '10.0.0.2:2380', '[::1]:2379'],
      prefix: '/a_b.c-d',
    });
  });

  it('a malformed URL is a USAGE error', () => {
    const tooMany = Array.from({ length: 17 }, (_, index) => `h${index}:1`).join(',');
    const bad = [
      '', 'http://h:1/p', 'etcd:/h:1/p', 'etcd://', 'etcd://h:1', 'etcd://h:1/', 'etcd://h/p', 'etcd://:1/p',
      'etcd://h:0/p', 'etcd://h:65536/p', 'etcd://h:123456/p', 'etcd://h:1,/p', 'etcd://,h:1/p', 'etcd://h:1/p/',
      'etcd://h:1//p', 'etcd://h:1/p/../q', 'etcd://h:1/..', 'etcd://h:1/p?x=1', 'etcd://h:1/p#f', 'etcd://u@h:1/p',
      'etcd://h:1/p q', 'etcd://[::1/p', 'etcd://h:x/p', 'etcd://-h:1/p', `etcd://${tooMany}/p`, `etcd://h:1/${'p'.repeat(256)}`,
    ];
    for (const url of bad) {
      let caught: unknown;
      try {
        parseArbiterUrl(url);
      } catch (error) {
        caught = error;
      }
      expect(caught, url).toBeInstanceOf(TxlogError);
      expect((caught as TxlogError).code, url).toBe('USAGE');
    }
  });

  it('timing relations are checked', () => {
    const base = { endpoints: ['127.0.0.1:2379'], prefix: '/p' };
    expect(resolveArbiterOptions(base)).toMatchObject({ leaseTtlMs: 10_000, renewIntervalMs: 2000, marginMs: 2000, requestTimeoutMs: 2000 });
    const broken: Array<Partial<ArbiterOptions>> = [
      { leaseTtlMs: 2500 },
      { leaseTtlMs: 1000 },
      { marginMs: 10_000 },
      { renewIntervalMs: 6000 },
      { leaseTtlMs: 4000, marginMs: 1000, renewIntervalMs: 2000, requestTimeoutMs: 1000 },
      { requestTimeoutMs: 0 },
      { renewIntervalMs: 1.5 },
      { endpoints: [] },
      { endpoints: ['nowhere'] },
      { prefix: 'no-slash' },
    ];
    for (const options of broken) {
      expect(() => resolveArbiterOptions({ ...base, ...options }), JSON.stringify(options)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    }
  });

  it('importing the package entry loads no etcd client', () => {
    const entry = fileURLToPath(new URL('../../index.ts', import.meta.url));
    // `after` proves the check can see etcd3 when it is loaded.
    expect(packagesLoaded('etcd3|@grpc', `await import(${JSON.stringify(entry)});`, "await import('etcd3');")).toEqual({ before: false, after: true });
  });
});
