/**
 * What every `txlog` subcommand shares: exit codes and how errors map to them, strict argument
 * parsing that turns every mistake into one `USAGE` line, integer flags, and line output that
 * respects a slow or closed stdout.
 *
 * A subcommand is a `CommandRun`: it gets the arguments after its name and resolves with an exit
 * code, or throws a `TxlogError` that `main.ts` prints as `txlog: <CODE>: <message>`.
 */
import { once } from 'node:events';
import { TxlogError, txlogError, type ErrorCode } from '../wal/errors.js';

export const exitCodes = {
  /** The command did what was asked (a torn tail that recovery will cut still counts). */
  done: 0,
  /** The request failed: a server refused it, a disk failed, an unexpected error. */
  failed: 1,
  /** Usage: a bad flag or argument, or an input that is not something txlog can read. */
  usage: 2,
  /** Corruption found in a log. */
  corrupt: 3,
  /** No primary could be reached. */
  noPrimary: 4,
} as const;

export type ExitCode = (typeof exitCodes)[keyof typeof exitCodes];

/**
 * Exit code of an error that reached the top; codes not listed here exit 1.
 *
 * NOT_FOUND, NOT_A_LOG and UNSUPPORTED_FORMAT exit 2 like usage errors: they say the operator
 * named an input (a directory, a file) that does not exist or that this txlog cannot read, and
 * the fix is a different command line, not a retry. BAD_REQUEST stays 1 because it is what a
 * server answers to a request; the CLI's own flag checks throw USAGE. A client command that
 * tried every server without finding a primary throws NOT_PRIMARY, hence 4.
 */
const exitCodeByErrorCode: Partial<Record<ErrorCode, ExitCode>> = {
  USAGE: exitCodes.usage,
  NOT_FOUND: exitCodes.usage,
  NOT_A_LOG: exitCodes.usage,
  UNSUPPORTED_FORMAT: exitCodes.usage,
  TARGET_NOT_EMPTY: exitCodes.usage,
  CORRUPT_LOG: exitCodes.corrupt,
  NOT_PRIMARY: exitCodes.noPrimary,
};

export function exitCodeOf(error: TxlogError): ExitCode {
  return exitCodeByErrorCode[error.code] ?? exitCodes.failed;
}

/** A subcommand: the arguments after its name in, an exit code out. */
export type CommandRun = (args: string[]) => Promise<number>;

export function usageError(message: string, command?: string): TxlogError {
  const help = command === undefined ? 'txlog --help' : `txlog ${command} --help`;
  return txlogError('USAGE', `${message} (see ${help})`);
}

/** Errors are shown on one line: a message with a newline would break scripts that read stderr. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

export function printError(error: TxlogError): void {
  process.stderr.write(`txlog: ${error.code}: ${oneLine(error.message)}\n`);
}

export function printWarning(message: string): void {
  process.stderr.write(`txlog: warning: ${oneLine(message)}\n`);
}

/**
 * Runs a strict `parseArgs` call, turning every parse failure (unknown flag, missing value, a
 * flag where a value belongs) into a USAGE error. Taking the call as a function keeps the
 * precise types `parseArgs` infers from its literal options.
 */
export function parseCommandArgs<T>(command: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (isParseArgsError(error)) throw usageError(oneLine(error.message), command);
    throw error;
  }
}

/** Checks the positional arguments against their names; the first `min` are required. */
export function checkPositionals(command: string, positionals: readonly string[], names: readonly string[], min: number): void {
  if (positionals.length < min) {
    throw usageError(`missing ${names.slice(positionals.length, min).join(' ')}`, command);
  }
  if (positionals.length > names.length) {
    throw usageError(`unexpected argument '${positionals[names.length]}'`, command);
  }
}

function isParseArgsError(error: unknown): error is Error {
  if (!(error instanceof Error)) return false;
  const code: unknown = (error as Error & { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

/**
 * A decimal integer flag in [min, max]. Only digits are accepted: `Number()` would take `1e3`,
 * `0x10` and ` 7 `, which an operator did not mean.
 */
export function parseIntegerFlag(command: string, flag: string, value: string, min: number, max: number): number {
  const parsed = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw usageError(`${flag} must be an integer from ${min} to ${max}, got '${value}'`, command);
  }
  return parsed;
}

/** Output gathered up to this many characters is handed to stdout in one write. */
const outputChunkCharacters = 64 * 1024;

/**
 * Lines to stdout, gathered into chunks and paced by 'drain', so that printing a million records
 * neither makes a million writes nor buffers them all when the reader is slow.
 */
export class LineOutput {
  private readonly stream: NodeJS.WritableStream;
  private pending: string[] = [];
  private pendingCharacters = 0;

  constructor(stream: NodeJS.WritableStream = process.stdout) {
    this.stream = stream;
  }

  async line(text: string): Promise<void> {
    this.pending.push(text, '\n');
    this.pendingCharacters += text.length + 1;
    if (this.pendingCharacters >= outputChunkCharacters) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const chunk = this.pending.join('');
    this.pending = [];
    this.pendingCharacters = 0;
    if (!this.stream.write(chunk)) await once(this.stream, 'drain');
  }
}

/** Left-aligned columns for a small table an operator reads. */
export function formatTable(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, column) => {
      widths[column] = Math.max(widths[column] ?? 0, cell.length);
    });
  }
  return rows.map((row) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}
