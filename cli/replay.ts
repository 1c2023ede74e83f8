/**
 * `txlog replay DIR --service FILE`: re-runs every recorded transaction through FILE's service
 * with the journaled call results and recorded clock and random values, and reports each
 * divergence. Run it before deploying new handler code. Exit 0 none, 1 divergences found.
 */
import { parseArgs } from 'node:util';
import { replayLog } from '../engine/replay.js';
import { checkPositionals, exitCodes, parseCommandArgs, usageError } from './common.js';
import { loadService } from './service-loader.js';

export const replayHelp = `Usage: txlog replay DIR --service FILE [--json]

Re-executes every commit in DIR's log through the service in FILE, reads answered as of the
versions the original run saw, and compares outcome digests. Read-only for DIR.
  --json      one JSON document: {commits, divergences: [{lsn, clientId, requestId, command,
              recordedDigest, replayedDigest, detail}]}
Exit codes: 0 no divergence, 1 divergences found, 2 usage, 3 corrupt log.`;

export async function runReplay(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('replay', () =>
    parseArgs({
      args,
      options: { service: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    }),
  );
  if (values.help === true) {
    process.stdout.write(`${replayHelp}\n`);
    return exitCodes.done;
  }
  checkPositionals('replay', positionals, ['DIR'], 1);
  if (values.service === undefined) throw usageError('--service is required', 'replay');
  const service = await loadService(values.service);
  const report = await replayLog({ dir: positionals[0]!, service });
  if (values.json === true) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else {
    for (const divergence of report.divergences) {
      process.stdout.write(
        `divergence at LSN ${divergence.lsn}: ${divergence.command} (client ${divergence.clientId}, request ${divergence.requestId}): ${divergence.detail}\n`,
      );
    }
    process.stdout.write(`${report.commits} commits replayed, ${report.divergences.length} divergences\n`);
  }
  return report.divergences.length === 0 ? exitCodes.done : exitCodes.failed;
}
