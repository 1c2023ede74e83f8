/**
 * Proves replication over several links: both nodes listen on two addresses and the backup's
 * `--peer` names both of the primary's, each through a test-side TCP proxy that can cut its
 * link (destroy its sockets, refuse new ones). While a client writes, the links are cut one at
 * a time, alternately, so the active link is cut several times:
 * - writes keep being acknowledged during every cut (over the other link);
 * - `status().peerLinks` drops to 1 on both nodes during a cut and returns to 2 after it;
 * - the primary moved replication to the other link and resent what was unacknowledged (its
 *   log says so), and the backup dropped the duplicates: at the end both WALs are identical,
 *   record for record, and every acknowledged write is applied exactly once.
 *
 * Needs `npm run build`.
 */
import { describe, expect, it } from 'vitest';
import { useTcpProxies, type TcpProxy } from '../helpers/tcp-proxy.js';
import {
  bankServicePath,
  connectClient,
  depositData,
  depositFor,
  readAllEvents,
  expectIdenticalLogs,
  startPair,
  usePairFixture,
  statusOf,
  waitFor,
} from './pair.js';

const { nodes, pairDirs } = usePairFixture('txlog-links-');
const startProxy = useTcpProxies();

const cuts = 4;

describe('several replication links', () => {
  it('keeps acknowledging writes while one link at a time is cut, and ends with identical logs', async () => {
    const dirs = pairDirs();
    const proxies: TcpProxy[] = [await startProxy(undefined), await startProxy(undefined)];
    const pair = await startPair(nodes, dirs, {
      listen: '127.0.0.1:0,127.0.0.1:0',
      args: ['--service', bankServicePath, '--heartbeat-timeout-ms', '1000'],
      peerOf: (primary) => {
        expect(primary.addresses).toHaveLength(2);
        proxies[0]!.setTarget(primary.addresses[0]);
        proxies[1]!.setTarget(primary.addresses[1]);
        return proxies.map((proxy) => proxy.address).join(',');
      },
    });
    const [addressA, addressB] = pair.servers as [string, string];
    const bothLinks = async (): Promise<boolean> =>
      (await statusOf(addressA)).peerLinks === 2 && (await statusOf(addressB)).peerLinks === 2;
    await waitFor('two peer links', bothLinks, 20_000, nodes);

    const client = await connectClient([addressA, addressB], { clientId: 'writer', deadlineMs: 20_000 });
    const acknowledged: number[] = [];
    let stop = false;
    let nextRequestId = 1;
    const worker = async (): Promise<void> => {
      while (!stop) {
        const requestId = nextRequestId++;
        await client.execute('deposit', depositFor(0, requestId, 4));
        acknowledged.push(requestId);
      }
    };
    const load = Promise.all(Array.from({ length: 6 }, () => worker()));

    for (let cut = 0; cut < cuts; cut++) {
      const proxy = proxies[cut % 2]!;
      proxy.cut();
      const before = acknowledged.length;
      await waitFor(`writes acknowledged during cut ${cut}`, () => acknowledged.length >= before + 30, 20_000, nodes);
      const [statusA, statusB] = [await statusOf(addressA), await statusOf(addressB)];
      expect(statusA.peerLinks, `primary links during cut ${cut}`).toBe(1);
      expect(statusB.peerLinks, `backup links during cut ${cut}`).toBe(1);
      expect(statusA).toMatchObject({ role: 'primary', inSync: true, alone: false });
      proxy.restore();
      await waitFor(`both links back after cut ${cut}`, bothLinks, 20_000, nodes);
    }
    stop = true;
    await load;
    const moves = pair.primary.log().match(/replication moves to another link/g) ?? [];
    expect(moves.length, 'the active link was cut and replication moved').toBeGreaterThanOrEqual(cuts - 1);

    const events = await readAllEvents(client);
    await client.close();
    const ids = events.map((event) => depositData(event).requestId).toSorted((a, b) => a - b);
    expect(ids).toEqual(acknowledged.toSorted((a, b) => a - b));

    await pair.primary.stop();
    await pair.backup.stop();
    await expectIdenticalLogs(dirs.primary, dirs.backup);
    console.log(`[links] ${acknowledged.length} writes over ${cuts} cuts, ${moves.length} moves of the active link`);
  });
});
