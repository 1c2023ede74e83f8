/**
 * Proves that a node rejoining with a divergent tail is cut back to the new primary's log:
 * the backup is SIGSTOPped; the primary keeps appending transactions it cannot get
 * acknowledged (after its 300 ms heartbeat timeout it closes the silent link, so these records
 * exist only in its WAL); the primary is SIGKILLed; the backup is SIGCONTed and promoted by a
 * client; the old primary restarts with `--peer <new primary>`. Then:
 * - the old primary's WAL, read before the restart, was longer than the point where the logs
 *   agree, and the rejoining node says it cut its log after that point;
 * - after it caught up, both WALs are identical record for record (the record after the cut
 *   point is the new primary's epoch record), so no unacknowledged write of the old epoch
 *   survived on either node;
 * - the requests that timed out meanwhile, resent with their ids, apply exactly once.
 *
 * Needs `npm run build`.
 */
import { describe, expect, it } from 'vitest';
import { TxlogError } from '../../wal/errors.js';
import { recordTypes, type EpochPayload } from '../../engine/records.js';
import {
  bankServicePath,
  connectClient,
  depositData,
  depositFor,
  lightArgs,
  readAllEvents,
  expectIdenticalLogs,
  readWal,
  sleep,
  startPair,
  usePairFixture,
  statusOf,
  waitForPrimaryInSync,
} from './pair.js';

const { nodes, pairDirs } = usePairFixture('txlog-rejoin-');

describe('rejoining with a divergent tail', () => {
  it('cuts the old primary back to the new primary log', async () => {
    const dirs = pairDirs();
    const args = ['--service', bankServicePath, '--heartbeat-timeout-ms', '300'];
    const pair = await startPair(nodes, dirs, { args });
    const [addressA, addressB] = pair.servers as [string, string];

    const writer = await connectClient([addressA], { clientId: 'writer', deadlineMs: 2500 });
    const acknowledged: number[] = [];
    let requestId = 0;
    for (let index = 0; index < 10; index++) {
      requestId += 1;
      await writer.execute('deposit', depositFor(0, requestId, 3));
      acknowledged.push(requestId);
    }

    pair.backup.pause();
    const unacknowledged: Array<{ requestId: number; outcome: Promise<unknown> }> = [];
    const started = Date.now();
    while (Date.now() - started < 900) {
      requestId += 1;
      const outcome = writer.execute('deposit', depositFor(0, requestId, 3));
      outcome.catch(() => undefined);
      unacknowledged.push({ requestId, outcome });
      await sleep(40);
    }
    expect(pair.primary.log()).toMatch(/silent for \d+ ms; closing it/);
    await pair.primary.kill();
    const oldPrimaryWal = await readWal(dirs.primary);

    pair.backup.resume();
    const promoter = await connectClient([addressB], { clientId: 'promoter', deadlineMs: 10_000 });
    await promoter.execute('deposit', depositFor(1, 1, 3));
    const promoted = await statusOf(addressB);
    expect(promoted.role).toBe('primary');
    for (const { requestId: id, outcome } of unacknowledged) {
      const error = await outcome.then(
        () => new Error(`request ${id} was acknowledged without its backup`),
        (reason: unknown) => reason,
      );
      expect(error).toBeInstanceOf(TxlogError);
      expect((error as TxlogError).code).toBe('TIMEOUT');
    }
    await writer.close();

    const rejoined = await nodes.start('A2', dirs.primary, ['--listen', '127.0.0.1:0', '--peer', addressB, '--role', 'primary', ...lightArgs, ...args]);
    await waitForPrimaryInSync(addressB, 30_000, nodes);
    const cut = /cutting the log after LSN (\d+)/.exec(rejoined.log());
    expect(cut, 'the rejoining node cut its tail').not.toBeNull();
    const agreedLsn = Number(cut![1]);
    expect(oldPrimaryWal.records.at(-1)!.lsn).toBeGreaterThan(agreedLsn);
    expect((await statusOf(rejoined.addresses[0]!)).role).toBe('backup');

    // The timed-out requests again, with their ids: each applies once, on the new primary.
    const resender = await connectClient([addressB], { clientId: 'writer', firstRequestId: unacknowledged[0]!.requestId });
    for (const { requestId: id } of unacknowledged) await resender.execute('deposit', depositFor(0, id, 3));
    const events = await readAllEvents(resender);
    await Promise.all([resender.close(), promoter.close()]);
    const writerIds = events.map((event) => depositData(event)).filter((data) => data.clientId === 'writer').map((data) => data.requestId);
    expect(writerIds.toSorted((a, b) => a - b)).toEqual([...acknowledged, ...unacknowledged.map((entry) => entry.requestId)]);

    await rejoined.stop();
    await pair.backup.stop();
    const walB = await expectIdenticalLogs(dirs.primary, dirs.backup);
    const afterCut = walB.records.find((record) => record.lsn === agreedLsn + 1)!;
    expect(afterCut.type).toBe(recordTypes.epoch);
    expect((afterCut.payload as EpochPayload).epoch).toBe(promoted.epoch);
    const differing = oldPrimaryWal.records.filter((record) => record.lsn > agreedLsn);
    expect(differing.length).toBeGreaterThan(0);
    for (const record of differing) {
      const now = walB.records.find((candidate) => candidate.lsn === record.lsn);
      if (now !== undefined) expect(now.frame.equals(record.frame)).toBe(false);
    }
    console.log(`[rejoin] the old primary had ${differing.length} records after LSN ${agreedLsn} that the new primary never had; cut and caught up`);
  });
});
