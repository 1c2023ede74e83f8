/**
 * Proves `txlog consumers DIR` (cli/consumers.ts over engine/consumer-list.ts) as a real process:
 * each consumer's checkpoint position and lag (events after it, checkpoints not counted) as the
 * log shows them, in JSON and as a table; a log without consumers; a missing directory is exit 2;
 * and the directory is left exactly as it was. `txlog consumers --servers` against a real
 * `txlog serve` lists what `consumers DIR` lists of the same store, as JSON and as a table; DIR
 * with `--servers` or with a connection flag is one USAGE line and exit 2; no node is exit 4.
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openQuietStore } from '../helpers/store.js';
import { useTempDir } from '../helpers/temp.js';
import type { Store } from '../../engine/index.js';
import { connect, type Client } from '../../replication/client.js';
import { fingerprint, runCli, useBuiltCli, useServers } from './helpers.js';

const cli = useBuiltCli();
const newDir = useTempDir('txlog-cli-consumers-');
const startServer = useServers(cli);
const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

/**
 * Runs each named consumer (embedded or over a client) until it has handled position `upTo`,
 * and no further: its handler aborts it there, and an abort stops a consumer after the event it
 * is handling. (Stopping it from outside once `position` had passed `upTo` let a fast consumer
 * handle everything first: a flake.)
 */
async function consumeUpTo(host: Pick<Store, 'consumer'> | Pick<Client, 'consumer'>, consumers: ReadonlyArray<readonly [string, number]>): Promise<void> {
  for (const [name, upTo] of consumers) {
    const controller = new AbortController();
    const consumer = await host.consumer({
      name,
      signal: controller.signal,
      handle: (event) => {
        if (event.position >= upTo) controller.abort();
      },
    });
    await consumer.done;
    expect(consumer.position).toBe(upTo);
  }
}

/** A store whose consumer `ahead` has seen all 10 source events and `behind` the first 4. */
async function storeWithConsumers(): Promise<string> {
  const dir = newDir();
  const { store } = await openQuietStore(dir);
  try {
    await store.append('orders', Array.from({ length: 10 }, (_, index) => ({ type: 'Placed', data: { index } })));
    await consumeUpTo(store, [['ahead', 9], ['behind', 3]]);
  } finally {
    await store.close();
  }
  return dir;
}

describe('txlog consumers', () => {
  it('lists each consumer with its position and lag, and writes nothing', async () => {
    const dir = await storeWithConsumers();
    const before = fingerprint(dir);
    const json = await runCli(cli(), ['consumers', dir, '--json']);
    expect(json.exitCode, json.stderr).toBe(0);
    const list = JSON.parse(json.stdout) as { lastPosition: number; consumers: Array<{ name: string; position: number; lag: number; updatedAtMs: number }> };
    const byName = Object.fromEntries(list.consumers.map((consumer) => [consumer.name, consumer]));
    expect(byName['ahead']).toMatchObject({ position: expect.any(Number), lag: 0 });
    expect(byName['ahead']!.position).toBeGreaterThanOrEqual(9);
    expect(byName['behind']!.lag).toBeGreaterThan(0);
    expect(byName['behind']!.lag).toBeLessThanOrEqual(6);
    expect(byName['ahead']!.updatedAtMs).toBeGreaterThan(0);
    const table = await runCli(cli(), ['consumers', dir]);
    expect(table.exitCode).toBe(0);
    expect(table.stdout).toMatch(/^NAME +POSITION +LAG +UPDATED$/m);
    expect(table.stdout).toMatch(/^ahead +\d+ +0 +\d{4}-/m);
    expect(table.stdout).toContain('2 consumers;');
    expect(fingerprint(dir)).toEqual(before);
  });

  it('says none for a log without consumers, and exit 2 for a missing directory', async () => {
    const none = await runCli(cli(), ['consumers', path.join(fixtures, 'store-v1'), '--json']);
    expect(none.exitCode, none.stderr).toBe(0);
    expect(JSON.parse(none.stdout)).toEqual({ lastPosition: 4, consumers: [] });
    const missing = await runCli(cli(), ['consumers', path.join(newDir(), 'nothing-here')]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/^txlog: [A-Z_]+: /);
    expect((await runCli(cli(), ['consumers'])).exitCode).toBe(2);
  });

  it('lists the consumers of a running node with --servers, as the log does', async () => {
    const dir = newDir();
    const { address } = await startServer(dir);
    const client = await connect({ servers: [address] });
    try {
      await client.append('orders', Array.from({ length: 6 }, (_, index) => ({ type: 'Placed', data: { index } })));
      await consumeUpTo(client, [['mailer', 5], ['slow', 1]]);
    } finally {
      await client.close();
    }
    const served = await runCli(cli(), ['consumers', '--servers', address, '--json']);
    expect(served.exitCode, served.stderr).toBe(0);
    const list = JSON.parse(served.stdout) as { consumers: Array<{ name: string; lag: number }> };
    expect(list.consumers.map((consumer) => consumer.name)).toEqual(['mailer', 'slow']);
    expect(list.consumers[0]!.lag).toBe(0);
    const fromLog = await runCli(cli(), ['consumers', dir, '--json']);
    expect(JSON.parse(served.stdout)).toEqual(JSON.parse(fromLog.stdout));
    const table = await runCli(cli(), ['consumers', '--servers', address]);
    expect(table.stdout).toMatch(/^mailer +\d+ +0 +\d{4}-/m);
    expect(table.stdout).toContain('2 consumers;');

    for (const args of [[dir, '--servers', address], [dir, '--secret-file', '/nonexistent'], ['--servers', '']]) {
      const refused = await runCli(cli(), ['consumers', ...args]);
      expect(refused.exitCode, args.join(' ')).toBe(2);
      expect(refused.stderr, args.join(' ')).toMatch(/^txlog: USAGE: [^\n]+\n$/);
    }
    const nobody = await runCli(cli(), ['consumers', '--servers', '127.0.0.1:1', '--timeout-ms', '1000']);
    expect(nobody.exitCode).toBe(4);
  });
});
