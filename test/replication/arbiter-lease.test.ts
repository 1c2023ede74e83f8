/**
 * Proves that a primary with an etcd arbiter acknowledges only while its lease is certainly
 * valid (real `txlog serve` processes, a real etcd, load with journaled external calls; each
 * run checks every acknowledged deposit is on the final primary exactly once):
 * - frozen with SIGSTOP past its lease: the backup leads once the lease has expired; resumed,
 *   the old primary releases nothing more (its applied LSN stands still while it still thinks
 *   it is primary), steps down and rejoins;
 * - cut from etcd (a loopback proxy in front of etcd, cut): it holds everything (applied LSN
 *   stands still, lease validity 0) before the backup can lead, the backup leads once the lease
 *   has expired, and after the heal there is one history;
 * - etcd stopped past the lease TTL and restarted: nothing is acknowledged once the primary's
 *   validity has run out, both nodes say etcd is unreachable, and the pair resumes by itself;
 * - `txlog serve` refuses a malformed --arbiter URL, or --arbiter without --node-id (exit 2).
 *
 * Needs `npm run build` and /usr/bin/etcd. Every wait is a poll with a generous limit; the
 * only comparisons with the clock have margins of seconds.
 */
import { describe, expect, it } from 'vitest';
import { cliMainPath } from '../../dist/replication/spawn-node.js';
import type { NodeStatus } from '../../replication/node.js';
import { useEtcd } from '../helpers/etcd.js';
import { useTcpProxies } from '../helpers/tcp-proxy.js';
import { exited, useChildProcesses } from '../helpers/temp.js';
import {
  arbiterPair,
  arbiterTiming,
  expectNothingLostOrTwice,
  settleWaitMs,
  startLoad,
  statuses,
  waitForProgress,
  waitPairedInSet,
  type ArbiterPair,
} from './arbiter-pair.js';
import { sleep, statusOf, useExternalSystem, usePairFixture, waitFor, type TestNode } from './pair.js';

const { nodes, pairDirs } = usePairFixture('txlog-arbiter-lease-');
const startEtcd = useEtcd();
const startProxy = useTcpProxies();
const startExternal = useExternalSystem();
const spawnChild = useChildProcesses();

interface Running {
  pair: ArbiterPair;
  started: Record<'A' | 'B', TestNode>;
  servers: string[];
  primaryName: 'A' | 'B';
  backupName: 'A' | 'B';
  external: Map<string, number>;
}

/** A pair paired in the set [A, B]; `endpoints` gives each node its own way to etcd. */
async function runningPair(etcdEndpoint: string, endpoints?: { A: string; B: string }): Promise<Running> {
  const external = await startExternal();
  const pair = await arbiterPair(nodes, pairDirs(), etcdEndpoint, { TXLOG_TEST_EXTERNAL: external.address });
  const started = { A: await pair.start('A', endpoints?.A), B: await pair.start('B', endpoints?.B) };
  const servers = [pair.addresses.A, pair.addresses.B];
  await waitFor('a primary', async () => (await statuses(servers)).some((status) => status.role === 'primary'), settleWaitMs, nodes);
  const primaryName = (await statuses(servers)).find((status) => status.role === 'primary')!.nodeId as 'A' | 'B';
  await waitPairedInSet(pair.addresses[primaryName], ['A', 'B'], nodes);
  return { pair, started, servers, primaryName, backupName: primaryName === 'A' ? 'B' : 'A', external: external.requests };
}

/**
 * Samples the old primary's status until the other node leads; returns when it did. While the
 * old primary still says primary, once its lease validity is 0 its applied LSN must stand still.
 */
async function watchTakeover(running: Running): Promise<{ heldAtMs: number | undefined; takeoverAtMs: number }> {
  const oldAddress = running.pair.addresses[running.primaryName];
  const newAddress = running.pair.addresses[running.backupName];
  let held: { atMs: number; appliedLsn: number } | undefined;
  const deadline = Date.now() + settleWaitMs;
  while (Date.now() < deadline) {
    const old: NodeStatus | undefined = await statusOf(oldAddress, 1000).catch(() => undefined);
    if (old?.role === 'primary' && old.arbiter?.leaseValidForMs === 0) {
      held ??= { atMs: Date.now(), appliedLsn: old.appliedLsn };
      expect(old.appliedLsn, 'applied (released) after its lease validity ran out').toBe(held.appliedLsn);
    }
    const next = await statusOf(newAddress, 1000).catch(() => undefined);
    if (next?.role === 'primary') return { heldAtMs: held?.atMs, takeoverAtMs: Date.now() };
    await sleep(100);
  }
  throw new Error(`node ${running.backupName} never led\n${nodes.logs()}`);
}

describe('the lease of a primary with an etcd arbiter', () => {
  it('a primary frozen past its lease acknowledges nothing more: the backup leads, the old primary steps down and rejoins', async () => {
    const etcd = await startEtcd();
    const running = await runningPair(etcd.endpoint);
    const load = startLoad(running.servers, 3);
    await waitForProgress(load, 30, nodes);

    const frozen = running.started[running.primaryName];
    frozen.pause();
    const pausedAt = Date.now();
    const newAddress = running.pair.addresses[running.backupName];
    await waitFor('the backup to lead', async () => (await statusOf(newAddress, 1000)).role === 'primary', settleWaitMs, nodes);
    // It could not lead before the frozen primary's lease expired in etcd.
    expect(Date.now() - pausedAt).toBeGreaterThan(arbiterTiming.leaseTtlMs - arbiterTiming.renewIntervalMs - arbiterTiming.requestTimeoutMs);
    await sleep(1000);
    frozen.resume();
    await watchTakeover(running);
    await waitPairedInSet(newAddress, ['A', 'B'], nodes);
    expect((await statusOf(running.pair.addresses[running.primaryName])).role).toBe('backup');
    expect(frozen.log()).toMatch(/stepping down/);

    await waitForProgress(load, 30, nodes);
    await load.stop();
    await expectNothingLostOrTwice(running.servers, load.acknowledged, running.external);
  });

  it('a primary cut from etcd stops acknowledging before its lease can expire; the backup then leads; one history after the heal', async () => {
    const etcd = await startEtcd();
    const proxies = { A: await startProxy(etcd.endpoint), B: await startProxy(etcd.endpoint) };
    const running = await runningPair(etcd.endpoint, { A: proxies.A.address, B: proxies.B.address });
    const load = startLoad(running.servers, 3);
    await waitForProgress(load, 30, nodes);

    proxies[running.primaryName].cut();
    const cutAt = Date.now();
    const { heldAtMs, takeoverAtMs } = await watchTakeover(running);
    expect(heldAtMs, 'the old primary held before the backup led').toBeDefined();
    expect(heldAtMs!).toBeLessThan(takeoverAtMs);
    console.log(`[arbiter-lease] cut at 0: held at ${heldAtMs! - cutAt} ms, backup led by ${takeoverAtMs - cutAt} ms`);

    proxies[running.primaryName].restore();
    await waitPairedInSet(running.pair.addresses[running.backupName], ['A', 'B'], nodes);
    await waitForProgress(load, 30, nodes);
    await load.stop();
    await expectNothingLostOrTwice(running.servers, load.acknowledged, running.external);
  });

  it('etcd stopped past the lease TTL: nothing is acknowledged once the validity ran out; restarted, the pair resumes by itself', async () => {
    const etcd = await startEtcd();
    const running = await runningPair(etcd.endpoint);
    const primaryAddress = running.pair.addresses[running.primaryName];
    const epochBefore = (await statusOf(primaryAddress)).epoch;
    const load = startLoad(running.servers, 3);
    await waitForProgress(load, 30, nodes);

    const stoppedAt = Date.now();
    await etcd.stop();
    await sleep(arbiterTiming.leaseTtlMs + 2000);
    for (const status of await statuses(running.servers)) {
      expect(status.arbiter?.reachable, `${status.nodeId} sees etcd`).toBe(false);
      if (status.role === 'primary') expect(status.arbiter?.leaseValidForMs).toBe(0);
    }
    const restartedAt = Date.now();
    // The last renewal was sent before the stop: its validity ends within leaseTtlMs - marginMs.
    const validityEndsBy = stoppedAt + arbiterTiming.leaseTtlMs - arbiterTiming.marginMs + 1000;
    const late = [...load.acknowledged].filter(([, ack]) => ack.atMs > validityEndsBy && ack.atMs < restartedAt);
    expect(late, 'acknowledged while etcd was down and the validity had run out').toEqual([]);

    await etcd.start();
    await waitForProgress(load, 30, nodes);
    const after = await statuses(running.servers);
    expect(after.filter((status) => status.role === 'primary')).toHaveLength(1);
    const epochAfter = after.find((status) => status.role === 'primary')!.epoch;
    console.log(`[arbiter-lease] etcd down ${restartedAt - stoppedAt} ms; epoch ${epochBefore} before, ${epochAfter} after`);
    await load.stop();
    await expectNothingLostOrTwice(running.servers, load.acknowledged, running.external);
  });
});

describe('txlog serve --arbiter', () => {
  it.each([
    [['--arbiter', 'http://127.0.0.1:2379/x', '--node-id', 'a'], /not an etcd:\/\/ URL/],
    [['--arbiter', 'etcd://127.0.0.1:2379', '--node-id', 'a'], /no \/PREFIX/],
    [['--arbiter', 'etcd://127.0.0.1:2379/x'], /needs --node-id/],
    [['--arbiter', 'etcd://127.0.0.1:2379/x', '--node-id', 'a', '--arbiter-margin-ms', '60000'], /marginMs/],
    [['--arbiter-lease-ttl-ms', '5000'], /need --arbiter/],
  ])('refuses %j with a usage error (exit 2)', async (args, message) => {
    const child = spawnChild(process.execPath, [cliMainPath, 'serve', '--dir', '/nonexistent/never-made', '--listen', '127.0.0.1:0', ...args]);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const { code } = await exited(child);
    expect(code, stderr).toBe(2);
    expect(stderr).toMatch(/^txlog: USAGE: /);
    expect(stderr).toMatch(message);
  });
});
