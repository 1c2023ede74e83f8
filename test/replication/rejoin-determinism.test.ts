/**
 * Proves that a backup's re-execution uses every journal record of a commit, wherever it came
 * from: a transaction journals its first call, the backup is SIGKILLed and restarted (a new
 * process, which never saw that record go by), and only then does the transaction make its
 * second call and commit. The restarted backup must check that commit (`checkedCommits` grows)
 * and find no determinism violation, round after round. Before the fix it reported "made call 0,
 * which the original run did not journal" for each such commit.
 *
 * Needs `npm run build`.
 */
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { connectClient, lightArgs, startPair, statusOf, usePairFixture, waitFor, waitForPrimaryInSync, type TestNode } from './pair.js';

const { nodes, pairDirs } = usePairFixture('txlog-rejoin-determinism-');
const gatedServicePath = path.join(path.dirname(fileURLToPath(import.meta.url)), 'gated-service.mjs');
const rounds = 3;

describe('re-execution after a backup restart', () => {
  it(`finds journal records written before the backup's process started (${rounds} restarts)`, async () => {
    const dirs = pairDirs();
    const root = dirs.root;
    const args = ['--service', gatedServicePath];
    const pair = await startPair(nodes, dirs, { args });
    const primaryAddress = pair.primary.addresses[0]!;
    const client = await connectClient([primaryAddress], { clientId: 'shop' });
    let backup: TestNode = pair.backup;
    try {
      for (let round = 0; round < rounds; round++) {
        const gate = path.join(root, `gate-${round}`);
        const before = await statusOf(primaryAddress);
        const reply = client.execute('charge', { gate });
        reply.catch(() => undefined);
        // The first call's journal record is acknowledged by the backup (it is released before
        // the handler goes on), so the backup has it in its WAL.
        await waitFor('the first call to be journaled', async () => (await statusOf(primaryAddress)).lastLsn > before.lastLsn, 10_000, nodes);
        await backup.kill();
        backup = await nodes.start(`B${round + 2}`, dirs.backup, ['--listen', '127.0.0.1:0', '--peer', primaryAddress, '--role', 'backup', ...lightArgs, ...args]);
        await waitForPrimaryInSync(primaryAddress, 30_000, nodes);
        expect(existsSync(gate)).toBe(false);
        writeFileSync(gate, 'open');
        const result = (await reply) as { first: string; second: string };
        expect(result.first).toMatch(/^auth:shop:\d+:0$/);
        const backupAddress = backup.addresses[0]!;
        await waitFor('the restarted backup to check the commit', async () => (await statusOf(backupAddress)).checkedCommits >= 1, 10_000, nodes);
        const status = await statusOf(backupAddress);
        expect(status.determinismViolations, JSON.stringify(status.lastViolation)).toBe(0);
        expect(status.skippedChecks).toBe(0);
      }
    } finally {
      await client.close();
    }
  });
});
