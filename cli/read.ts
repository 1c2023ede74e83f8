/**
 * `txlog read`: a stream, or the whole log, from the primary, forwards or backwards, from a
 * version or position or the end, filtered by stream prefix and event type (the log: the node
 * filters), printed as one JSON document. It iterates the client's read page by page and
 * prints each page as it comes, so neither it nor the node holds more than a page. With
 * `--follow` it subscribes instead (the log, forwards) and prints one event a line as they
 * commit, until interrupted or `--max-count` events.
 */
import type { EventFilter, ReadAllOptions, ReadStreamOptions, RecordedEvent, SubscribeOptions } from '../engine/index.js';
import type { Client } from '../replication/client.js';
import { clientOptions, connectionHelp, help, parseClientArgs, text, withConnection, type ParsedValues } from './client-commands.js';
import { LineOutput, checkPositionals, exitCodes, parseIntegerFlag, usageError } from './common.js';
import { splitList } from './service-loader.js';

/** Events `txlog read` prints unless `--max-count` says otherwise. */
const readCountDefault = 4096;
/** The most `--max-count` may ask for. */
const readCountMax = 1_000_000;

export const readHelp = `Usage: txlog read --servers H:P[,...] [STREAM] [--from N|start|end] [--backwards]
                  [--max-count N] [--stream-prefix P]... [--event-type T]... [--follow]

Reads STREAM, or without one the whole log, from the primary, page by page, and prints one JSON
document: {version, events} for a stream (version: its last version when the read began),
{events} for the log.
  --from N|start|end  the first version (STREAM) or global position (the log) to read; end is
                      the last event (default: start, or end with --backwards)
  --from-version N    the same as --from N, for STREAM (the older spelling)
  --backwards         newest first
  --max-count N       events to print at most, 1 to ${readCountMax} (default ${readCountDefault})
  --stream-prefix P   the log only: events of streams whose name starts with P (repeatable)
  --event-type T      the log only: events of type T (repeatable)
  --follow            the log only, forwards: every event from --from (end: only those
                      committed from now on), then each one as it commits, one JSON object a
                      line, until SIGINT or SIGTERM (exit 0) or --max-count events
${connectionHelp}`;

const readFlags = {
  from: { type: 'string' },
  'from-version': { type: 'string' },
  backwards: { type: 'boolean' },
  'max-count': { type: 'string' },
  'stream-prefix': { type: 'string', multiple: true },
  'event-type': { type: 'string', multiple: true },
  follow: { type: 'boolean' },
} as const;

export async function runRead(args: string[]): Promise<number> {
  const { values, positionals } = parseClientArgs('read', args, readFlags);
  if (values['help'] === true) return help(readHelp);
  checkPositionals('read', positionals, ['STREAM'], 0);
  const options = clientOptions('read', values, splitList(text(values, 'servers')));
  const stream = positionals[0];
  const read = readOptions(values, stream !== undefined);
  const filter = filterOf(values);
  if (stream !== undefined && filter !== undefined) throw usageError('--stream-prefix and --event-type filter the log: leave out STREAM', 'read');
  if (values['follow'] === true) {
    if (stream !== undefined || read.direction === 'backwards') throw usageError('--follow follows the log forwards: leave out STREAM and --backwards', 'read');
    const maxCount = text(values, 'max-count') === undefined ? undefined : read.maxCount;
    return withConnection(options, (client) => follow(client, read.fromPosition, maxCount, filter));
  }
  return withConnection(options, async (client) => {
    const output = new LineOutput();
    if (stream === undefined) {
      await output.line('{"events":[');
      await printEvents(output, client.readAll(filter === undefined ? read : { ...read, filter }));
    } else {
      const { version } = await client.readStream(stream, { maxCount: 0 });
      await output.line(`{"version":${version},"events":[`);
      await printEvents(output, client.readStream(stream, read as ReadStreamOptions));
    }
    await output.line(']}');
    await output.flush();
    return exitCodes.done;
  });
}

/** Subscribes and prints each event on a line as it comes, until a signal or `maxCount` events. */
async function follow(client: Client, from: number | 'start' | 'end' | undefined, maxCount: number | undefined, filter: EventFilter | undefined): Promise<number> {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const output = new LineOutput();
  try {
    // Caught up, each event goes out as it comes; before, in chunks (a long history is many).
    let live = false;
    const onCaughtUp = (): void => {
      live = true;
      void output.flush();
    };
    const subscribe: SubscribeOptions = { fromPosition: from === undefined || from === 'start' ? 0 : from, signal: controller.signal, onCaughtUp };
    if (filter !== undefined) subscribe.filter = filter;
    let printed = 0;
    for await (const event of client.subscribe(subscribe)) {
      await output.line(JSON.stringify(event));
      if (live) await output.flush();
      printed += 1;
      if (printed === maxCount) break;
    }
    await output.flush();
    return exitCodes.done;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

/** Each event on a line of its own, commas between: the whole output is one JSON document. */
async function printEvents(output: LineOutput, events: AsyncIterable<RecordedEvent>): Promise<void> {
  let first = true;
  for await (const event of events) {
    await output.line(`${first ? '' : ','}${JSON.stringify(event)}`);
    first = false;
  }
}

type ReadFlags = Pick<ReadAllOptions, 'direction' | 'maxCount'> & { fromPosition?: number | 'start' | 'end'; fromVersion?: number | 'start' | 'end' };

function readOptions(values: ParsedValues, isStream: boolean): ReadFlags {
  const from = text(values, 'from');
  const fromVersion = text(values, 'from-version');
  if (fromVersion !== undefined && !isStream) throw usageError('--from-version reads a STREAM; the log takes --from', 'read');
  if (fromVersion !== undefined && from !== undefined) throw usageError('give --from or --from-version, not both', 'read');
  const maxCount = text(values, 'max-count');
  const options: ReadFlags = {
    maxCount: maxCount === undefined ? readCountDefault : parseIntegerFlag('read', '--max-count', maxCount, 1, readCountMax),
  };
  if (values['backwards'] === true) options.direction = 'backwards';
  const start = from ?? fromVersion;
  if (start !== undefined) {
    const flag = from === undefined ? '--from-version' : '--from';
    if (start !== 'start' && start !== 'end' && !/^\d+$/.test(start)) throw usageError(`${flag} must be a version or position, start or end, got '${start}'`, 'read');
    const value = start === 'start' || start === 'end' ? start : parseIntegerFlag('read', flag, start, 0, Number.MAX_SAFE_INTEGER);
    if (isStream) options.fromVersion = value;
    else options.fromPosition = value;
  }
  return options;
}

function filterOf(values: ParsedValues): EventFilter | undefined {
  const prefixes = listFlag(values, 'stream-prefix');
  const types = listFlag(values, 'event-type');
  if (prefixes === undefined && types === undefined) return undefined;
  const filter: EventFilter = {};
  if (prefixes !== undefined) filter.streamPrefix = prefixes;
  if (types !== undefined) filter.eventTypes = types;
  return filter;
}

function listFlag(values: ParsedValues, flag: string): string[] | undefined {
  const given = values[flag];
  if (!Array.isArray(given)) return undefined;
  if (given.some((value) => value.length === 0)) throw usageError(`--${flag} must not be empty`, 'read');
  return given;
}
