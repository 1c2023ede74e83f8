/**
 * Proves `txlog read` (cli/read.ts) as a real process against a real `txlog serve` on loopback:
 * a stream forwards, backwards, from a version or the end, with `--max-count` and the older
 * `--from-version`; the whole log (no STREAM) filtered by `--stream-prefix` and `--event-type`
 * (repeatable), backwards and from the end; the output is one JSON document; `--follow` prints
 * the filtered history and then events as they commit, one a line, and stops after
 * `--max-count` or on SIGTERM with exit 0; and each bad flag or combination is one `USAGE` line
 * with exit 2, before anything is dialled.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect } from '../../replication/client.js';
import { exited, useChildProcesses, useTempDir } from '../helpers/temp.js';
import { runCli, useBuiltCli, useServers } from './helpers.js';

const cli = useBuiltCli();
const newDir = useTempDir('txlog-cli-read-');
const startServer = useServers(cli);
const spawnChild = useChildProcesses();
const unreachable = '127.0.0.1:1';

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface Printed {
  version?: number;
  events: Array<{ stream: string; version: number; position: number; type: string }>;
}

async function read(address: string, args: string[]): Promise<Printed> {
  const result = await runCli(cli(), ['read', '--servers', address, ...args]);
  expect(result.stderr, args.join(' ')).toBe('');
  expect(result.exitCode, args.join(' ')).toBe(0);
  return JSON.parse(result.stdout) as Printed;
}

describe('txlog read', () => {
  it('reads a stream or the log, either way, from a version or the end, filtered', async () => {
    const { address } = await startServer(path.join(newDir(), 'store'));
    const client = await connect({ servers: [address] });
    try {
      // Positions: orders-1 0..4 (Placed, Paid alternately), noise 5..7, orders-2 8..9.
      await client.append('orders-1', Array.from({ length: 5 }, (_, index) => ({ type: index % 2 === 0 ? 'Placed' : 'Paid' })));
      await client.append('noise', [{ type: 'Noise' }, { type: 'Noise' }, { type: 'Paid' }]);
      await client.append('orders-2', [{ type: 'Placed' }, { type: 'Paid' }]);
    } finally {
      await client.close();
    }
    const versions = (printed: Printed): number[] => printed.events.map((event) => event.version);
    const positions = (printed: Printed): number[] => printed.events.map((event) => event.position);

    const all = await read(address, ['orders-1']);
    expect(all.version).toBe(4);
    expect(versions(all)).toEqual([0, 1, 2, 3, 4]);
    expect(versions(await read(address, ['orders-1', '--backwards']))).toEqual([4, 3, 2, 1, 0]);
    expect(versions(await read(address, ['orders-1', '--from', 'end']))).toEqual([4]);
    expect(versions(await read(address, ['orders-1', '--from', '3', '--backwards', '--max-count', '2']))).toEqual([3, 2]);
    expect(versions(await read(address, ['orders-1', '--from-version', '1', '--max-count', '2']))).toEqual([1, 2]);
    expect(await read(address, ['missing'])).toEqual({ version: -1, events: [] });

    expect(positions(await read(address, []))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(positions(await read(address, ['--stream-prefix', 'orders-', '--event-type', 'Paid']))).toEqual([1, 3, 9]);
    expect(positions(await read(address, ['--event-type', 'Paid', '--event-type', 'Noise', '--backwards', '--max-count', '3']))).toEqual([9, 7, 6]);
    expect(positions(await read(address, ['--stream-prefix', 'noise', '--stream-prefix', 'orders-2', '--from', '6']))).toEqual([6, 7, 8, 9]);
    expect(positions(await read(address, ['--from', 'end', '--backwards', '--max-count', '1']))).toEqual([9]);
  });

  it('follows the log: history, then live events, until --max-count or SIGTERM', async () => {
    const { address } = await startServer(path.join(newDir(), 'store'));
    const client = await connect({ servers: [address] });
    try {
      await client.append('a', [{ type: 'Wanted' }, { type: 'Other' }]);
      const counted = spawnChild(process.execPath, [cli(), 'read', '--servers', address, '--follow', '--event-type', 'Wanted', '--max-count', '3']);
      let countedOut = '';
      counted.stdout!.on('data', (chunk: Buffer) => (countedOut += chunk.toString()));
      await until(() => countedOut.includes('\n'));
      await client.append('b', [{ type: 'Other' }, { type: 'Wanted' }]);
      await client.append('c', [{ type: 'Wanted' }, { type: 'Wanted' }]);
      expect(await exited(counted)).toEqual({ code: 0, signal: null });
      expect(countedOut.trim().split('\n').map((line) => (JSON.parse(line) as { position: number }).position)).toEqual([0, 3, 4]);

      const tail = spawnChild(process.execPath, [cli(), 'read', '--servers', address, '--follow', '--from', 'end']);
      let tailOut = '';
      tail.stdout!.on('data', (chunk: Buffer) => (tailOut += chunk.toString()));
      // Only what commits after it subscribed: ping until one arrives.
      while (!tailOut.includes('\n')) {
        await client.append('ping', [{ type: 'Ping' }]);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      tail.kill('SIGTERM');
      expect(await exited(tail)).toEqual({ code: 0, signal: null });
      const printed = tailOut.trim().split('\n').map((line) => JSON.parse(line) as { type: string; position: number });
      expect(printed.every((event) => event.type === 'Ping' && event.position > 5)).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('refuses each bad flag with one USAGE line and exit 2', async () => {
    for (const args of [
      ['s', '--stream-prefix', 'orders-'],
      ['s', '--event-type', 'Paid'],
      ['--from-version', '3'],
      ['s', '--from', 'middle'],
      ['s', '--from', '-1'],
      ['s', '--from', '1', '--from-version', '1'],
      ['s', '--max-count', '0'],
      ['s', '--max-count', '1000001'],
      ['--event-type', ''],
      ['--stream-prefix', ''],
      ['s', '--backwards=yes'],
      ['s', 't'],
      ['s', '--sideways'],
      ['s', '--follow'],
      ['--follow', '--backwards'],
    ]) {
      const result = await runCli(cli(), ['read', '--servers', unreachable, ...args]);
      expect(result.exitCode, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(/^txlog: USAGE: [^\n]+\n$/);
    }
  });
});
