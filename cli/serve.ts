/**
 * `txlog serve`: one node of a pair (or, without --peer, a lone server). It prints one JSON line
 * on stdout when it listens (`{"event":"listening",...}`, with the ports actually bound), logs to
 * stderr, and closes cleanly on SIGTERM or SIGINT.
 */
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import type { MetricsServer, PrometheusMetrics } from '../replication/metrics.js';
import { startNode } from '../replication/node.js';
import { gcNodeArgs } from '../replication/spawn-node.js';
import { parseAddress } from '../replication/protocol.js';
import { parseArbiterUrl, resolveArbiterOptions } from '../replication/arbiter.js';
import type { NodeArbiterOptions, NodeOptions } from '../replication/options.js';
import { TxlogError } from '../wal/errors.js';
import { fsyncPolicies, type FsyncPolicy } from '../wal/options.js';
import { checkPositionals, exitCodes, parseCommandArgs, parseIntegerFlag, usageError } from './common.js';
import { loadService, readSecret, splitList } from './service-loader.js';
import { tlsFilesFromFlags, tlsFlagOptions, tlsFlagsHelp } from './tls-flags.js';

export const serveHelp = `Usage: txlog serve --dir D --listen H:P[,H:P...] [--peer H:P[,H:P...]]
                   [--role primary|backup] [--service FILE] [--fsync always|interval|never]
                   [--secret-file F] [--tls-cert F --tls-key F --tls-ca F]
                   [--cluster-id ID] [--node-id ID]
                   [--heartbeat-timeout-ms N] [--replica-timeout-ms N]
                   [--on-replica-lost fail|continue] [--force-primary] [--expect-peer]
                   [--segment-bytes N] [--metrics-listen H:P]
                   [--arbiter etcd://HOST:PORT[,HOST:PORT]/PREFIX
                   [--arbiter-lease-ttl-ms N] [--arbiter-renew-interval-ms N]
                   [--arbiter-margin-ms N] [--arbiter-request-timeout-ms N]]

Runs a node. With --peer it is one of a primary/backup pair: several addresses after --listen
and --peer are several replication links. Without --peer it serves alone (no replica: a
machine loss loses what its fsync policy allows).

  --dir D                 the store's directory (created if missing)
  --listen H:P            addresses to listen on; port 0 picks a free port (printed on stdout)
  --peer H:P              the other node's addresses
  --role R                the role taken when both nodes start fresh (default primary)
  --service FILE          an ESM module whose default export is the service; without it only
                          the built-in commands (append) run
  --fsync P               always (default), interval or never: see README "Durability"
  --secret-file F         the shared secret (else TXLOG_SECRET); without one (and without
                          --tls-*), loopback only; with --tls-* too, it is proven inside TLS
${tlsFlagsHelp}
  --on-replica-lost P     fail (default: writes fail with REPLICA_UNAVAILABLE while no backup
                          is in sync) or continue (commit alone; unsafe under a partition)
  --force-primary         become primary at once, without waiting for the peer
  --arbiter URL           etcd decides who leads (needs --node-id): a node leads only while it
                          holds etcd's leader lease, a lost node needs no operator, and
                          --on-replica-lost continue is safe; a primary that cannot renew its
                          lease stops acknowledging (README "Durability")
  --arbiter-lease-ttl-ms  the leader lease, whole seconds (default 10000); with
                          --arbiter-renew-interval-ms (2000), --arbiter-margin-ms (2000) and
                          --arbiter-request-timeout-ms (2000): see replication/arbiter.ts
  --expect-peer           no --peer, but a peer will dial in (its --peer names this node):
                          wait for it instead of serving alone
  --metrics-listen H:P    serve Prometheus metrics at http://H:P/metrics (port 0 picks a
                          free one, printed on stdout as "metrics"); needs prom-client
  --exit-on-stdin-eof     close when standard input ends: a parent that starts this node with
                          a pipe (tests, bench, demo) takes it down even when it is killed
  -h, --help              show this help`;

const serveOptions = {
  dir: { type: 'string' },
  listen: { type: 'string' },
  peer: { type: 'string' },
  role: { type: 'string' },
  service: { type: 'string' },
  fsync: { type: 'string' },
  'secret-file': { type: 'string' },
  ...tlsFlagOptions,
  'cluster-id': { type: 'string' },
  'node-id': { type: 'string' },
  'heartbeat-interval-ms': { type: 'string' },
  'heartbeat-timeout-ms': { type: 'string' },
  'replica-timeout-ms': { type: 'string' },
  'on-replica-lost': { type: 'string' },
  'force-primary': { type: 'boolean' },
  'expect-peer': { type: 'boolean' },
  'exit-on-stdin-eof': { type: 'boolean' },
  'segment-bytes': { type: 'string' },
  'metrics-listen': { type: 'string' },
  arbiter: { type: 'string' },
  'arbiter-lease-ttl-ms': { type: 'string' },
  'arbiter-renew-interval-ms': { type: 'string' },
  'arbiter-margin-ms': { type: 'string' },
  'arbiter-request-timeout-ms': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type ArbiterFlag = 'arbiter-lease-ttl-ms' | 'arbiter-renew-interval-ms' | 'arbiter-margin-ms' | 'arbiter-request-timeout-ms';

/** `--arbiter URL` and its timing flags; a bad URL or timings that break their relations are USAGE (exit 2). */
function arbiterOptions(url: string, integer: (flag: ArbiterFlag, min: number, max: number) => number | undefined): NodeArbiterOptions {
  const options: NodeArbiterOptions = { ...parseArbiterUrl(url) };
  const timing = {
    leaseTtlMs: integer('arbiter-lease-ttl-ms', 2000, 3_600_000),
    renewIntervalMs: integer('arbiter-renew-interval-ms', 1, 3_600_000),
    marginMs: integer('arbiter-margin-ms', 1, 3_600_000),
    requestTimeoutMs: integer('arbiter-request-timeout-ms', 1, 3_600_000),
  };
  for (const [key, value] of Object.entries(timing)) if (value !== undefined) options[key as keyof typeof timing] = value;
  try {
    resolveArbiterOptions(options);
  } catch (error) {
    if (error instanceof TxlogError) throw usageError(`--arbiter: ${error.message}`, 'serve');
    throw error;
  }
  return options;
}

export async function runServe(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('serve', () =>
    parseArgs({ args, options: serveOptions, allowPositionals: true, strict: true }),
  );
  if (values.help === true) {
    process.stdout.write(`${serveHelp}\n`);
    return exitCodes.done;
  }
  checkPositionals('serve', positionals, [], 0);
  if (values.dir === undefined) throw usageError('--dir is required', 'serve');
  const listen = splitList(values.listen);
  if (listen.length === 0) throw usageError('--listen is required', 'serve');
  const peers = splitList(values.peer);
  const role = values.role ?? 'primary';
  if (role !== 'primary' && role !== 'backup') throw usageError('--role must be primary or backup', 'serve');
  const fsync = values.fsync ?? 'always';
  if (!(fsyncPolicies as readonly string[]).includes(fsync)) throw usageError('--fsync must be always, interval or never', 'serve');
  const onReplicaLost = values['on-replica-lost'] ?? 'fail';
  if (onReplicaLost !== 'fail' && onReplicaLost !== 'continue') {
    throw usageError('--on-replica-lost must be fail or continue', 'serve');
  }
  const options: NodeOptions = {
    dir: values.dir,
    listen,
    peers,
    role,
    fsync: fsync as FsyncPolicy,
    onReplicaLost,
    forcePrimary: values['force-primary'] === true || (peers.length === 0 && values['expect-peer'] !== true),
  };
  const integer = (flag: keyof typeof values, min: number, max: number): number | undefined => {
    const value = values[flag];
    return typeof value === 'string' ? parseIntegerFlag('serve', `--${flag}`, value, min, max) : undefined;
  };
  const heartbeatIntervalMs = integer('heartbeat-interval-ms', 1, 60_000);
  const heartbeatTimeoutMs = integer('heartbeat-timeout-ms', 2, 600_000);
  const replicaTimeoutMs = integer('replica-timeout-ms', 1, 3_600_000);
  const segmentBytes = integer('segment-bytes', 4096, 2 ** 32 - 1);
  if (heartbeatIntervalMs !== undefined) options.heartbeatIntervalMs = heartbeatIntervalMs;
  if (heartbeatTimeoutMs !== undefined) options.heartbeatTimeoutMs = heartbeatTimeoutMs;
  if (replicaTimeoutMs !== undefined) options.replicaTimeoutMs = replicaTimeoutMs;
  if (segmentBytes !== undefined) options.segmentBytes = segmentBytes;
  if (values['cluster-id'] !== undefined) options.clusterId = values['cluster-id'];
  if (values['node-id'] !== undefined) options.nodeId = values['node-id'];
  if (values.arbiter !== undefined) options.arbiter = arbiterOptions(values.arbiter, integer);
  else if (Object.keys(values).some((flag) => flag.startsWith('arbiter-'))) throw usageError('--arbiter-* flags need --arbiter', 'serve');
  if (options.arbiter !== undefined && options.nodeId === undefined) {
    throw usageError('--arbiter needs --node-id: the in-sync set in etcd names nodes across restarts', 'serve');
  }
  const secret = readSecret(values['secret-file']);
  if (secret !== undefined) options.secret = secret;
  const tls = tlsFilesFromFlags('serve', values, 'node');
  if (tls !== undefined) options.tls = tls;
  if (values.service !== undefined) options.service = await loadService(values.service);
  if (peers.length === 0 && values['expect-peer'] !== true) {
    process.stderr.write('txlog serve: no --peer: serving alone, without a replica\n');
  }
  // Flags only node's command line can set (spawn-node.ts `gcNodeArgs`): say which are missing.
  const nodeArgsGiven = [...process.execArgv, ...(process.env['NODE_OPTIONS'] ?? '').split(/\s+/)];
  const gcArgs = gcNodeArgs(os.availableParallelism() === 1, nodeArgsGiven);
  if (gcArgs.length > 0) {
    process.stderr.write(`txlog serve: faster with node ${gcArgs.join(' ')} (start it as 'node ${gcArgs.join(' ')} ${process.argv[1] ?? 'txlog'} serve ...'; README, "Measured")\n`);
  }

  // Metrics listen before the node starts: a port in use fails here, before the store is opened.
  const metrics = values['metrics-listen'] === undefined ? undefined : await startMetrics(values['metrics-listen']);
  if (metrics !== undefined) options.metrics = metrics.sink;
  let node: Awaited<ReturnType<typeof startNode>>;
  try {
    node = await startNode(options);
  } catch (error) {
    await metrics?.server.close();
    throw error;
  }
  const started = node;
  metrics?.sink.observeNode(() => started.status());
  const listening: Record<string, unknown> = { event: 'listening', addresses: node.addresses, pid: process.pid };
  if (metrics !== undefined) listening['metrics'] = metrics.server.address;
  process.stdout.write(`${JSON.stringify(listening)}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    // A node whose store failed closes itself (so its peer can take over): the process ends too.
    void node.whenClosed.then(stop);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    if (values['exit-on-stdin-eof'] === true) {
      process.stdin.once('end', stop);
      process.stdin.once('error', stop);
      process.stdin.resume();
    }
  });
  await node.close();
  await metrics?.server.close();
  // A stdin still being read would keep the process alive after the close.
  if (values['exit-on-stdin-eof'] === true) process.stdin.destroy();
  const failure = node.store.failedWith;
  if (failure !== undefined) {
    process.stderr.write(`txlog: ${failure.code}: the store failed: ${failure.message}\n`);
    return exitCodes.failed;
  }
  return exitCodes.done;
}

async function startMetrics(address: string): Promise<{ sink: PrometheusMetrics; server: MetricsServer }> {
  let host: string;
  let port: number;
  try {
    ({ host, port } = parseAddress(address));
  } catch {
    throw usageError(`--metrics-listen ${address} is not host:port`, 'serve');
  }
  const { createPrometheusMetrics, serveMetrics } = await import('../replication/metrics.js');
  const sink = await createPrometheusMetrics();
  return { sink, server: await serveMetrics(sink, host, port) };
}
