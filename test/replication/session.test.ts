/**
 * Proves that a client that restarts (same client id, no `firstRequestId`) continues its
 * request ids from what the cluster committed, even when the first node it reaches is a backup
 * that has not caught up: the primary is SIGSTOPped, a fresh backup (empty directory, as after
 * a disk replacement) is started, and the restarted client lists that backup first. Its new
 * deposit must be applied (a new request id), not answered with the stored reply of an older
 * request that happens to carry the same id.
 * Likewise when the client restarts while its earlier requests are still in flight on the
 * primary (decided, waiting for the SIGSTOPped backup): its new request gets a fresh id.
 *
 * Needs `npm run build`.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  bankServicePath,
  connectClient,
  depositData,
  lightArgs,
  readAllEvents,
  sleep,
  startPair,
  usePairFixture,
  waitForPrimaryInSync,
} from './pair.js';

const { nodes, pairDirs } = usePairFixture('txlog-session-');

describe('a restarted client', () => {
  it('continues after the ids the primary committed, not a lagging backup', async () => {
    const dirs = pairDirs();
    const root = dirs.root;
    const args = ['--service', bankServicePath];
    const pair = await startPair(nodes, dirs, { args });
    const [addressA] = pair.servers as [string, string];

    const first = await connectClient(pair.servers, { clientId: 'restarting' });
    for (let index = 1; index <= 5; index++) await first.execute('deposit', { account: 'old', amount: index });
    await first.close();

    // The backup's machine is replaced: a new, empty backup starts while the primary is paused.
    await pair.backup.kill();
    pair.primary.pause();
    const freshBackup = await nodes.start('B2', path.join(root, 'b-new'), ['--listen', '127.0.0.1:0', '--peer', addressA, '--role', 'backup', ...lightArgs, ...args]);
    const resumed = (async () => {
      await sleep(1500);
      pair.primary.resume();
    })();
    const second = await connectClient([freshBackup.addresses[0]!, addressA], { clientId: 'restarting', deadlineMs: 20_000 });
    const reply = (await second.execute('deposit', { account: 'new', amount: 100 })) as { chargeId: string };
    await resumed;
    await waitForPrimaryInSync(addressA, 30_000, nodes);

    const events = await readAllEvents(second);
    await second.close();
    const deposits = events.map((event) => ({ stream: event.stream, ...depositData(event) }));
    expect(deposits.filter((deposit) => deposit.stream === 'account-old').map((deposit) => deposit.requestId)).toEqual([1, 2, 3, 4, 5]);
    const newDeposit = deposits.find((deposit) => deposit.stream === 'account-new');
    expect(newDeposit, 'the new deposit was applied').toBeDefined();
    expect(newDeposit!.requestId).toBe(6);
    expect(reply.chargeId).toBe(newDeposit!.chargeId);
  });

  it('continues after the ids still in flight on the primary', async () => {
    const pair = await startPair(nodes, pairDirs(), { args: ['--service', bankServicePath] });
    const [addressA] = pair.servers as [string, string];
    const first = await connectClient([addressA], { clientId: 'crashing' });
    await first.execute('deposit', { account: 'old', amount: 1 });
    pair.backup.pause();
    const unanswered = [2, 3, 4].map((amount) => first.execute('deposit', { account: 'old', amount }));
    for (const outcome of unanswered) outcome.catch(() => undefined);
    await sleep(200);
    await first.close(); // The client process "crashes" with three requests in flight.

    const second = await connectClient([addressA], { clientId: 'crashing' });
    const fresh = second.execute('deposit', { account: 'new', amount: 100 });
    await sleep(200);
    pair.backup.resume();
    const reply = (await fresh) as { chargeId: string };

    const events = await readAllEvents(second);
    await second.close();
    const deposits = events.map((event) => ({ stream: event.stream, ...depositData(event) }));
    expect(deposits.filter((deposit) => deposit.stream === 'account-old').map((deposit) => deposit.requestId)).toEqual([1, 2, 3, 4]);
    const newDeposit = deposits.find((deposit) => deposit.stream === 'account-new');
    expect(newDeposit, 'the new deposit was applied').toBeDefined();
    expect(newDeposit!.requestId).toBe(5);
    expect(reply.chargeId).toBe(newDeposit!.chargeId);
  });
});
