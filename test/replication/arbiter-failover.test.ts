/**
 * Proves a pair with an etcd arbiter (real `txlog serve` processes, a real etcd), under load
 * with journaled external calls, each run checking that every acknowledged deposit is on the
 * final primary exactly once with the charge its reply carried:
 * - both nodes starting at once against an empty etcd: exactly one leads (it holds the leader
 *   key with its epoch), the other follows, and both end in the in-sync set;
 * - the backup dies: the primary removes it from the in-sync set and goes on alone; it returns,
 *   catches up and is put back;
 * - then the backup dies again (removed again), the primary acknowledges more alone and dies for
 *   good: the old backup restarted alone is not in the set and waits (status says why), past
 *   the dead primary's lease; the old primary restarted leads with no operator, and the old
 *   backup rejoins it.
 *
 * Needs `npm run build` and /usr/bin/etcd. Every wait is a poll with a generous limit.
 */
import { describe, expect, it } from 'vitest';
import { useEtcd } from '../helpers/etcd.js';
import {
  arbiterPair,
  arbiterTiming,
  expectNothingLostOrTwice,
  sameMembers,
  settleWaitMs,
  startLoad,
  statuses,
  waitForProgress,
  waitPairedInSet,
} from './arbiter-pair.js';
import { sleep, statusOf, useExternalSystem, usePairFixture, waitFor } from './pair.js';

const { nodes, pairDirs } = usePairFixture('txlog-arbiter-failover-');
const startEtcd = useEtcd();
const startExternal = useExternalSystem();

describe('a pair with an etcd arbiter', () => {
  it('two nodes starting at once against an empty etcd: exactly one leads', async () => {
    const etcd = await startEtcd();
    const pair = await arbiterPair(nodes, pairDirs(), etcd.endpoint);
    await Promise.all([pair.start('A'), pair.start('B')]);
    const servers = [pair.addresses.A, pair.addresses.B];
    await waitFor(
      'one primary paired with its backup, both in the in-sync set',
      async () => (await statuses(servers)).some((status) => status.role === 'primary' && status.inSync && sameMembers(status, ['A', 'B'])),
      settleWaitMs,
      nodes,
    );
    const load = startLoad(servers, 3);
    for (let sample = 0; sample < 10; sample++) {
      const seen = await statuses(servers);
      expect(seen.filter((status) => status.role === 'primary'), JSON.stringify(seen)).toHaveLength(1);
      await sleep(100);
    }
    await waitForProgress(load, 50, nodes);
    await load.stop();
    const [a, b] = await Promise.all(servers.map((address) => statusOf(address)));
    const primary = a!.role === 'primary' ? a! : b!;
    const backup = primary === a ? b! : a!;
    expect(backup.role).toBe('backup');
    expect(primary.arbiter?.leader).toMatchObject({ nodeId: primary.nodeId, epoch: primary.epoch });
    expect(primary.arbiter?.leading).toBe(true);
    expect(backup.arbiter?.leading).toBe(false);
    await expectNothingLostOrTwice(servers, load.acknowledged);
  });

  it('removes a dead backup from the set and goes on alone, puts it back, and after a double loss only the node in the set leads', async () => {
    const etcd = await startEtcd();
    const external = await startExternal();
    const pair = await arbiterPair(nodes, pairDirs(), etcd.endpoint, { TXLOG_TEST_EXTERNAL: external.address });
    const started = { A: await pair.start('A'), B: await pair.start('B') };
    const servers = [pair.addresses.A, pair.addresses.B];
    await waitFor('a primary paired', async () => (await statuses(servers)).some((status) => status.role === 'primary' && status.inSync), settleWaitMs, nodes);
    const first = (await statuses(servers)).find((status) => status.role === 'primary')!;
    const primaryName = first.nodeId as 'A' | 'B';
    const backupName = primaryName === 'A' ? 'B' : 'A';
    const primaryAddress = pair.addresses[primaryName];
    await waitPairedInSet(primaryAddress, ['A', 'B'], nodes);

    const load = startLoad(servers, 3);
    await waitForProgress(load, 30, nodes);

    // The backup dies: out of the set, the primary goes on alone.
    await started[backupName].kill();
    await waitFor(
      'the primary alone with the in-sync set [itself]',
      async () => {
        const status = await statusOf(primaryAddress);
        return status.role === 'primary' && status.alone && !status.replicaUnavailable && sameMembers(status, [primaryName]);
      },
      settleWaitMs,
      nodes,
    );
    await waitForProgress(load, 30, nodes);

    // It returns, catches up and is put back.
    started[backupName] = await pair.start(backupName);
    await waitPairedInSet(primaryAddress, ['A', 'B'], nodes);
    await waitForProgress(load, 30, nodes);

    // It dies again (removed again), the primary acknowledges more alone, then dies for good.
    await started[backupName].kill();
    await waitFor('the backup out of the set again', async () => sameMembers(await statusOf(primaryAddress), [primaryName]), settleWaitMs, nodes);
    await waitForProgress(load, 30, nodes);
    await started[primaryName].kill();
    const primaryDiedAt = Date.now();
    await load.stop();

    // The old backup restarted alone is not in the set: it waits, past the dead primary's lease.
    started[backupName] = await pair.start(backupName);
    const backupAddress = pair.addresses[backupName];
    while (Date.now() - primaryDiedAt < arbiterTiming.leaseTtlMs + 3000) {
      const status = await statusOf(backupAddress);
      expect(status.role).not.toBe('primary');
      await sleep(250);
    }
    const waiting = await statusOf(backupAddress);
    expect(waiting.role).toBe('waiting');
    expect(waiting.arbiter?.waiting).toContain(`not in the in-sync set [${primaryName}]`);

    // The old primary restarted leads with no operator, and the old backup rejoins it.
    started[primaryName] = await pair.start(primaryName);
    const rejoined = await waitPairedInSet(primaryAddress, ['A', 'B'], nodes);
    expect(rejoined.epoch).toBeGreaterThan(first.epoch);
    expect(rejoined.arbiter?.leader).toMatchObject({ nodeId: primaryName, epoch: rejoined.epoch });

    const after = startLoad(servers, 2, 'after');
    await waitForProgress(after, 20, nodes);
    await after.stop();
    await expectNothingLostOrTwice(servers, new Map([...load.acknowledged, ...after.acknowledged]), external.requests);
  });
});
