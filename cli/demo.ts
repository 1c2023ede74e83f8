/**
 * `txlog demo`: the main job in one command. A primary and a backup start as real processes on
 * loopback; clients run deposits that charge a payment gateway (an external call); the primary
 * is SIGKILLed mid-run; the clients fail over and resend; the old primary comes back and rejoins
 * as backup. Then it checks and prints: transactions acknowledged, lost, applied twice, gateway
 * calls per idempotency key, and the failover time.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect, type Client } from '../replication/client.js';
import { spawnNode, type SpawnedNode } from '../replication/spawn-node.js';
import type { RecordedEvent } from '../engine/service.js';
import { TxlogError } from '../wal/errors.js';
import { checkPositionals, exitCodes, parseCommandArgs, parseIntegerFlag } from './common.js';
import { startPaymentGateway } from './payment-gateway.js';

export const demoHelp = `Usage: txlog demo [--clients N] [--duration-ms N] [--kill-at-ms N] [--accounts N] [--json] [--keep]

Starts a primary and a backup on loopback, runs deposits that call an external payment
gateway, SIGKILLs the primary at --kill-at-ms, lets the clients fail over, restarts the old
primary as the new backup, and checks that no acknowledged transaction was lost or applied
twice and that the gateway charged each idempotency key once.
  --clients N       concurrent clients (default 8)
  --duration-ms N   how long the clients run (default 6000)
  --kill-at-ms N    when the primary is killed (default 2000)
  --accounts N      accounts deposited to (default 20)
  --json            print the report as one JSON document
  --keep            keep the data directories (printed) instead of removing them`;

interface Acknowledged {
  clientId: string;
  chargeId: string;
  atMs: number;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new TxlogError('TIMEOUT', `demo: timed out waiting for ${what}`);
}

async function pairReady(servers: string[]): Promise<boolean> {
  let primaryInSync = false;
  for (const server of servers) {
    const client = await connect({ servers: [server], deadlineMs: 1000, connectTimeoutMs: 500 });
    try {
      const status = await client.status();
      if (status.role === 'primary' && status.inSync && !status.alone) primaryInSync = true;
    } finally {
      await client.close();
    }
  }
  return primaryInSync;
}

export async function runDemo(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('demo', () =>
    parseArgs({
      args,
      options: {
        clients: { type: 'string' },
        'duration-ms': { type: 'string' },
        'kill-at-ms': { type: 'string' },
        accounts: { type: 'string' },
        json: { type: 'boolean' },
        keep: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    }),
  );
  if (values.help === true) {
    process.stdout.write(`${demoHelp}\n`);
    return exitCodes.done;
  }
  checkPositionals('demo', positionals, [], 0);
  const clientCount = values.clients === undefined ? 8 : parseIntegerFlag('demo', '--clients', values.clients, 1, 256);
  const durationMs = values['duration-ms'] === undefined ? 6000 : parseIntegerFlag('demo', '--duration-ms', values['duration-ms'], 100, 600_000);
  const killAtMs = values['kill-at-ms'] === undefined ? 2000 : parseIntegerFlag('demo', '--kill-at-ms', values['kill-at-ms'], 1, durationMs);
  const accounts = values.accounts === undefined ? 20 : parseIntegerFlag('demo', '--accounts', values.accounts, 1, 100_000);
  const say = (line: string): void => {
    if (values.json !== true) process.stdout.write(`${line}\n`);
  };

  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'txlog-demo-'));
  const serviceFile = fileURLToPath(new URL('./demo-service.js', import.meta.url));
  const gateway = await startPaymentGateway({ deduplicate: true });
  const env = { ...process.env, TXLOG_DEMO_GATEWAY: gateway.address };
  const nodes: SpawnedNode[] = [];
  const common = ['--service', serviceFile, '--fsync', 'always', '--segment-bytes', String(8 * 1024 * 1024), '--heartbeat-timeout-ms', '500'];
  try {
    const nodeA = await spawnNode({
      args: ['--dir', path.join(root, 'a'), '--listen', '127.0.0.1:0', '--expect-peer', '--role', 'primary', '--node-id', 'A', ...common],
      env,
    });
    nodes.push(nodeA);
    const nodeB = await spawnNode({
      args: ['--dir', path.join(root, 'b'), '--listen', '127.0.0.1:0', '--peer', nodeA.addresses[0]!, '--role', 'backup', '--node-id', 'B', ...common],
      env,
    });
    nodes.push(nodeB);
    const servers = [nodeA.addresses[0]!, nodeB.addresses[0]!];
    await waitFor('the pair to be in sync', () => pairReady(servers), 20_000);
    say(`primary A (pid ${nodeA.pid}) at ${servers[0]}, backup B (pid ${nodeB.pid}) at ${servers[1]}; gateway at ${gateway.address}`);
    say(`running ${clientCount} clients for ${durationMs} ms; killing the primary at ${killAtMs} ms`);

    const acknowledged: Acknowledged[] = [];
    const failures: string[] = [];
    const started = Date.now();
    let killedAtMs: number | undefined;
    const clients: Client[] = await Promise.all(
      Array.from({ length: clientCount }, (_, index) => connect({ servers, clientId: `demo-client-${index}`, deadlineMs: 30_000 })),
    );
    const runClient = async (client: Client, index: number): Promise<void> => {
      let round = 0;
      while (Date.now() - started < durationMs) {
        const account = `${(index * 7 + round++) % accounts}`;
        try {
          const reply = (await client.execute('deposit', { account, amount: 1 + (round % 5) })) as { chargeId: string };
          acknowledged.push({ clientId: client.clientId, chargeId: reply.chargeId, atMs: Date.now() - started });
        } catch (error) {
          failures.push(error instanceof TxlogError ? error.code : String(error));
        }
      }
    };
    const killer = (async () => {
      await new Promise((resolve) => setTimeout(resolve, killAtMs));
      killedAtMs = Date.now() - started;
      await nodeA.kill();
      say(`SIGKILL primary A at ${killedAtMs} ms`);
    })();
    await Promise.all(clients.map((client, index) => runClient(client, index)));
    await killer;

    say('restarting A: it rejoins as the backup of B');
    const nodeA2 = await spawnNode({
      args: ['--dir', path.join(root, 'a'), '--listen', '127.0.0.1:0', '--peer', servers[1]!, '--role', 'primary', '--node-id', 'A', ...common],
      env,
    });
    nodes.push(nodeA2);
    const afterServers = [servers[1]!, nodeA2.addresses[0]!];
    await waitFor('A to rejoin and catch up', () => pairReady(afterServers), 30_000);

    // Check: every acknowledged deposit is on its account exactly once.
    const reader = clients[0]!;
    const events: RecordedEvent[] = [];
    for (let account = 0; account < accounts; account++) {
      let fromVersion = 0;
      for (;;) {
        const slice = await reader.readStream(`account-${account}`, { fromVersion, maxCount: 4096 });
        events.push(...slice.events);
        if (slice.events.length === 0 || fromVersion + slice.events.length > slice.version) break;
        fromVersion += slice.events.length;
      }
    }
    const byCharge = new Map<string, number>();
    const byRequest = new Map<string, number>();
    for (const event of events) {
      const data = event.data as { chargeId: string; clientId: string; requestId: number };
      byCharge.set(data.chargeId, (byCharge.get(data.chargeId) ?? 0) + 1);
      const key = `${data.clientId}/${data.requestId}`;
      byRequest.set(key, (byRequest.get(key) ?? 0) + 1);
    }
    const lost = acknowledged.filter((ack) => !byCharge.has(ack.chargeId)).length;
    const appliedTwice = [...byRequest.values()].filter((count) => count > 1).length;
    const chargedTwice = [...byCharge.values()].filter((count) => count > 1).length;
    const repeatedKeys = [...gateway.requests.values()].filter((count) => count > 1).length;
    const acksBeforeKill = acknowledged.filter((ack) => killedAtMs !== undefined && ack.atMs <= killedAtMs);
    const firstAfter = acknowledged.find((ack) => killedAtMs !== undefined && ack.atMs > killedAtMs);
    const lastBefore = acksBeforeKill[acksBeforeKill.length - 1];
    const failoverMs = firstAfter !== undefined && killedAtMs !== undefined ? firstAfter.atMs - killedAtMs : undefined;
    const statusClient = await connect({ servers: [afterServers[0]!], deadlineMs: 2000 });
    const finalStatus = await statusClient.status();
    await statusClient.close();
    const report = {
      acknowledged: acknowledged.length,
      failedCalls: failures.length,
      failureCodes: [...new Set(failures)],
      eventsOnStreams: events.length,
      lost,
      appliedTwice,
      chargedTwice,
      gatewayCalls: [...gateway.requests.values()].reduce((sum, count) => sum + count, 0),
      gatewayKeys: gateway.requests.size,
      gatewayRepeatedKeys: repeatedKeys,
      killedAtMs,
      lastAckBeforeKillMs: lastBefore?.atMs,
      failoverMs,
      newPrimary: { epoch: finalStatus.epoch, role: finalStatus.role, lastLsn: finalStatus.lastLsn, determinismViolations: finalStatus.determinismViolations },
      dataDirectory: values.keep === true ? root : undefined,
    };
    await Promise.all(clients.map((client) => client.close()));
    if (values.json === true) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } else {
      say('');
      say(`transactions acknowledged:   ${report.acknowledged}`);
      say(`lost:                        ${report.lost}`);
      say(`applied twice:               ${report.appliedTwice}`);
      say(`charges recorded twice:      ${report.chargedTwice}`);
      say(`gateway calls:               ${report.gatewayCalls} for ${report.gatewayKeys} idempotency keys` +
        (repeatedKeys > 0 ? ` (${repeatedKeys} keys called again after the failover, before their result was journaled; the gateway deduplicated them)` : ' (each made once)'));
      say(`failover time:               ${failoverMs === undefined ? 'n/a' : `${failoverMs} ms`} from SIGKILL to the next acknowledged transaction`);
      say(`calls that failed:           ${report.failedCalls}${report.failedCalls > 0 ? ` (${report.failureCodes.join(', ')})` : ''}`);
      say(`new primary:                 B, epoch ${finalStatus.epoch}, last LSN ${finalStatus.lastLsn}; A rejoined as its backup`);
      if (values.keep === true) say(`data kept in ${root}`);
    }
    return lost === 0 && appliedTwice === 0 && chargedTwice === 0 ? exitCodes.done : exitCodes.failed;
  } finally {
    await Promise.all(nodes.map((node) => node.stop().catch(() => undefined)));
    await gateway.close();
    if (values.keep !== true) fs.rmSync(root, { recursive: true, force: true });
  }
}
