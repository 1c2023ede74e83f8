/**
 * One batch of simulator seeds as a vitest test: pair seeds until at least `failoversMin`
 * failovers were covered, then embedded seeds; prints the totals and fails with the report of the
 * first seed that broke an invariant.
 */
import { expect } from 'vitest';
import { runSeeds } from './campaign.js';

export async function runBatch(name: string, firstSeed: number, failoversMin: number): Promise<void> {
  const pairSeeds = Number(process.env['TXLOG_SIM_PAIR_SEEDS'] ?? 80);
  const embeddedSeeds = Number(process.env['TXLOG_SIM_EMBEDDED_SEEDS'] ?? 15);
  const pair = await runSeeds({ firstSeed, seedCount: pairSeeds, worlds: ['pair'], failoversMin });
  expect(pair.failure ?? 'held').toBe('held');
  const embedded = await runSeeds({ firstSeed, seedCount: embeddedSeeds, worlds: ['embedded'] });
  expect(embedded.failure ?? 'held').toBe('held');
  console.log(`[simulator] ${name} from seed ${firstSeed}: pair ${pair.totalLine}; embedded ${embedded.totalLine}`);
  expect(pair.totals.failovers).toBeGreaterThanOrEqual(failoversMin);
}
