/**
 * `npm run simulate -- [--seed N] [--seeds K] [--minutes M] [--world embedded|pair]`: runs seeds
 * of the deterministic simulator and prints what each did; on a broken invariant, the seed, the
 * invariant, the command that replays it and the last lines of its trace. Exit 0 only when every
 * seed held.
 */
import { parseArgs } from 'node:util';
import { running, runSeeds, type WorldName } from './campaign.js';

// An error the library let escape (a promise nobody handled) is a finding too: say which seed.
process.on('unhandledRejection', (reason) => {
  process.stdout.write(`seed ${running.seed} (${running.world}) let an error escape: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`);
  process.stdout.write(`replay: npm run simulate -- --world ${running.world} --seed ${running.seed}\n`);
  process.exit(1);
});

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    seeds: { type: 'string' },
    minutes: { type: 'string' },
    world: { type: 'string' },
    quiet: { type: 'boolean' },
  },
  strict: true,
});

function integer(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 0) {
    process.stderr.write(`simulate: --${name} must be a non-negative integer\n`);
    process.exit(2);
  }
  return parsed;
}

const world = (values.world ?? 'all') as WorldName | 'all';
if (!['embedded', 'pair', 'all'].includes(world)) {
  process.stderr.write('simulate: --world must be embedded, pair or all\n');
  process.exit(2);
}
const randomStart = values.seed === undefined;
const firstSeed = integer('seed', values.seed, Math.floor(Math.random() * 2 ** 31));
const seedCount = integer('seeds', values.seeds, values.minutes === undefined ? 1 : Number.MAX_SAFE_INTEGER);
const deadlineMs = values.minutes === undefined ? Number.POSITIVE_INFINITY : Date.now() + integer('minutes', values.minutes, 1) * 60_000;
if (randomStart) process.stdout.write(`starting at random seed ${firstSeed}\n`);

const result = await runSeeds({
  firstSeed,
  seedCount,
  deadlineMs,
  worlds: world === 'all' ? ['embedded', 'pair'] : [world],
  onSeed: (line) => {
    if (values.quiet !== true) process.stdout.write(`${line}\n`);
  },
});
process.stdout.write(`${result.totalLine}\n`);
if (result.failure !== undefined) {
  process.stdout.write(`${result.failure}\n`);
  process.exit(1);
}
