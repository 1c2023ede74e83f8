/**
 * Proves `txlog consumers DIR` (cli/consumers.ts over engine/consumer-list.ts) as a real process:
 * each consumer's checkpoint position and lag (events after it, checkpoints not counted) as the
 * log shows them, in JSON and as a table; a log without consumers; a missing directory is exit 2;
 * and the directory is left exactly as it was.
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openQuietStore } from '../helpers/store.js';
import { useTempDir } from '../helpers/temp.js';
import { fingerprint, runCli, useBuiltCli } from './helpers.js';

const cli = useBuiltCli();
const newDir = useTempDir('txlog-cli-consumers-');
const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

/** A store whose consumer `ahead` has seen all 10 source events and `behind` the first 4. */
async function storeWithConsumers(): Promise<string> {
  const dir = newDir();
  const { store } = await openQuietStore(dir);
  try {
    await store.append('orders', Array.from({ length: 10 }, (_, index) => ({ type: 'Placed', data: { index } })));
    for (const [name, upTo] of [['ahead', 9], ['behind', 3]] as const) {
      const consumer = await store.consumer({ name, handle: () => undefined });
      while (consumer.position < upTo) await new Promise((resolve) => setTimeout(resolve, 1));
      await consumer.stop();
    }
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
});
