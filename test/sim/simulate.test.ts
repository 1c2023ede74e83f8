/**
 * Runs the deterministic simulator (test/sim/): the real Store and TxlogNode code on simulated
 * disks, network and clocks, with crashes, machine crashes, partitions, pauses and disk faults
 * drawn from each seed, checking the invariants listed in embedded-world.ts and pair-world.ts.
 * This file: every seed that once failed (regressions.ts) still holds; the same seed gives the
 * same run, event for event (equal trace hashes); and a fixed batch of seeds covering at least
 * 1,000 failovers. simulate-random.test.ts runs a random batch of as many, so one `npm test`
 * covers at least 2,000. Replay a failing seed with `npm run simulate -- --world W --seed N`.
 */
import { describe, expect, it } from 'vitest';
import { runBatch } from './batch.js';
import { runEmbeddedSeed } from './embedded-world.js';
import { runPairSeed } from './pair-world.js';
import { regressionSeeds } from './regressions.js';

describe('the deterministic simulator', () => {
  it('replays every seed that once broke an invariant', async () => {
    for (const regression of regressionSeeds) {
      const summary = regression.world === 'pair' ? await runPairSeed(regression.seed) : await runEmbeddedSeed(regression.seed);
      expect(summary.acknowledged, regression.found).toBeGreaterThan(0);
    }
  }, 120_000);

  it('gives the same run for the same seed', async () => {
    const [first, second] = [await runPairSeed(7), await runPairSeed(7)];
    expect(second.traceHash).toBe(first.traceHash);
    expect(second.steps).toBe(first.steps);
    const [embeddedFirst, embeddedSecond] = [await runEmbeddedSeed(7), await runEmbeddedSeed(7)];
    expect(embeddedSecond.traceHash).toBe(embeddedFirst.traceHash);
  }, 120_000);

  it('holds every invariant over a fixed batch of seeds', async () => {
    await runBatch('fixed batch', 1000, Number(process.env['TXLOG_SIM_FAILOVERS_MIN'] ?? 1000));
  }, 900_000);
});
