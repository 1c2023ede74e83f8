/**
 * `txlog inspect DIR`: what is in a store's write-ahead log, read without writing a byte. The
 * arguments become one `InspectRequest` (`inspect-request.ts`); the three modes live in their own files.
 */
import { parseArgs } from 'node:util';
import { lsnMax } from '../wal/format.js';
import { checkPositionals, exitCodes, parseCommandArgs, parseIntegerFlag, usageError } from './common.js';
import { printRecords } from './inspect-records.js';
import { printSummary, printVerification } from './inspect-report.js';
import type { InspectRequest, RecordsRequest } from './inspect-request.js';

export const inspectHelp = `Usage: txlog inspect DIR [--json] [--strict]
       txlog inspect DIR --records [--from LSN] [--limit N] [--stream S] [--client C] [--json]
       txlog inspect DIR --verify [--json] [--strict]

Reads the write-ahead log of the store at DIR (DIR/wal, or DIR itself when it holds *.wal
segment files). It only reads: safe on a running store, and it never cuts a torn tail.

Modes:
  (default)     a summary: each segment (file, size, bytes used, LSN range, records, epochs),
                records by type, first and last LSN, the tail's state, the format version
  --records     one line per record: LSN, epoch, type, bytes, and for a commit or journal
                record its client, request and command (commit) or call index and name (journal)
  --verify      check every checksum of every segment, in parallel worker threads, and that
                LSNs run on without a gap from one segment to the next; a progress bar shows
                on stderr when it is a terminal and CI is not set

Options:
  --from LSN    with --records: start at this LSN (an integer from 1)
  --limit N     with --records: print at most N records (an integer from 1)
  --stream S    with --records: only commit records that write to stream S
  --client C    with --records: only commit and journal records of client C
  --json        one JSON object (summary, --verify), or one JSON object per line (--records:
                lsn, epoch, type, segment, offset, size and the record's decoded fields)
  --strict      count a torn tail as corruption (exit 3)
  -h, --help    show this help

Torn tail: bytes after the last whole record of the last segment, with no valid record after
them, are what an interrupted write leaves; the store's recovery cuts them when it next opens
the log. inspect reports them with a warning on stderr and exits 0, or 3 with --strict. Damage
anywhere else (a bad checksum followed by valid records, a gap in LSNs, a sealed segment that
does not end cleanly) is corruption: exit 3, with the segment, byte offset and LSN on stderr.

Exit codes:
  0  the log is sound (a torn tail included, unless --strict)
  1  reading failed (a disk or permission error)
  2  usage: a bad flag; DIR missing, a file, or holding no segments; a file that is not a
     txlog segment; a segment of a newer format than this txlog reads
  3  corruption found`;

const inspectOptions = {
  verify: { type: 'boolean' },
  records: { type: 'boolean' },
  from: { type: 'string' },
  limit: { type: 'string' },
  stream: { type: 'string' },
  client: { type: 'string' },
  json: { type: 'boolean' },
  strict: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function runInspect(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('inspect', () => parseInspectArgs(args));
  if (values.help === true) {
    process.stdout.write(`${inspectHelp}\n`);
    return exitCodes.done;
  }
  checkPositionals('inspect', positionals, ['DIR'], 1);
  const request = toRequest(positionals[0]!, values);
  switch (request.mode) {
    case 'summary':
      return printSummary(request);
    case 'verify':
      return printVerification(request);
    case 'records':
      return printRecords(request);
  }
}

function parseInspectArgs(args: string[]) {
  return parseArgs({ args, options: inspectOptions, strict: true, allowPositionals: true });
}

type InspectValues = ReturnType<typeof parseInspectArgs>['values'];

function toRequest(dir: string, values: InspectValues): InspectRequest {
  if (dir === '') throw usageError('DIR must not be empty', 'inspect');
  const json = values.json === true;
  const strict = values.strict === true;
  if (values.verify === true && values.records === true) {
    throw usageError('--verify and --records are separate modes; give one', 'inspect');
  }
  if (values.records !== true) {
    for (const flag of ['from', 'limit', 'stream', 'client'] as const) {
      if (values[flag] !== undefined) throw usageError(`--${flag} applies to --records only`, 'inspect');
    }
    return { mode: values.verify === true ? 'verify' : 'summary', dir, json, strict };
  }
  const request: RecordsRequest = {
    mode: 'records',
    dir,
    json,
    strict,
    fromLsn: values.from === undefined ? 1 : parseIntegerFlag('inspect', '--from', values.from, 1, lsnMax),
    limit: values.limit === undefined ? Number.POSITIVE_INFINITY : parseIntegerFlag('inspect', '--limit', values.limit, 1, lsnMax),
  };
  if (values.stream !== undefined) request.stream = values.stream;
  if (values.client !== undefined) request.clientId = values.client;
  return request;
}
