/**
 * Proves that one client pipelining requests across two failovers in a row gets each request
 * acknowledged exactly once: A primary, B backup; SIGKILL A (B takes over); restart A with
 * `--peer B` (it rejoins as backup; wait until B reports it in sync); SIGKILL B (A takes over
 * again). The client knows the nodes through two test-side TCP proxies whose targets follow
 * the restarted process (its new port is chosen by the OS), so one client lives through it all.
 * At the end every request id the client issued resolved once and is in A's log exactly once,
 * and each account holds the exact sum of the deposits issued.
 *
 * Needs `npm run build`. Prints its seed; `TXLOG_SEED` replays the timings.
 */
import { describe, expect, it } from 'vitest';
import { seededRandom, testSeed } from '../helpers/random.js';
import { useTcpProxies } from '../helpers/tcp-proxy.js';
import {
  bankServicePath,
  connectClient,
  depositData,
  depositFor,
  lightArgs,
  readAllEvents,
  sleep,
  startPair,
  usePairFixture,
  statusOf,
  waitFor,
  waitForPrimaryInSync,
} from './pair.js';

const { nodes, pairDirs } = usePairFixture('txlog-double-failover-');
const startProxy = useTcpProxies();

const accounts = 5;
const pipelineDepth = 8;

describe('two failovers in a row', () => {
  it('acknowledges each pipelined request exactly once through A -> B -> A', async () => {
    const random = seededRandom(testSeed('double-failover'));
    const dirs = pairDirs();
    const args = ['--service', bankServicePath, '--heartbeat-timeout-ms', '400'];
    const pair = await startPair(nodes, dirs, { args });
    const proxyA = await startProxy(pair.primary.addresses[0]);
    const proxyB = await startProxy(pair.backup.addresses[0]);

    const client = await connectClient([proxyA.address, proxyB.address], { clientId: 'pipeliner', deadlineMs: 30_000 });
    const answered = new Map<number, number>();
    const sent: number[] = [];
    let stop = false;
    let nextRequestId = 1;
    const worker = async (): Promise<void> => {
      while (!stop) {
        const requestId = nextRequestId++;
        sent.push(requestId);
        await client.execute('deposit', depositFor(0, requestId, accounts));
        answered.set(requestId, (answered.get(requestId) ?? 0) + 1);
      }
    };
    const load = Promise.all(Array.from({ length: pipelineDepth }, () => worker()));
    const progress = async (what: string): Promise<void> => {
      const before = answered.size;
      await waitFor(`the client to make progress ${what}`, () => answered.size >= before + 20, 20_000, nodes);
    };

    await sleep(random.integer(200, 600));
    await pair.primary.kill();
    proxyA.setTarget(undefined);
    await progress('after the first failover');
    expect((await statusOf(pair.backup.addresses[0]!)).role).toBe('primary');

    const rejoined = await nodes.start('A2', dirs.primary, ['--listen', '127.0.0.1:0', '--peer', pair.backup.addresses[0]!, '--role', 'primary', ...lightArgs, ...args]);
    proxyA.setTarget(rejoined.addresses[0]);
    await waitForPrimaryInSync(pair.backup.addresses[0]!, 30_000, nodes);
    expect((await statusOf(rejoined.addresses[0]!)).role).toBe('backup');
    await progress('with A rejoined');

    await sleep(random.integer(0, 400));
    await pair.backup.kill();
    proxyB.setTarget(undefined);
    await progress('after the second failover');
    stop = true;
    await load;

    const final = await statusOf(rejoined.addresses[0]!);
    expect(final.role).toBe('primary');
    expect(final.epoch).toBeGreaterThanOrEqual(3);

    const events = await readAllEvents(client);
    await client.close();
    expect(sent.length).toBe(answered.size);
    for (const count of answered.values()) expect(count).toBe(1);
    const logged = new Map<number, number>();
    const balances = new Map<string, number>();
    for (const event of events) {
      const data = depositData(event);
      expect(data.clientId).toBe('pipeliner');
      logged.set(data.requestId, (logged.get(data.requestId) ?? 0) + 1);
      balances.set(event.stream, (balances.get(event.stream) ?? 0) + data.amount);
    }
    for (const requestId of sent) expect(logged.get(requestId), `request ${requestId}`).toBe(1);
    expect(logged.size).toBe(sent.length);
    const expected = new Map<string, number>();
    for (const requestId of sent) {
      const { account, amount } = depositFor(0, requestId, accounts);
      expected.set(`account-${account}`, (expected.get(`account-${account}`) ?? 0) + amount);
    }
    expect(balances).toEqual(expected);
    console.log(`[double-failover] ${sent.length} requests, each acknowledged and applied once; final epoch ${final.epoch}`);
  });
});
