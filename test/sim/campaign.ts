/**
 * Running many seeds: one line per seed, a total line, and on the first broken invariant a report
 * with the seed, the invariant, the replay command and the end of the trace.
 */
import { InvariantViolation, runEmbeddedSeed, type SeedSummary } from './embedded-world.js';
import { runPairSeed } from './pair-world.js';

export type WorldName = 'embedded' | 'pair';

export interface CampaignOptions {
  firstSeed: number;
  seedCount: number;
  deadlineMs?: number;
  worlds: WorldName[];
  /** Keeps going past `seedCount` until this many failovers were covered (at most 4 × seedCount seeds). */
  failoversMin?: number;
  onSeed?: (line: string) => void;
}

export interface CampaignResult {
  seeds: number;
  totals: { failovers: number; crashes: number; partitions: number; acknowledged: number; steps: number };
  totalLine: string;
  /** The report of the first seed that broke an invariant. */
  failure: string | undefined;
  failedSeed: number | undefined;
}

/** The seed running now (for a report of an error that escapes the run, such as an unhandled rejection). */
export const running: { world: WorldName | undefined; seed: number | undefined } = { world: undefined, seed: undefined };

export async function runSeeds(options: CampaignOptions): Promise<CampaignResult> {
  const totals = { failovers: 0, crashes: 0, partitions: 0, acknowledged: 0, steps: 0 };
  let seeds = 0;
  let failure: string | undefined;
  let failedSeed: number | undefined;
  const deadlineMs = options.deadlineMs ?? Number.POSITIVE_INFINITY;
  const failoversMin = options.failoversMin ?? 0;
  const more = (index: number): boolean =>
    index < options.seedCount || (totals.failovers < failoversMin && index < options.seedCount * 4);
  for (let index = 0; more(index) && Date.now() < deadlineMs; index++) {
    const seed = (options.firstSeed + index) >>> 0;
    const world = options.worlds[index % options.worlds.length]!;
    running.world = world;
    running.seed = seed;
    try {
      const summary = world === 'embedded' ? await runEmbeddedSeed(seed) : await runPairSeed(seed);
      seeds += 1;
      totals.failovers += summary.failovers ?? 0;
      totals.crashes += summary.crashes;
      totals.partitions += summary.partitions ?? 0;
      totals.acknowledged += summary.acknowledged;
      totals.steps += summary.steps;
      options.onSeed?.(describe(world, summary));
    } catch (error) {
      seeds += 1;
      failedSeed = seed;
      failure = report(world, seed, error);
      break;
    }
  }
  const totalLine = `${seeds} seeds: ${totals.failovers} failovers, ${totals.crashes} crashes, ${totals.partitions} partitions, ${totals.acknowledged} transactions acknowledged, ${totals.steps} steps${failure === undefined ? '; every invariant held' : '; FAILED'}`;
  return { seeds, totals, totalLine, failure, failedSeed };
}

function describe(world: WorldName, summary: SeedSummary): string {
  const parts = [
    `seed ${summary.seed} (${world})`,
    `${summary.steps} steps`,
    `${summary.simulatedMs} ms simulated`,
    `${summary.crashes} crashes (${summary.machineCrashes} with the machine)`,
  ];
  if (summary.failovers !== undefined) parts.push(`${summary.failovers} failovers`);
  if (summary.partitions !== undefined) parts.push(`${summary.partitions} partitions`);
  parts.push(`${summary.storeFailures} store failures`, `${summary.acknowledged} acknowledged`, `trace ${summary.traceHash}`);
  return parts.join(', ');
}

function report(world: WorldName, seed: number, error: unknown): string {
  const replay = `npm run simulate -- --world ${world} --seed ${seed}`;
  if (error instanceof InvariantViolation) {
    return [`seed ${seed} (${world}) broke invariant ${error.invariant}: ${error.message}`, `replay: ${replay}`, 'last events:', ...error.trace.map((line) => `  ${line}`)].join('\n');
  }
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return [`seed ${seed} (${world}) failed: ${message}`, `replay: ${replay}`].join('\n');
}
