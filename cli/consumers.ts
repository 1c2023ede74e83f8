/**
 * `txlog consumers DIR`: the durable consumers of a store, from its log alone (read-only, safe
 * beside a running store): name, checkpoint position, lag, when the checkpoint was written.
 */
import { parseArgs } from 'node:util';
import { listConsumers } from '../engine/consumer-list.js';
import { checkPositionals, exitCodes, formatTable, parseCommandArgs } from './common.js';

export const consumersHelp = `Usage: txlog consumers DIR [--json]

Lists the durable consumers (store.consumer) whose checkpoints are in DIR's log: the last
position each checkpoint covers, its lag (events after it, consumers' checkpoints not
counted; a filtered consumer passes over some of them), and when it was written. Reads the
WAL only, never writes.
  --json      one JSON document: {lastPosition, consumers: [{name, position, checkpointVersion,
              lag, updatedAtMs}]}
Exit codes: 0 done, 2 usage or not a log, 3 corrupt log.`;

export async function runConsumers(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('consumers', () =>
    parseArgs({ args, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true }),
  );
  if (values.help === true) {
    process.stdout.write(`${consumersHelp}\n`);
    return exitCodes.done;
  }
  checkPositionals('consumers', positionals, ['DIR'], 1);
  const list = await listConsumers(positionals[0]!);
  if (values.json === true) {
    process.stdout.write(`${JSON.stringify(list)}\n`);
    return exitCodes.done;
  }
  const rows = list.consumers.map((consumer) => [
    consumer.name,
    String(consumer.position),
    String(consumer.lag),
    consumer.updatedAtMs === undefined ? '-' : new Date(consumer.updatedAtMs).toISOString(),
  ]);
  for (const line of formatTable([['NAME', 'POSITION', 'LAG', 'UPDATED'], ...rows])) process.stdout.write(`${line}\n`);
  process.stdout.write(`${list.consumers.length} consumers; last position ${list.lastPosition}\n`);
  return exitCodes.done;
}
