/**
 * `txlog backup`: a consistent copy of a store that is itself a store directory (opening it is
 * the restore), with a `manifest.json` written last.
 *
 * - `--dir STORE --out DIR`: the store's files are read from this process. A store that another
 *   process runs gives its WAL only (its state is rebuilt on restore; `engine/backup.ts` says
 *   why LMDB is not opened beside its writer), with a note on stderr.
 * - `--servers H:P --out DIR`: the node at H:P writes the backup of its own store to DIR on its
 *   own machine (one request; the data never crosses the network, so the copy is as safe as the
 *   node's disk and costs no wire bandwidth). DIR must be absolute.
 * - `--verify DIR`: checks a backup against its manifest (exit 3 when it differs, 2 when it is
 *   not a complete backup).
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { checkPositionals, exitCodes, parseCommandArgs, parseIntegerFlag, usageError } from './common.js';
import { startProgress, type Progress } from './progress.js';
import { readSecret, splitList } from './service-loader.js';
import { tlsFilesFromFlags, tlsFlagOptions } from './tls-flags.js';

export const backupHelp = `Usage: txlog backup --dir STORE --out DIR
       txlog backup --servers H:P[,H:P...] --out DIR [--secret-file F] [--cluster-id ID] [--timeout-ms N]
                    [--tls-cert F --tls-key F --tls-ca F]
       txlog backup --verify DIR

Writes a consistent copy of a store to DIR (which must not exist, or be empty): the state as of
one snapshot, the WAL to its last whole record (LSN in the manifest), and manifest.json last.
Opening DIR as a store (openStore, txlog serve --dir DIR) is the restore.

  --dir STORE          a store directory, closed or in use by a running process (then its
                       WAL alone is copied, and opening the backup rebuilds the state from it)
  --servers H:P        ask a running node (the first that answers, whatever its role) to
                       back up its own store; DIR is a path on that node's machine and must
                       be absolute
  --out DIR            where the backup goes
  --verify DIR         check a backup against its manifest's checksums
  --timeout-ms N       with --servers, how long to wait for the node (default 3600000)
  --tls-cert F, --tls-key F, --tls-ca F
                       with --servers, for a cluster with certificates: as txlog exec
  -h, --help           show this help

Prints one JSON line: {"event":"backup", out, lsn, epoch, stateLsn, files}.`;

const backupOptions = {
  dir: { type: 'string' },
  servers: { type: 'string' },
  out: { type: 'string' },
  verify: { type: 'string' },
  'secret-file': { type: 'string' },
  ...tlsFlagOptions,
  'cluster-id': { type: 'string' },
  'timeout-ms': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

interface ManifestSummary {
  lsn: number;
  epoch: number;
  stateLsn: number | null;
  files: unknown[];
}

export async function runBackup(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('backup', () => parseArgs({ args, options: backupOptions, allowPositionals: true, strict: true }));
  if (values.help === true) {
    process.stdout.write(`${backupHelp}\n`);
    return exitCodes.done;
  }
  checkPositionals('backup', positionals, [], 0);
  const sources = [values.dir, values.servers, values.verify].filter((value) => value !== undefined);
  if (sources.length !== 1) throw usageError('give exactly one of --dir, --servers or --verify', 'backup');
  if (values.verify !== undefined) {
    if (values.out !== undefined) throw usageError('--verify takes no --out', 'backup');
    const { verifyBackup } = await import('../engine/backup-manifest.js');
    const manifest = await verifyBackup(values.verify);
    print('verified', values.verify, manifest);
    return exitCodes.done;
  }
  if (values.out === undefined) throw usageError('--out is required', 'backup');
  if (values.servers === undefined && Object.keys(tlsFlagOptions).some((flag) => flag in values)) {
    throw usageError('--tls-cert, --tls-key and --tls-ca go with --servers', 'backup');
  }
  const manifest = values.dir !== undefined ? await backupDirectory(values.dir, values.out) : await backupFromNode(values, values.out);
  print('backup', values.out, manifest);
  return exitCodes.done;
}

async function backupDirectory(dir: string, out: string): Promise<ManifestSummary> {
  const { backupStoreDirectory } = await import('../engine/backup.js');
  let progress: Progress | undefined;
  let drawnBytes = 0;
  try {
    return await backupStoreDirectory(dir, out, {
      log: (message) => process.stderr.write(`txlog backup: ${message}\n`),
      onProgress: ({ phase, copiedBytes, totalBytes }) => {
        if (phase !== 'wal') return;
        progress ??= startProgress('backup', totalBytes);
        progress.advance(copiedBytes - drawnBytes);
        drawnBytes = copiedBytes;
      },
    });
  } finally {
    progress?.done();
  }
}

async function backupFromNode(values: Record<string, string | boolean | undefined>, out: string): Promise<ManifestSummary> {
  if (!path.isAbsolute(out)) throw usageError('with --servers, --out must be an absolute path (on the node\'s machine)', 'backup');
  const servers = splitList(values['servers'] as string);
  if (servers.length === 0) throw usageError('--servers is required', 'backup');
  const timeout = values['timeout-ms'];
  const deadlineMs = typeof timeout === 'string' ? parseIntegerFlag('backup', '--timeout-ms', timeout, 1, 86_400_000) : 3_600_000;
  const { connect } = await import('../replication/client.js');
  const options: Parameters<typeof connect>[0] = { servers, clientId: 'txlog-backup', deadlineMs };
  const secret = readSecret(values['secret-file'] as string | undefined);
  if (secret !== undefined) options.secret = secret;
  if (typeof values['cluster-id'] === 'string') options.clusterId = values['cluster-id'];
  const tls = tlsFilesFromFlags('backup', values, 'client');
  if (tls !== undefined) options.tls = tls;
  const client = await connect(options);
  try {
    return (await client.backup(out, deadlineMs)) as ManifestSummary;
  } finally {
    await client.close();
  }
}

function print(event: string, out: string, manifest: ManifestSummary): void {
  const line = { event, out, lsn: manifest.lsn, epoch: manifest.epoch, stateLsn: manifest.stateLsn, files: manifest.files.length };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
