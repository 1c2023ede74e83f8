/**
 * Proves fencing of a stale primary: the primary is SIGSTOPped while clients write (one client
 * knows both nodes, one only the primary, one only the backup); after the heartbeat timeout
 * (`--heartbeat-timeout-ms 300`) a client of the backup makes it promote; the old primary is
 * SIGCONTed while the clients keep writing. Then:
 * - every write acknowledged to any client, whichever node answered, is on the new primary
 *   exactly once and with the charge its reply carried (the external system issues a fresh
 *   charge id per call, so a write acknowledged by the stale primary and then lost, or run
 *   again, would show): the old primary acknowledged nothing after the takeover;
 * - the old primary's status shows it stepped down (not primary, the new epoch), and it rejoins
 *   as the backup of the new primary, which reports it in sync.
 *
 * Needs `npm run build`. Prints its seed; `TXLOG_SEED` replays the timings.
 */
import { describe, expect, it } from 'vitest';
import { TxlogError } from '../../wal/errors.js';
import type { Client } from '../../replication/client.js';
import { seededRandom, testSeed } from '../helpers/random.js';
import {
  bankServicePath,
  connectClient,
  depositData,
  depositFor,
  readAllEvents,
  sleep,
  startPair,
  usePairFixture,
  statusOf,
  useExternalSystem,
  waitForPrimaryInSync,
} from './pair.js';

const { nodes, pairDirs } = usePairFixture('txlog-stale-primary-');
const startExternal = useExternalSystem();

describe('a stale primary', () => {
  it('acknowledges nothing after a takeover, steps down and rejoins as backup', async () => {
    const random = seededRandom(testSeed('stale-primary'));
    const external = await startExternal();
    const dirs = pairDirs();
    const pair = await startPair(nodes, dirs, {
      args: ['--service', bankServicePath, '--heartbeat-timeout-ms', '300'],
      env: { TXLOG_TEST_EXTERNAL: external.address },
    });
    const [addressA, addressB] = pair.servers as [string, string];
    const epochBefore = (await statusOf(addressA)).epoch;

    const acknowledged = new Map<string, string>();
    let stop = false;
    const writer = async (client: Client, clientIndex: number, depth: number): Promise<void> => {
      let nextRequestId = 1;
      const worker = async (): Promise<void> => {
        while (!stop) {
          const requestId = nextRequestId++;
          let reply: { chargeId: string } | undefined;
          for (;;) {
            try {
              reply = (await client.execute('deposit', depositFor(clientIndex, requestId, 4))) as { chargeId: string };
              break;
            } catch (error) {
              if (!(error instanceof TxlogError) || error.code !== 'TIMEOUT') throw error;
              // Outcome unknown: the test resends the same id itself (a client gives each call one deadline).
              const again = await connectClient(client.clientId === 'both' ? [addressA, addressB] : [addressB], {
                clientId: client.clientId,
                firstRequestId: requestId,
              });
              try {
                reply = (await again.execute('deposit', depositFor(clientIndex, requestId, 4))) as { chargeId: string };
                break;
              } finally {
                await again.close();
              }
            }
          }
          acknowledged.set(`${client.clientId}/${requestId}`, reply.chargeId);
        }
      };
      await Promise.all(Array.from({ length: depth }, () => worker()));
    };
    const clients = await Promise.all([
      connectClient([addressA, addressB], { clientId: 'both', deadlineMs: 15_000 }),
      connectClient([addressA], { clientId: 'only-primary', deadlineMs: 15_000 }),
      connectClient([addressB], { clientId: 'only-backup', deadlineMs: 15_000 }),
    ]);
    const load = Promise.all(clients.map((client, index) => writer(client, index, 3)));
    await sleep(random.integer(200, 800));

    pair.primary.pause();
    const stoppedAt = Date.now();
    await sleep(450); // Past the 300 ms heartbeat timeout.
    const promoter = await connectClient([addressB], { clientId: 'promoter', deadlineMs: 15_000 });
    await promoter.execute('deposit', depositFor(9, 1, 4));
    acknowledged.set('promoter/1', ''); // Checked for presence below; its charge is whatever B made.
    const takeover = await promoter.status();
    expect(takeover.role).toBe('primary');
    expect(takeover.epoch).toBeGreaterThan(epochBefore);
    console.log(`[stale-primary] B promoted to epoch ${takeover.epoch} ${Date.now() - stoppedAt} ms after SIGSTOP`);
    await sleep(random.integer(0, 400));
    pair.primary.resume();

    await sleep(random.integer(800, 1500));
    stop = true;
    await load;

    // The old primary stepped down to the new epoch and rejoined as backup.
    await waitForPrimaryInSync(addressB, 30_000, nodes);
    const oldPrimary = await statusOf(addressA);
    expect(oldPrimary.role).toBe('backup');
    expect(oldPrimary.epoch).toBe(takeover.epoch);
    expect(pair.primary.log()).toMatch(/stepping down/);

    const events = await readAllEvents(promoter);
    await Promise.all([promoter, ...clients].map((client) => client.close()));
    const onNewPrimary = new Map<string, string>();
    for (const event of events) {
      const data = depositData(event);
      const key = `${data.clientId}/${data.requestId}`;
      expect(onNewPrimary.has(key), `${key} applied twice`).toBe(false);
      onNewPrimary.set(key, data.chargeId);
    }
    for (const [key, chargeId] of acknowledged) {
      expect(onNewPrimary.has(key), `acknowledged ${key} is missing on the new primary`).toBe(true);
      if (chargeId !== '') expect(onNewPrimary.get(key), `acknowledged ${key} carries another charge`).toBe(chargeId);
    }
    for (const [key, count] of external.requests) expect(count, key).toBeLessThanOrEqual(2);
    console.log(`[stale-primary] ${acknowledged.size} acknowledged writes, all on the new primary`);
  });
});
