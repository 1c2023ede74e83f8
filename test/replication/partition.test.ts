/**
 * Proves what the default policy promises under a network partition between two live nodes:
 * the only replication link (through a test-side TCP proxy) is cut while a client of the
 * primary keeps writing.
 * - The primary, cut off from its backup, acknowledges nothing written after the cut: its
 *   writes wait, then fail with REPLICA_UNAVAILABLE (outcome unknown).
 * - A client that reaches the backup makes it promote (it was in sync and its primary is
 *   gone from its point of view) and is served alone, at a higher epoch.
 * - When the link heals, the old primary learns the higher epoch, steps down, cuts the tail it
 *   never released and rejoins as backup: both logs end identical, record for record.
 * - Every write acknowledged to any client is on the new primary exactly once; the writes whose
 *   outcome was unknown, resent with their ids, are applied at most once.
 *
 * Needs `npm run build`.
 */
import { describe, expect, it } from 'vitest';
import { TxlogError } from '../../wal/errors.js';
import { useTcpProxies } from '../helpers/tcp-proxy.js';
import {
  bankServicePath,
  connectClient,
  depositData,
  depositFor,
  readAllEvents,
  expectIdenticalLogs,
  sleep,
  startPair,
  usePairFixture,
  statusOf,
  waitFor,
} from './pair.js';

const { nodes, pairDirs } = usePairFixture('txlog-partition-');
const startProxy = useTcpProxies();

const accounts = 4;

describe('a partition between two live nodes', () => {
  it('never lets both sides acknowledge, and heals into one history', async () => {
    const dirs = pairDirs();
    const link = await startProxy(undefined);
    const pair = await startPair(nodes, dirs, {
      args: ['--service', bankServicePath, '--heartbeat-timeout-ms', '500', '--replica-timeout-ms', '500'],
      peerOf: (primary) => {
        link.setTarget(primary.addresses[0]);
        return link.address;
      },
    });
    const [addressA, addressB] = pair.servers as [string, string];
    const epochBefore = (await statusOf(addressA)).epoch;

    // A client that only knows the primary writes one request at a time.
    const writer = await connectClient([addressA], { clientId: 'writer', deadlineMs: 1500 });
    const acknowledged: number[] = [];
    const unknown: number[] = [];
    /** Writes sent after the cut and acknowledged before the heal: must stay empty. */
    const acknowledgedWhileCut: number[] = [];
    let cutAfterRequestId: number | undefined;
    let healed = false;
    let stop = false;
    let requestId = 0;
    const writing = (async () => {
      while (!stop) {
        requestId += 1;
        const id = requestId;
        try {
          await writer.execute('deposit', depositFor(0, id, accounts));
          acknowledged.push(id);
          if (cutAfterRequestId !== undefined && id > cutAfterRequestId && !healed) acknowledgedWhileCut.push(id);
        } catch (error) {
          if (!(error instanceof TxlogError) || !['TIMEOUT', 'REPLICA_UNAVAILABLE'].includes(error.code)) throw error;
          unknown.push(id);
          await sleep(50);
        }
      }
    })();
    await waitFor('writes before the cut', () => acknowledged.length >= 20, 20_000, nodes);

    // The request in flight at this moment may have reached the backup already; later ones not.
    cutAfterRequestId = requestId;
    link.cut();
    await waitFor(
      'the primary to notice its backup is gone',
      async () => (await statusOf(addressA)).replicaUnavailable,
      10_000,
      nodes,
    );
    // Longer than the writer's deadline: its write in flight at the cut ends as TIMEOUT.
    await sleep(1600);

    // The backup's side of the partition: a client reaches it and it takes over.
    const promoter = await connectClient([addressB], { clientId: 'promoter', deadlineMs: 10_000 });
    const promoted = (await promoter.execute('deposit', depositFor(1, 1, accounts))) as { variant: string };
    expect(promoted.variant).toBe('same');
    const statusB = await statusOf(addressB);
    expect(statusB).toMatchObject({ role: 'primary', alone: true });
    expect(statusB.epoch).toBeGreaterThan(epochBefore);
    const statusA = await statusOf(addressA);
    expect(statusA.role).toBe('primary');
    expect(statusA.replicaUnavailable).toBe(true);

    // Heal: the old primary steps down and rejoins; both see one epoch and one history.
    expect(acknowledgedWhileCut, 'the cut-off primary acknowledged nothing').toEqual([]);
    healed = true;
    link.restore();
    await waitFor(
      'the old primary to rejoin as backup and catch up',
      async () => {
        const [a, b] = [await statusOf(addressA), await statusOf(addressB)];
        return a.role === 'backup' && a.epoch === b.epoch && b.role === 'primary' && b.inSync && !b.alone;
      },
      30_000,
      nodes,
    );
    stop = true;
    await writing;
    await writer.close();

    expect(unknown.length, 'writes failed while the primary was cut off').toBeGreaterThan(0);

    // Resend the writes whose outcome stayed unknown, with their ids, to the new primary.
    const resender = await connectClient([addressB], { clientId: 'writer', firstRequestId: unknown[0] ?? requestId + 1 });
    for (const id of unknown) await resender.execute('deposit', depositFor(0, id, accounts));
    const events = await readAllEvents(resender);
    await Promise.all([resender.close(), promoter.close()]);

    const writerIds = events
      .map((event) => depositData(event))
      .filter((data) => data.clientId === 'writer')
      .map((data) => data.requestId);
    expect(new Set(writerIds).size, 'no write applied twice').toBe(writerIds.length);
    for (const id of acknowledged) expect(writerIds, `acknowledged write ${id}`).toContain(id);
    for (const id of unknown) expect(writerIds, `resent write ${id}`).toContain(id);
    expect(events.some((event) => depositData(event).clientId === 'promoter')).toBe(true);
    expect(pair.primary.log()).toMatch(/stepping down/);

    await pair.primary.stop();
    await pair.backup.stop();
    await expectIdenticalLogs(dirs.primary, dirs.backup);
    console.log(
      `[partition] ${acknowledged.length} writes acknowledged, ` +
        `${unknown.length} with unknown outcome resent, epoch ${epochBefore} -> ${statusB.epoch}`,
    );
  });
});
