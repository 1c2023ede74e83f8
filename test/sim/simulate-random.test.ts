/**
 * A random batch of simulator seeds (see simulate.test.ts), at least 1,000 failovers: its first
 * seed is printed, and `TXLOG_SEED=N` runs the same batch again.
 */
import { describe, it } from 'vitest';
import { testSeed } from '../helpers/random.js';
import { runBatch } from './batch.js';

describe('the deterministic simulator', () => {
  it('holds every invariant over a random batch of seeds', async () => {
    await runBatch('random batch', testSeed('simulator random batch'), Number(process.env['TXLOG_SIM_FAILOVERS_MIN'] ?? 1000));
  }, 900_000);
});
