/**
 * Proves when `txlog bench` warns about a busy machine: a 1-minute load average above the CPU
 * count less half a CPU, and not at or below it.
 */
import { describe, expect, it } from 'vitest';
import { loadAverageMarginCpus, loadWarning } from '../../bench/machine-load.js';

describe('loadWarning', () => {
  it('is quiet at or below the CPU count less the margin', () => {
    expect(loadWarning([0, 9, 9], 2)).toBeUndefined();
    expect(loadWarning([2 - loadAverageMarginCpus, 9, 9], 2)).toBeUndefined();
    expect(loadWarning([], 2)).toBeUndefined();
  });

  it('warns above it, with the load average and the CPU count', () => {
    const warning = loadWarning([1.51, 0, 0], 2);
    expect(warning).toMatch(/^warning: load average 1\.51 at the start on 2 CPUs \(above 1\.5\).*measurements will be noisy$/);
    expect(loadWarning([7.9, 0, 0], 8)).toMatch(/^warning: load average 7\.90/);
  });
});
