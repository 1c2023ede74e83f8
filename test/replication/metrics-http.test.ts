/**
 * Proves `txlog serve --metrics-listen` (replication/metrics-http.ts, cli/serve.ts) with real processes:
 * - a primary/backup pair, each serving `/metrics`, scraped before and after a load of
 *   concurrent clients: on the primary the transaction, commit, event and WAL counters move, the
 *   phase histograms fill (wal_write, fdatasync, backup_ack, apply) and the batch-size one too;
 *   role, epoch and in-sync gauges say what `status` says; the backup counts what it wrote and
 *   applied and reports itself as backup; process metrics are there; other paths answer 404;
 * - a metrics port already in use: `txlog serve` exits 1 with one line, opens no store, and the
 *   node holding the port goes on serving (its metrics and its clients).
 *
 * Needs `npm run build`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTempDir } from '../helpers/temp.js';
import { runCli, useBuiltCli } from '../cli/helpers.js';
import { connectClient, requireFreshBuild, startPair, statusOf, useNodes } from '../replication/pair.js';

requireFreshBuild();
const newDir = useTempDir('txlog-metrics-http-');
const nodes = useNodes();
const cli = useBuiltCli();

async function scrape(address: string): Promise<string> {
  const response = await fetch(`http://${address}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
  return response.text();
}

function sample(text: string, name: string): number {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.slice(name.length + 1));
}

/**
 * Scrapes until `done` holds or 5 s pass, and returns the last scrape (the assertions on it say
 * what is missing). Commits are counted when applied, which follows their answer by up to
 * applyDelayMs (10 ms), and a backup applies after it acknowledges.
 */
async function scrapeUntil(address: string, done: (text: string) => boolean): Promise<string> {
  let text = await scrape(address);
  for (const deadline = Date.now() + 5000; !done(text) && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    text = await scrape(address);
  }
  return text;
}

describe('txlog serve --metrics-listen', () => {
  it('a pair under load: counters move and histograms fill', async () => {
    const root = newDir();
    const metricsArgs = ['--metrics-listen', '127.0.0.1:0'];
    const pair = await startPair(nodes, { primary: path.join(root, 'a'), backup: path.join(root, 'b') }, { args: [...metricsArgs, '--fsync', 'always'] });
    const primaryMetrics = pair.primary.metricsAddress!;
    const backupMetrics = pair.backup.metricsAddress!;
    const before = await scrape(primaryMetrics);

    const clients = await Promise.all(Array.from({ length: 8 }, (_, index) => connectClient([pair.servers[0]!], { clientId: `load-${index}` })));
    await Promise.all(
      clients.map(async (client, index) => {
        for (let count = 0; count < 50; count++) await client.append(`stream-${index}`, [{ type: 'Placed', data: { count } }]);
      }),
    );
    await clients[0]!.append('stream-0', [{ type: 'Placed', data: {} }], { expectedVersion: 0 }).catch(() => undefined);
    await Promise.all(clients.map((client) => client.close()));

    const movedIn = (text: string, name: string): number => sample(text, name) - (Number.isNaN(sample(before, name)) ? 0 : sample(before, name));
    const after = await scrapeUntil(primaryMetrics, (text) => movedIn(text, 'txlog_commits_total') >= 401);
    const moved = (name: string): number => movedIn(after, name);
    expect(moved('txlog_transactions_total{outcome="ok"}')).toBe(400);
    expect(moved('txlog_transaction_errors_total{code="WRONG_EXPECTED_VERSION"}')).toBe(1);
    expect(moved('txlog_errors_returned_total{code="WRONG_EXPECTED_VERSION"}')).toBe(1);
    expect(moved('txlog_commits_total')).toBe(401);
    expect(moved('txlog_events_appended_total')).toBe(400);
    expect(moved('txlog_wal_records_appended_total')).toBe(401);
    expect(moved('txlog_wal_appended_bytes_total')).toBeGreaterThan(401 * 24);
    for (const phase of ['wal_write', 'fdatasync', 'backup_ack', 'apply']) {
      expect(moved(`txlog_commit_phase_seconds_count{phase="${phase}"}`), phase).toBeGreaterThan(0);
      expect(sample(after, `txlog_commit_phase_seconds_bucket{le="+Inf",phase="${phase}"}`), phase).toBeGreaterThan(0);
    }
    expect(moved('txlog_wal_batch_records_sum')).toBe(401);
    expect(moved('txlog_transaction_seconds_count')).toBe(401);
    const status = await statusOf(pair.servers[0]!);
    expect(sample(after, 'txlog_node_role{role="primary"}')).toBe(1);
    expect(sample(after, 'txlog_node_epoch')).toBe(status.epoch);
    expect(sample(after, 'txlog_node_in_sync')).toBe(1);
    expect(sample(after, 'txlog_client_sessions')).toBeGreaterThanOrEqual(8);
    expect(sample(after, 'txlog_resource_size{structure="clientSessions"}')).toBe(sample(after, 'txlog_client_sessions'));
    expect(sample(after, 'txlog_resource_limit{structure="clientSessions"}')).toBe(100_000);
    expect(sample(after, 'txlog_resource_size{structure="transactionsRunning"}')).toBe(0);
    expect(sample(after, 'txlog_resource_size{structure="walSegments"}')).toBeGreaterThanOrEqual(1);
    expect(after).not.toContain('txlog_resource_limit{structure="walSegments"}');
    expect(sample(after, 'txlog_peer_links')).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'txlog_replication_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(after).toMatch(/^process_cpu_seconds_total /m);
    expect(after).toMatch(/^nodejs_eventloop_lag_seconds /m);

    const backup = await scrapeUntil(backupMetrics, (text) => sample(text, 'txlog_commits_total') >= 401);
    expect(sample(backup, 'txlog_node_role{role="backup"}')).toBe(1);
    expect(sample(backup, 'txlog_wal_records_appended_total')).toBeGreaterThanOrEqual(401);
    expect(sample(backup, 'txlog_commits_total')).toBeGreaterThanOrEqual(401);
    expect(sample(backup, 'txlog_determinism_violations_total')).toBe(0);
    expect((await fetch(`http://${primaryMetrics}/other`)).status).toBe(404);
  });

  it('a metrics port in use: exit 1, one line, no store opened, the other node unharmed', async () => {
    const root = newDir();
    const first = await nodes.start('A', path.join(root, 'a'), ['--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--fsync', 'never']);
    const taken = first.metricsAddress!;
    const secondDir = path.join(root, 'b');
    const result = await runCli(cli(), ['serve', '--dir', secondDir, '--listen', '127.0.0.1:0', '--metrics-listen', taken]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr.split('\n').filter((line) => line.startsWith('txlog: '))).toEqual([`txlog: IO_ERROR: metrics address ${taken} is in use`]);
    expect(fs.existsSync(secondDir)).toBe(false);
    const bad = await runCli(cli(), ['serve', '--dir', secondDir, '--listen', '127.0.0.1:0', '--metrics-listen', 'nonsense']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/^txlog: USAGE: --metrics-listen nonsense is not host:port/m);

    const client = await connectClient(first.addresses);
    await client.append('orders', [{ type: 'Placed', data: {} }]);
    await client.close();
    expect(sample(await scrapeUntil(taken, (text) => sample(text, 'txlog_commits_total') >= 1), 'txlog_commits_total')).toBeGreaterThanOrEqual(1);
    expect((await statusOf(first.addresses[0]!)).role).toBe('primary');
  });
});
