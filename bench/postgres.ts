/**
 * PostgreSQL with a synchronous streaming standby on loopback, the replicated peer. Only run
 * with `txlog bench --with-postgres`, and only where the server binaries are installed
 * (`/usr/lib/postgresql/<version>/bin`); the bench never installs them. Both clusters live in a
 * fresh temporary directory and are stopped and removed afterwards. PostgreSQL refuses to run
 * as root, so as root the clusters run as the `postgres` user (via `runuser`).
 *
 * Durability: `fsync=on`, `synchronous_commit=on`, `synchronous_standby_names='*'`: a COMMIT
 * returns once the primary flushed its WAL *and* the standby flushed it too (remote flush),
 * which is stronger than txlog's backup acknowledgement (in the backup's memory).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { encodePayload } from '../wal/index.js';
import type { Transaction } from './load.js';
import type { PeerSubject } from './peers.js';
import type { BenchEvent } from './txlog-subjects.js';

/** The newest installed server's bin directory, or undefined. */
export function findPostgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return undefined;
  const versions = fs
    .readdirSync(root)
    .filter((name) => fs.existsSync(path.join(root, name, 'bin', 'initdb')) && fs.existsSync(path.join(root, name, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : path.join(root, versions[0], 'bin');
}

/** A port the OS had free a moment ago (bound to port 0, then released for a server to take). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface PostgresPair {
  /** Opens `connections` client connections and returns the peer subject using them. */
  open(connections: number, event: BenchEvent): Promise<PeerSubject>;
  version: string;
  close(): Promise<void>;
}

interface PgClient {
  connect(): Promise<void>;
  query(config: { name: string; text: string; values: unknown[] }): Promise<unknown>;
  query(text: string): Promise<{ rows: Array<Record<string, unknown>> }>;
  end(): Promise<void>;
}
type PgClientConstructor = new (config: { host: string; port: number; user: string; database: string }) => PgClient;

export async function startPostgresPair(parentDir: string, bin: string, connectionsMax: number): Promise<PostgresPair> {
  const pgModule = (await import('pg')) as unknown as { default: { Client: PgClientConstructor } };
  const Client = pgModule.default.Client;
  const root = fs.mkdtempSync(path.join(parentDir, 'postgres-'));
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    // The bench's own temporary directory is 0700: let the postgres user through it (not read it).
    fs.chmodSync(parentDir, 0o711);
    execFileSync('chown', ['-R', 'postgres:postgres', root]);
  }
  const run = (tool: string, args: string[]): string => {
    const command = asRoot ? 'runuser' : path.join(bin, tool);
    const fullArgs = asRoot ? ['-u', 'postgres', '--', path.join(bin, tool), ...args] : args;
    const result = spawnSync(command, fullArgs, { encoding: 'utf8', cwd: root });
    if (result.status !== 0) throw new Error(`${tool} ${args.join(' ')} failed: ${result.stderr}${result.stdout}`);
    return result.stdout;
  };
  const primaryDir = path.join(root, 'primary');
  const standbyDir = path.join(root, 'standby');
  const primaryPort = await freePort();
  const standbyPort = await freePort();
  const started: string[] = [];
  const stop = (): void => {
    for (const dir of started.reverse()) {
      try {
        run('pg_ctl', ['-D', dir, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // Already stopped.
      }
    }
    fs.rmSync(root, { recursive: true, force: true });
  };
  try {
    run('initdb', ['-D', primaryDir, '-U', 'bench', '--auth=trust', '--no-sync', '-E', 'UTF8']);
    fs.appendFileSync(
      path.join(primaryDir, 'postgresql.conf'),
      [
        `port = ${primaryPort}`,
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${root}'`,
        `max_connections = ${connectionsMax + 20}`,
        'wal_level = replica',
        'max_wal_senders = 4',
        'fsync = on',
        'synchronous_commit = on',
        "synchronous_standby_names = '*'",
        'shared_buffers = 128MB',
        '',
      ].join('\n'),
    );
    run('pg_ctl', ['-D', primaryDir, '-l', path.join(root, 'primary.log'), '-w', 'start']);
    started.push(primaryDir);
    run('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'bench', '-D', standbyDir, '-R', '-X', 'stream']);
    fs.appendFileSync(path.join(standbyDir, 'postgresql.conf'), `port = ${standbyPort}\n`);
    run('pg_ctl', ['-D', standbyDir, '-l', path.join(root, 'standby.log'), '-w', 'start']);
    started.push(standbyDir);
    const admin = new Client({ host: '127.0.0.1', port: primaryPort, user: 'bench', database: 'postgres' });
    await admin.connect();
    try {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const { rows } = await admin.query("SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'");
        if (rows.some((row) => row['sync_state'] === 'sync')) break;
        if (Date.now() > deadline) throw new Error('the standby did not become synchronous in 30 s');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await admin.query('CREATE TABLE events (stream TEXT NOT NULL, version INTEGER NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (stream, version))');
    } finally {
      await admin.end();
    }
  } catch (error) {
    stop();
    throw error;
  }
  const version = run('postgres', ['--version']).trim();
  let generation = 0;
  return {
    version,
    open: async (connections, event) => {
      const clients: PgClient[] = [];
      for (let index = 0; index < connections; index++) {
        const client = new Client({ host: '127.0.0.1', port: primaryPort, user: 'bench', database: 'postgres' });
        await client.connect();
        clients.push(client);
      }
      generation += 1;
      const prefix = `g${generation}-stream-`;
      const data = encodePayload(event);
      const versions: number[] = [];
      const transaction: Transaction = async (worker) => {
        const version = versions[worker] ?? 0;
        versions[worker] = version + 1;
        await clients[worker % clients.length]!.query({
          name: 'insert-event',
          text: 'INSERT INTO events (stream, version, data) VALUES ($1, $2, $3)',
          values: [`${prefix}${worker}`, version, data],
        });
      };
      return {
        durability: 'fsync=on, synchronous_commit=on, a synchronous standby: COMMIT returns after the primary and the standby flushed',
        transaction,
        close: async () => {
          await Promise.all(clients.map((client) => client.end()));
        },
      };
    },
    close: async () => stop(),
  };
}
