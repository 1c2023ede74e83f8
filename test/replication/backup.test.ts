/**
 * Proves the node's `backup` operation (replication/node.ts, used by `txlog backup --servers`)
 * and restoring a node from a backup, with real `txlog serve` processes:
 * - while clients keep writing to a pair, `txlog backup --servers PRIMARY --out DIR` makes the
 *   primary write a complete backup of its store (manifest LSN within the log, `txlog backup
 *   --verify` and `txlog inspect --verify` pass);
 * - the backup node is then lost for good (SIGKILL, its directory deleted); a new node started
 *   with `txlog serve --dir <the backup>` and `--peer <the primary>` joins the live primary as
 *   its backup, catches up from the backup's LSN while the writers go on, and once both are
 *   stopped the two WALs are identical record for record;
 * - a non-empty or relative target is refused (exit 2) and the node goes on serving.
 *
 * Needs `npm run build`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTempDir } from '../helpers/temp.js';
import { runCli, useBuiltCli } from '../cli/helpers.js';
import { connectClient, expectIdenticalLogs, lightArgs, requireFreshBuild, startPair, statusOf, useNodes, waitForPrimaryInSync } from './pair.js';

requireFreshBuild();
const newDir = useTempDir('txlog-backup-node-');
const nodes = useNodes();
const cli = useBuiltCli();

describe('backup from a running node, and a node restored from it', () => {
  it('a node restored from a backup of the primary joins it and reaches an identical log', async () => {
    const root = newDir();
    const dirs = { primary: path.join(root, 'a'), backup: path.join(root, 'b') };
    const pair = await startPair(nodes, dirs);
    const primaryAddress = pair.servers[0]!;

    let writing = true;
    let acknowledged = 0;
    const writer = async (index: number): Promise<void> => {
      const client = await connectClient([primaryAddress], { clientId: `writer-${index}` });
      try {
        while (writing) {
          await client.append(`stream-${index}`, [{ type: 'Written', data: { index } }]);
          acknowledged += 1;
        }
      } finally {
        await client.close();
      }
    };
    const writers = Array.from({ length: 4 }, (_, index) => writer(index));
    while (acknowledged < 500) await new Promise((resolve) => setTimeout(resolve, 10));

    const backupDir = path.join(root, 'backup');
    const result = await runCli(cli(), ['backup', '--servers', primaryAddress, '--out', backupDir]);
    expect(result.exitCode, result.stderr).toBe(0);
    const line = JSON.parse(result.stdout) as { lsn: number; stateLsn: number };
    expect(line.stateLsn).toBeGreaterThan(500);
    expect((await runCli(cli(), ['backup', '--verify', backupDir])).exitCode).toBe(0);
    expect((await runCli(cli(), ['inspect', backupDir, '--verify'])).exitCode).toBe(0);

    const refused = await runCli(cli(), ['backup', '--servers', primaryAddress, '--out', backupDir]);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toMatch(/^txlog: TARGET_NOT_EMPTY: [^\n]+\n$/);
    expect((await statusOf(primaryAddress)).role, 'the primary goes on').toBe('primary');

    // The backup node is lost for good; a new node from the backup takes its place.
    await pair.backup.kill();
    fs.rmSync(dirs.backup, { recursive: true, force: true });
    const restored = await nodes.start('C', backupDir, ['--listen', '127.0.0.1:0', '--peer', primaryAddress, '--role', 'backup', ...lightArgs]);
    await waitForPrimaryInSync(primaryAddress, 30_000, nodes);
    expect((await statusOf(restored.addresses[0]!)).role).toBe('backup');
    const atJoin = acknowledged;
    while (acknowledged < atJoin + 200) await new Promise((resolve) => setTimeout(resolve, 10));
    writing = false;
    await Promise.all(writers);
    await waitForPrimaryInSync(primaryAddress, 30_000, nodes);

    await pair.primary.stop();
    await restored.stop();
    const log = await expectIdenticalLogs(dirs.primary, backupDir);
    expect(log.records.length).toBeGreaterThan(line.lsn);
  });
});
