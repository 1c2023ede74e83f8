/**
 * `txlog consumers DIR` and `txlog consumers --servers H:P[,...]`: the durable consumers of a
 * store, with name, checkpoint position, lag, and when the checkpoint was written. From DIR it
 * reads the log alone (read-only, safe beside a running store); from servers it asks the
 * primary, which lists them from its applied state (`consumers` operation).
 */
import { consumersListedMax, listConsumers, type ConsumerList } from '../engine/consumer-list.js';
import { clientOptions, connectionHelp, help, parseClientArgs, text, withConnection } from './client-commands.js';
import { checkPositionals, exitCodes, formatTable, usageError } from './common.js';
import { splitList } from './service-loader.js';

export const consumersHelp = `Usage: txlog consumers DIR [--json]
       txlog consumers --servers H:P[,...] [--json]

Lists the durable consumers (store.consumer, client.consumer): the last position each
checkpoint covers, its lag (events after it, consumers' checkpoints not counted; a filtered
consumer passes over some of them), and when it was written. From DIR: read from the WAL only,
never written. From --servers: as the primary's applied state has them (at most
${consumersListedMax}).
  --json      one JSON document: {lastPosition, consumers: [{name, position, checkpointVersion,
              lag, updatedAtMs}]}
${connectionHelp}
Exit codes: 0 done, 1 the request failed, 2 usage or not a log, 3 corrupt log, 4 no primary
reachable.`;

export async function runConsumers(args: string[]): Promise<number> {
  const { values, positionals } = parseClientArgs('consumers', args);
  if (values['help'] === true) return help(consumersHelp);
  const servers = text(values, 'servers');
  if (servers === undefined) {
    const flag = ['client-id', 'request-id', 'secret-file', 'cluster-id', 'timeout-ms', 'tls-cert', 'tls-key', 'tls-ca'].find((name) => values[name] !== undefined);
    if (flag !== undefined) throw usageError(`--${flag} goes with --servers, not DIR`, 'consumers');
    checkPositionals('consumers', positionals, ['DIR'], 1);
    return print(await listConsumers(positionals[0]!), values['json'] === true);
  }
  if (positionals.length > 0) throw usageError('give DIR or --servers, not both', 'consumers');
  const options = clientOptions('consumers', values, splitList(servers));
  return withConnection(options, async (client) => print(await client.consumers(), values['json'] === true));
}

function print(list: ConsumerList, json: boolean): number {
  if (json) {
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
