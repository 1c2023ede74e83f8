/**
 * Proves the backup's determinism check: the backup runs a service whose handler replies (and
 * writes) differently (TXLOG_TEST_VARIANT=other). After some commits its status counts a
 * determinism violation for each deposit and names the command, its log says so loudly, and
 * the primary's outcome is kept: after a failover to that backup, the stored events and the
 * replies to resent requests are the primary's, not what the backup's handler would produce.
 *
 * Needs `npm run build`.
 */
import { describe, expect, it } from 'vitest';
import {
  bankServicePath,
  connectClient,
  depositData,
  depositFor,
  readAllEvents,
  startPair,
  usePairFixture,
  statusOf,
  waitFor,
} from './pair.js';

const { nodes, pairDirs } = usePairFixture('txlog-determinism-');

const deposits = 20;

describe('determinism check on the backup', () => {
  it('counts violations and keeps the primary outcome', async () => {
    const pair = await startPair(nodes, pairDirs(), {
      args: ['--service', bankServicePath, '--heartbeat-timeout-ms', '400'],
      backupEnv: { TXLOG_TEST_VARIANT: 'other' },
    });
    const [addressA, addressB] = pair.servers as [string, string];
    const client = await connectClient([addressA, addressB], { clientId: 'checked', deadlineMs: 15_000 });
    const replies: Array<{ variant: string; chargeId: string }> = [];
    for (let requestId = 1; requestId <= deposits; requestId++) {
      replies.push((await client.execute('deposit', depositFor(0, requestId, 3))) as { variant: string; chargeId: string });
    }
    expect(replies.every((reply) => reply.variant === 'same')).toBe(true);

    await waitFor('the backup to check every deposit', async () => (await statusOf(addressB)).checkedCommits >= deposits, 20_000, nodes);
    const backup = await statusOf(addressB);
    expect(backup.role).toBe('backup');
    expect(backup.determinismViolations).toBe(deposits);
    expect(backup.lastViolation).toMatchObject({ command: 'deposit' });
    expect(pair.backup.log()).toMatch(/DETERMINISM VIOLATION .*keeping the primary's outcome/);
    expect((await statusOf(addressA)).determinismViolations).toBe(0);

    // Fail over to the backup: what it serves is what the primary decided.
    await pair.primary.kill();
    const events = await readAllEvents(client);
    expect(events).toHaveLength(deposits);
    for (const event of events) expect(depositData(event).variant).toBe('same');
    const resender = await connectClient([addressB], { clientId: 'checked', firstRequestId: 5 });
    expect(await resender.execute('deposit', depositFor(0, 5, 3))).toEqual(replies[4]);
    await Promise.all([client.close(), resender.close()]);
    expect((await statusOf(addressB)).role).toBe('primary');
  });
});
