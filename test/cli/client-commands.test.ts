/**
 * Proves the client side of the CLI against a real `txlog serve` process on loopback: `append`
 * (with expected versions, and WRONG_EXPECTED_VERSION as one line and exit 1), `read`, `exec`
 * exactly once for a repeated client and request id, `status` over a reachable and an
 * unreachable node, exit 4 when no node answers, exit 2 for bad input; and `txlog replay` over a
 * log written through a service module: exit 0 with the same module, exit 1 with each
 * divergence named when the handler changed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, stopServer, useBuiltCli, useServers } from './helpers.js';

const cli = useBuiltCli();
const root = mkdtempSync(path.join(tmpdir(), 'txlog-cli-client-'));
const startServer = useServers(cli);
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Where nothing listens: connecting is refused at once. */
const unreachable = '127.0.0.1:1';

function json(stdout: string): unknown {
  return JSON.parse(stdout.trim()) as unknown;
}

describe('txlog append, read, exec and status against a lone server', () => {
  it('appends with expected versions, reads back, and runs a repeated request once', async () => {
    const { address } = await startServer(path.join(root, 'lone'));
    const event = JSON.stringify({ type: 'Placed', data: { n: 1 } });

    const first = await runCli(cli(), ['append', '--servers', address, 'orders-1', event, '--expected-version', '-1']);
    expect(first.stderr).toBe('');
    expect(first.exitCode).toBe(0);
    expect(json(first.stdout)).toEqual({ stream: 'orders-1', version: 0, position: 0 });

    const conflict = await runCli(cli(), ['append', '--servers', address, 'orders-1', event, '--expected-version', '-1']);
    expect(conflict.exitCode).toBe(1);
    expect(conflict.stderr).toMatch(/^txlog: WRONG_EXPECTED_VERSION: .*\n$/);
    const named = await runCli(cli(), ['append', '--servers', address, 'orders-1', event, '--expected-version', 'no_stream']);
    expect(named.stderr).toMatch(/^txlog: WRONG_EXPECTED_VERSION: .*\n$/);
    const misspelt = await runCli(cli(), ['append', '--servers', address, 'orders-1', event, '--expected-version', 'nostream']);
    expect(misspelt.exitCode).toBe(2);

    const read = await runCli(cli(), ['read', '--servers', address, 'orders-1']);
    expect(read.exitCode).toBe(0);
    expect(json(read.stdout)).toMatchObject({ version: 0, events: [{ stream: 'orders-1', version: 0, type: 'Placed', data: { n: 1 } }] });

    const args = JSON.stringify({ stream: 'once', events: [{ type: 'Counted' }] });
    const request = ['exec', '--servers', address, '--client-id', 'cli-client', '--request-id', '1', 'append', args];
    const executed = await runCli(cli(), request);
    const repeated = await runCli(cli(), request);
    expect(executed.exitCode).toBe(0);
    expect(repeated.exitCode).toBe(0);
    expect(json(repeated.stdout)).toEqual(json(executed.stdout));
    const once = await runCli(cli(), ['read', '--servers', address, 'once']);
    expect((json(once.stdout) as { events: unknown[] }).events).toHaveLength(1);
  });

  it('reports each node in status, and exits 4 when no node answers', async () => {
    const { address } = await startServer(path.join(root, 'status'));
    const status = await runCli(cli(), ['status', '--servers', `${address},${unreachable}`, '--json', '--timeout-ms', '2000']);
    expect(status.exitCode).toBe(0);
    const [reachable, gone] = json(status.stdout) as Array<{ server: string; status?: Record<string, unknown>; error?: { code: string } }>;
    expect(reachable!.server).toBe(address);
    expect(reachable!.status).toMatchObject({ role: 'primary', alone: true });
    expect(gone!.server).toBe(unreachable);
    expect(gone!.error?.code).toBeDefined();

    const table = await runCli(cli(), ['status', '--servers', address]);
    expect(table.stdout).toMatch(/primary/);

    const noPrimary = await runCli(cli(), ['read', '--servers', unreachable, 'orders-1', '--timeout-ms', '1000']);
    expect(noPrimary.exitCode).toBe(4);
    expect(noPrimary.stderr).toMatch(/^txlog: NOT_PRIMARY: /);
  });

  it('refuses bad input with the usage exit code', async () => {
    for (const args of [
      ['exec', '--servers', unreachable, 'append', '{not json'],
      ['append', '--servers', unreachable, 'stream-only'],
      ['exec', 'append'],
      ['exec', '--servers', unreachable, '--request-id', '3', 'append'],
      ['read', '--servers', unreachable, 's', '--max-count', 'many'],
    ]) {
      const result = await runCli(cli(), args);
      expect(result.exitCode, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(/^txlog: USAGE: /);
    }
  });
});

describe('txlog replay', () => {
  const serviceSource = (greeting: string): string => `export default {
  name: 'greeter',
  commands: {
    async greet(ctx, { name }) {
      const stamp = ctx.now();
      ctx.append('greetings', [{ type: 'Greeted', data: { name, stamp } }]);
      return '${greeting}, ' + name;
    },
  },
};
`;

  it('finds no divergence with the same service, and names each one when the handler changed', async () => {
    const dir = path.join(root, 'replay');
    const original = path.join(root, 'greeter.mjs');
    const changed = path.join(root, 'greeter-changed.mjs');
    writeFileSync(original, serviceSource('hello'));
    writeFileSync(changed, serviceSource('goodbye'));
    const { child, address } = await startServer(dir, ['--service', original]);
    for (const name of ['ada', 'alan']) {
      const result = await runCli(cli(), ['exec', '--servers', address, 'greet', JSON.stringify({ name })]);
      expect(result.exitCode).toBe(0);
      expect(json(result.stdout)).toBe(`hello, ${name}`);
    }
    await stopServer(child);

    const same = await runCli(cli(), ['replay', dir, '--service', original, '--json']);
    expect(same.exitCode).toBe(0);
    expect(json(same.stdout)).toMatchObject({ commits: 2, divergences: [] });

    const different = await runCli(cli(), ['replay', dir, '--service', changed]);
    expect(different.exitCode).toBe(1);
    expect(different.stdout.match(/^divergence at LSN \d+: greet /gm)).toHaveLength(2);
    expect(different.stdout).toMatch(/2 commits replayed, 2 divergences/);

    const missing = await runCli(cli(), ['replay', dir]);
    expect(missing.exitCode).toBe(2);
  });
});
