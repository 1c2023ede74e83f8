/**
 * Proves, with two nodes in this process (real `startNode`, real loopback sockets, see
 * `test/helpers/in-process-pair.ts`), the replication path end to end without `dist/`:
 * - a pair started fresh elects the configured primary; the backup follows it, joins, and gets
 *   every commit, frame for frame, before the client hears "done";
 * - a backup in sync whose primary closed takes over when a client asks, with a higher epoch,
 *   and serves everything that was acknowledged before.
 */
import { describe, expect, it } from 'vitest';
import { useInProcessNodes, waitForInProcess } from '../helpers/in-process-pair.js';

const nodes = useInProcessNodes('txlog-in-process-pair-');

describe('an in-process pair', () => {
  it('replicates every acknowledged commit to the backup', async () => {
    const { primary, backup, servers } = await nodes.startPair();
    expect(backup.status()).toMatchObject({ role: 'backup', inSync: true });
    const client = await nodes.connect(servers, { clientId: 'c' });
    for (let index = 0; index < 20; index++) await client.append('s', [{ type: 'Added', data: index }]);

    const primaryStatus = primary.status();
    // Released to the client only once acknowledged: the backup holds every commit it was told of.
    expect(primaryStatus.replicaAckedLsn).toBe(primaryStatus.lastLsn);
    expect(backup.status().lastLsn).toBeGreaterThanOrEqual(primaryStatus.appliedLsn);
    await waitForInProcess('the backup to apply what it received', () => backup.status().appliedLsn === primaryStatus.lastLsn, 10_000);
    const onBackup = await backup.store.readStream('s');
    expect(onBackup.events.map((event) => event.data)).toEqual([...Array(20).keys()]);
  });

  it('promotes an in-sync backup when its primary is gone and a client asks', async () => {
    const { primary, backup, servers } = await nodes.startPair();
    const client = await nodes.connect(servers, { clientId: 'c' });
    await client.append('s', [{ type: 'Before', data: 1 }]);
    const epochBefore = primary.status().epoch;
    await primary.close();

    await client.append('s', [{ type: 'After', data: 2 }]);
    expect(backup.status()).toMatchObject({ role: 'primary', alone: true });
    expect(backup.status().epoch).toBeGreaterThan(epochBefore);
    expect((await client.readStream('s')).events.map((event) => event.data)).toEqual([1, 2]);
  });
});
