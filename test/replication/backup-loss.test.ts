/**
 * Proves what a primary does when its backup dies (SIGKILL), under both policies:
 * - `--on-replica-lost fail` (the default) with `--replica-timeout-ms 500`: every write issued
 *   while the backup is gone fails (TIMEOUT carrying its request id, last answer
 *   REPLICA_UNAVAILABLE), none succeeds, and the primary's status says `replicaUnavailable`;
 *   once the backup is restarted and in sync, the same request ids resent succeed, each applied
 *   exactly once, and every acknowledged write is in both WALs.
 * - `--on-replica-lost continue`: writes succeed alone after the timeout, `client.status()` and
 *   `txlog status --json` say `alone: true`; no acknowledged write is lost, and a restarted
 *   backup catches up (alone: false again, identical WAL).
 *
 * Needs `npm run build`.
 */
import { describe, expect, it } from 'vitest';
import { TxlogError } from '../../wal/errors.js';
import { cliMainPath } from '../../dist/replication/spawn-node.js';
import { exited, useChildProcesses } from '../helpers/temp.js';
import {
  bankServicePath,
  connectClient,
  depositData,
  depositFor,
  lightArgs,
  readAllEvents,
  readWal,
  startPair,
  usePairFixture,
  statusOf,
  waitForPrimaryInSync,
  type Pair,
  type TestNode,
} from './pair.js';

const { nodes, pairDirs } = usePairFixture('txlog-backup-loss-');
const spawnChild = useChildProcesses();

const accounts = 3;

async function restartBackup(pair: Pair, dir: string, args: string[]): Promise<TestNode> {
  const node = await nodes.start('B2', dir, ['--listen', '127.0.0.1:0', '--peer', pair.servers[0]!, '--role', 'backup', ...lightArgs, ...args]);
  await waitForPrimaryInSync(pair.servers[0]!, 30_000, nodes);
  return node;
}

/** Each of `requestIds` of `clientId` appears exactly once among the commits of a WAL. */
async function expectCommittedOnce(dir: string, clientId: string, requestIds: number[]): Promise<void> {
  const { commits } = await readWal(dir);
  const counts = new Map<number, number>();
  for (const { commit } of commits) {
    if (commit.clientId === clientId) counts.set(commit.requestId, (counts.get(commit.requestId) ?? 0) + 1);
  }
  for (const requestId of requestIds) expect(counts.get(requestId), `request ${requestId} in ${dir}`).toBe(1);
}

async function txlogStatusJson(address: string): Promise<Array<{ server: string; status?: { alone: boolean; role: string } }>> {
  const child = spawnChild(process.execPath, [cliMainPath, 'status', '--servers', address, '--json']);
  let stdout = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const { code } = await exited(child);
  expect(code).toBe(0);
  return JSON.parse(stdout) as Array<{ server: string; status?: { alone: boolean; role: string } }>;
}

describe('losing the backup', () => {
  it('fails writes with REPLICA_UNAVAILABLE under the default policy until the backup is back, then resends apply once', async () => {
    const dirs = pairDirs();
    const args = ['--service', bankServicePath, '--replica-timeout-ms', '500', '--heartbeat-timeout-ms', '500'];
    const pair = await startPair(nodes, dirs, { args });
    const client = await connectClient(pair.servers, { clientId: 'writer', deadlineMs: 1500 });
    const acknowledged: number[] = [];
    let requestId = 0;
    for (let index = 0; index < 10; index++) {
      requestId += 1;
      await client.execute('deposit', depositFor(0, requestId, accounts));
      acknowledged.push(requestId);
    }

    await pair.backup.kill();
    const failed: number[] = [];
    const outageStarted = Date.now();
    while (Date.now() - outageStarted < 3000 || failed.length < 3) {
      requestId += 1;
      try {
        await client.execute('deposit', depositFor(0, requestId, accounts));
        throw new Error(`request ${requestId} succeeded without a backup`);
      } catch (error) {
        if (!(error instanceof TxlogError)) throw error;
        expect(error.code).toBe('TIMEOUT');
        expect(error.details['requestId']).toBe(requestId);
        expect(error.details['lastError']).toBe('REPLICA_UNAVAILABLE');
        failed.push(requestId);
      }
    }
    const outage = await statusOf(pair.servers[0]!);
    expect(outage).toMatchObject({ role: 'primary', replicaUnavailable: true, alone: true, inSync: false });
    await client.close();

    const backup = await restartBackup(pair, dirs.backup, args);
    const recovered = await statusOf(pair.servers[0]!);
    expect(recovered).toMatchObject({ replicaUnavailable: false, alone: false, inSync: true });

    // The same ids again, in order: each succeeds, none runs twice.
    const resender = await connectClient(pair.servers, { clientId: 'writer', firstRequestId: failed[0]! });
    for (const id of failed) {
      const reply = await resender.execute('deposit', depositFor(0, id, accounts));
      expect(reply).toMatchObject({ variant: 'same' });
    }
    const fresh = await resender.execute('deposit', depositFor(0, requestId + 1, accounts));
    expect(fresh).toMatchObject({ variant: 'same' });
    const events = await readAllEvents(resender);
    await resender.close();
    const ids = events.map((event) => depositData(event).requestId);
    expect(ids.toSorted((a, b) => a - b)).toEqual([...acknowledged, ...failed, requestId + 1]);

    await pair.primary.stop();
    await backup.stop();
    const all = [...acknowledged, ...failed, requestId + 1];
    await expectCommittedOnce(dirs.primary, 'writer', all);
    await expectCommittedOnce(dirs.backup, 'writer', all);
  });

  it('continues alone under --on-replica-lost continue, says so, and loses no acknowledged write', async () => {
    const dirs = pairDirs();
    const args = ['--service', bankServicePath, '--replica-timeout-ms', '500', '--heartbeat-timeout-ms', '500', '--on-replica-lost', 'continue'];
    const pair = await startPair(nodes, dirs, { args });
    const client = await connectClient(pair.servers, { clientId: 'writer', deadlineMs: 10_000 });
    const acknowledged: number[] = [];
    let requestId = 0;
    const write = async (): Promise<void> => {
      requestId += 1;
      await client.execute('deposit', depositFor(0, requestId, accounts));
      acknowledged.push(requestId);
    };
    for (let index = 0; index < 10; index++) await write();
    await pair.backup.kill();
    for (let index = 0; index < 20; index++) await write();

    const alone = await client.status();
    expect(alone).toMatchObject({ role: 'primary', alone: true, inSync: false, replicaUnavailable: false });
    const [cli] = await txlogStatusJson(pair.servers[0]!);
    expect(cli?.status).toMatchObject({ role: 'primary', alone: true });

    const events = await readAllEvents(client);
    expect(events.map((event) => depositData(event).requestId)).toEqual(acknowledged);

    const backup = await restartBackup(pair, dirs.backup, args);
    for (let index = 0; index < 5; index++) await write();
    expect(await client.status()).toMatchObject({ alone: false, inSync: true });
    await client.close();
    await pair.primary.stop();
    await backup.stop();
    await expectCommittedOnce(dirs.primary, 'writer', acknowledged);
    await expectCommittedOnce(dirs.backup, 'writer', acknowledged);
  });
});
