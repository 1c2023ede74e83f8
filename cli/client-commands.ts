/**
 * The client subcommands: `exec`, `append` and `status` (and what `read` and `consumers
 * --servers` share with them: the connection flags, connecting, the exit codes). Each connects
 * with the same flags, does one thing, prints JSON on stdout and exits 0, or prints one coded
 * error line and exits 1 (the request failed) or 4 (no primary could be reached).
 */
import { parseArgs } from 'node:util';
import { connect, type Client, type ClientOptions } from '../replication/client.js';
import type { NodeStatus } from '../replication/node.js';
import { TxlogError, txlogError } from '../wal/errors.js';
import { checkPositionals, exitCodes, formatTable, parseCommandArgs, parseIntegerFlag, usageError } from './common.js';
import { readSecret, splitList } from './service-loader.js';
import { tlsFilesFromFlags, tlsFlagOptions, tlsFlagsHelp } from './tls-flags.js';
import type { ExpectedVersion } from '../engine/expected-version.js';

const connectionOptions = {
  servers: { type: 'string' },
  'client-id': { type: 'string' },
  'request-id': { type: 'string' },
  'secret-file': { type: 'string' },
  ...tlsFlagOptions,
  'cluster-id': { type: 'string' },
  'timeout-ms': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const connectionHelp = `  --servers H:P[,H:P...]  every node's address (required)
  --client-id C           the client identity (exactly-once needs the same one on a resend)
  --request-id N          the request id to use (a resend of an earlier request)
  --secret-file F         the shared secret (else TXLOG_SECRET)
${tlsFlagsHelp}
  --cluster-id ID         default txlog
  --timeout-ms N          per-call deadline (default 10000); past it: TIMEOUT, outcome unknown
  -h, --help              show this help`;

export const execHelp = `Usage: txlog exec --servers H:P[,...] [--client-id C] [--request-id N] COMMAND [JSON]

Runs COMMAND with JSON args (default null) exactly once and prints the reply as JSON.
${connectionHelp}`;

export const appendHelp = `Usage: txlog append --servers H:P[,...] STREAM JSON [--expected-version N]

Appends JSON (one event {type, data} or an array of them) to STREAM; prints {stream, version,
position} of the last event. --expected-version: no_stream (or -1) the stream must not exist,
stream_exists (or exists) it has an event, any, or N its last version.
${connectionHelp}`;

export const statusHelp = `Usage: txlog status --servers H:P[,...] [--json]

Asks every node for its role, epoch, last LSN, backup lag, sync state, whether it serves alone,
and determinism violations seen; for a node with an arbiter, one more line: whether etcd answers,
the leader key's holder and its lease, the in-sync set, this node's lease, and why it does not
lead. Exit 4 when no node answers.
${connectionHelp}`;

export type ParsedValues = Record<string, string | boolean | string[] | undefined>;

/** Parses a client command's flags: the connection flags, `--json`, `--help` and `extra`. */
export function parseClientArgs(
  command: string,
  args: string[],
  extra: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {},
): { values: ParsedValues; positionals: string[] } {
  const options = { ...connectionOptions, ...extra };
  return parseCommandArgs(command, () =>
    parseArgs({ args: joinNegativeValues(args, options), options, allowPositionals: true, strict: true }),
  );
}

/**
 * `--expected-version -1` reads as an option followed by another option to parseArgs; join a
 * negative number to the option before it (`--expected-version=-1`) so both spellings work.
 */
function joinNegativeValues(args: readonly string[], options: Record<string, { type: 'string' | 'boolean' }>): string[] {
  const joined: string[] = [];
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    const next = args[index + 1];
    const name = arg.startsWith('--') ? arg.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-\d+$/.test(next)) {
      joined.push(`${arg}=${next}`);
      index += 1;
    } else {
      joined.push(arg);
    }
  }
  return joined;
}

export function text(values: ParsedValues, flag: string): string | undefined {
  const value = values[flag];
  return typeof value === 'string' ? value : undefined;
}

export function clientOptions(command: string, values: ParsedValues, servers: string[]): ClientOptions {
  if (servers.length === 0) throw usageError('--servers is required', command);
  const options: ClientOptions = { servers };
  if (typeof values['client-id'] === 'string') options.clientId = values['client-id'];
  if (typeof values['request-id'] === 'string') {
    if (options.clientId === undefined) throw usageError('--request-id needs --client-id', command);
    options.firstRequestId = parseIntegerFlag(command, '--request-id', values['request-id'], 1, Number.MAX_SAFE_INTEGER);
  }
  if (typeof values['timeout-ms'] === 'string') {
    options.deadlineMs = parseIntegerFlag(command, '--timeout-ms', values['timeout-ms'], 1, 3_600_000);
    options.connectTimeoutMs = Math.min(options.deadlineMs, 1000);
  }
  if (typeof values['cluster-id'] === 'string') options.clusterId = values['cluster-id'];
  const secret = readSecret(typeof values['secret-file'] === 'string' ? values['secret-file'] : undefined);
  if (secret !== undefined) options.secret = secret;
  const tls = tlsFilesFromFlags(command, values, 'client');
  if (tls !== undefined) options.tls = tls;
  return options;
}

function parseJson(command: string, text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw usageError(`${what} is not valid JSON: ${error instanceof Error ? error.message : String(error)}`, command);
  }
}

/** Connects, runs `action`, prints its value as JSON, closes (see `withConnection`). */
function withClient(options: ClientOptions, action: (client: Client) => Promise<unknown>): Promise<number> {
  return withConnection(options, async (client) => {
    process.stdout.write(`${JSON.stringify(await action(client))}\n`);
    return exitCodes.done;
  });
}

/** Connects, runs `action`, closes; a connection that never found a primary becomes exit 4. */
export async function withConnection(options: ClientOptions, action: (client: Client) => Promise<number>): Promise<number> {
  let client: Client;
  try {
    client = await connect(options);
  } catch (error) {
    throw asUnreachable(error);
  }
  try {
    return await action(client);
  } finally {
    await client.close();
  }
}

function asUnreachable(error: unknown): unknown {
  if (error instanceof TxlogError && error.code !== 'UNAUTHORIZED') {
    return txlogError('NOT_PRIMARY', `no node reachable: ${error.message}`, error.details, error);
  }
  return error;
}

export async function runExec(args: string[]): Promise<number> {
  const { values, positionals } = parseClientArgs('exec', args);
  if (values['help'] === true) return help(execHelp);
  checkPositionals('exec', positionals, ['COMMAND', 'JSON'], 1);
  const options = clientOptions('exec', values, splitList(text(values, 'servers')));
  const argsValue = positionals[1] === undefined ? null : parseJson('exec', positionals[1], 'JSON');
  return withClient(options, (client) => client.execute(positionals[0]!, argsValue));
}

const expectedVersionNames = ['no_stream', 'stream_exists', 'exists', 'any'] as const;

export async function runAppend(args: string[]): Promise<number> {
  const { values, positionals } = parseClientArgs('append', args, { 'expected-version': { type: 'string' } });
  if (values['help'] === true) return help(appendHelp);
  checkPositionals('append', positionals, ['STREAM', 'JSON'], 2);
  const options = clientOptions('append', values, splitList(text(values, 'servers')));
  const parsed = parseJson('append', positionals[1]!, 'JSON');
  const events = Array.isArray(parsed) ? parsed : [parsed];
  const appendOptions: { expectedVersion?: ExpectedVersion } = {};
  const expected = text(values, 'expected-version');
  if (typeof expected === 'string') {
    const named = expectedVersionNames.find((name) => name === expected);
    appendOptions.expectedVersion = named ?? (expected === '-1' ? -1 : parseIntegerFlag('append', '--expected-version', expected, 0, Number.MAX_SAFE_INTEGER));
  }
  return withClient(options, (client) => client.append(positionals[0]!, events as never, appendOptions));
}

export async function runStatus(args: string[]): Promise<number> {
  const { values, positionals } = parseClientArgs('status', args);
  if (values['help'] === true) return help(statusHelp);
  checkPositionals('status', positionals, [], 0);
  const servers = splitList(text(values, 'servers'));
  if (servers.length === 0) throw usageError('--servers is required', 'status');
  const results = await Promise.all(
    servers.map(async (server) => {
      const options = clientOptions('status', values, [server]);
      options.deadlineMs = options.deadlineMs ?? 2000;
      try {
        const client = await connect(options);
        try {
          return { server, status: await client.status() };
        } finally {
          await client.close();
        }
      } catch (error) {
        return { server, error: error instanceof TxlogError ? error.toJSON() : { code: 'IO_ERROR', message: String(error) } };
      }
    }),
  );
  if (values['json'] === true) process.stdout.write(`${JSON.stringify(results)}\n`);
  else printStatusTable(results);
  return results.some((result) => 'status' in result) ? exitCodes.done : exitCodes.noPrimary;
}

function printStatusTable(results: Array<{ server: string; status?: NodeStatus; error?: { code: string; message: string } }>): void {
  const rows: string[][] = [['server', 'role', 'epoch', 'last LSN', 'backup lag', 'in sync', 'alone', 'violations']];
  for (const result of results) {
    const status = result.status;
    if (status === undefined) {
      rows.push([result.server, `unreachable (${result.error?.code ?? '?'})`, '', '', '', '', '', '']);
      continue;
    }
    rows.push([
      result.server,
      status.role,
      String(status.epoch),
      String(status.lastLsn),
      status.role === 'primary' ? String(status.backupLagRecords) : '',
      status.inSync ? 'yes' : 'no',
      status.role === 'primary' ? (status.alone ? 'ALONE' : 'paired') : '',
      String(status.determinismViolations),
    ]);
  }
  process.stdout.write(`${formatTable(rows).join('\n')}\n`);
  for (const result of results) {
    if (result.status?.arbiter !== undefined) process.stdout.write(`${arbiterLine(result.server, result.status.arbiter)}\n`);
  }
}

/** One line per node with an arbiter: etcd's view and this node's own. */
function arbiterLine(server: string, arbiter: NonNullable<NodeStatus['arbiter']>): string {
  const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
  const etcd = arbiter.reachable
    ? [
        arbiter.leader === undefined ? 'no leader' : `leader ${arbiter.leader.nodeId} epoch ${arbiter.leader.epoch} (lease ${seconds(arbiter.leader.leaseRemainingMs)} left)`,
        `in-sync [${(arbiter.inSync?.members ?? []).join(', ')}]`,
      ].join(', ')
    : `UNREACHABLE (${arbiter.error ?? 'no answer'})`;
  const self = arbiter.leading ? `leading, lease certainly valid ${seconds(arbiter.leaseValidForMs)}` : 'not leading';
  const waiting = arbiter.waiting === undefined ? '' : `; ${arbiter.waiting}`;
  return `arbiter seen from ${server}: ${etcd}; this node: ${self}${waiting} (checked ${seconds(arbiter.checkedAgoMs)} ago)`;
}

export function help(text: string): number {
  process.stdout.write(`${text}\n`);
  return exitCodes.done;
}
