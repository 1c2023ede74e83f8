#!/usr/bin/env node
/**
 * The `txlog` command. Subcommands come from one table: adding one is one entry here and one
 * file exporting its `CommandRun`, loaded only when that subcommand runs (so `txlog inspect`
 * never loads the replication or LMDB code).
 *
 * Every `TxlogError` that reaches the top is one line, `txlog: <CODE>: <message>`, and its exit
 * code comes from `exitCodeOf` (common.ts). Anything else is a bug: its stack is printed.
 */
import { TxlogError, txlogError } from '../wal/errors.js';
import { exitCodeOf, exitCodes, printError, usageError, type CommandRun } from './common.js';

interface CommandEntry {
  /** One line for `txlog --help`. */
  summary: string;
  load(): Promise<CommandRun>;
}

const commands: Record<string, CommandEntry> = {
  inspect: {
    summary: "summarise, list or verify a store's write-ahead log (read-only)",
    load: async () => (await import('./inspect.js')).runInspect,
  },
  serve: {
    summary: 'run a node: one of a primary/backup pair, or a lone server',
    load: async () => (await import('./serve.js')).runServe,
  },
  exec: {
    summary: 'run a command exactly once and print its reply',
    load: async () => (await import('./client-commands.js')).runExec,
  },
  append: {
    summary: 'append events to a stream',
    load: async () => (await import('./client-commands.js')).runAppend,
  },
  read: {
    summary: 'read a stream or the whole log, either way, filtered',
    load: async () => (await import('./read.js')).runRead,
  },
  status: {
    summary: "each node's role, epoch, last LSN, backup lag, sync state and violations",
    load: async () => (await import('./client-commands.js')).runStatus,
  },
  backup: {
    summary: 'write a consistent copy of a store (closed, running, or a node), or verify one',
    load: async () => (await import('./backup.js')).runBackup,
  },
  consumers: {
    summary: 'list the durable consumers with their positions and lag, from a store directory or a running pair',
    load: async () => (await import('./consumers.js')).runConsumers,
  },
  replay: {
    summary: 're-run every recorded transaction through a service and report divergences',
    load: async () => (await import('./replay.js')).runReplay,
  },
  bench: {
    summary: 'commit latency and throughput beside the floors of this machine and the peers (lmdb, SQLite, PostgreSQL)',
    load: async () => (await import('./bench.js')).runBench,
  },
  demo: {
    summary: 'start a pair, run deposits, kill the primary, check nothing was lost or doubled',
    load: async () => (await import('./demo.js')).runDemo,
  },
};

function mainHelp(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  const list = Object.entries(commands)
    .map(([name, entry]) => `  ${name.padEnd(width)}  ${entry.summary}`)
    .join('\n');
  return `Usage: txlog COMMAND [ARGUMENTS...]

Commands:
${list}

Run 'txlog COMMAND --help' (or 'txlog help COMMAND') for a command's arguments.

Exit codes: 0 done, 1 the request failed, 2 usage, 3 corruption found, 4 no primary reachable.`;
}

export async function main(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    process.stderr.write(`${mainHelp()}\n`);
    return exitCodes.usage;
  }
  if (first === '--help' || first === '-h' || (first === 'help' && rest.length === 0)) {
    process.stdout.write(`${mainHelp()}\n`);
    return exitCodes.done;
  }
  if (first === 'help') return runCommand(rest[0]!, ['--help']);
  if (first.startsWith('-')) throw usageError(`unknown option '${first}' before the command`);
  return runCommand(first, rest);
}

async function runCommand(name: string, args: string[]): Promise<number> {
  const entry = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (entry === undefined) throw usageError(`unknown command '${name}'`);
  const run = await entry.load();
  return run(args);
}

/** The exit code for whatever reached the top, said on stderr in one line where it is ours. */
export function reportFailure(error: unknown): number {
  if (error instanceof TxlogError) {
    printError(error);
    return exitCodeOf(error);
  }
  if (isSystemError(error)) {
    // A disk or permission error from a read: an operating error, not a bug.
    const wrapped = txlogError('IO_ERROR', error.message, { code: error.code }, error);
    printError(wrapped);
    return exitCodeOf(wrapped);
  }
  process.stderr.write(`txlog: internal error (a bug; please report it): ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return exitCodes.failed;
}

function isSystemError(error: unknown): error is Error & { code: string; syscall: string } {
  if (!(error instanceof Error)) return false;
  const fields = error as Error & { code?: unknown; syscall?: unknown };
  return typeof fields.code === 'string' && typeof fields.syscall === 'string';
}

// A reader that goes away (`txlog inspect --records | head`) is not a failure of ours.
process.stdout.on('error', (error: Error & { code?: unknown }) => {
  if (error.code === 'EPIPE') process.exit(exitCodes.done);
  throw error;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.exitCode = reportFailure(error);
  },
);
