/**
 * Whether the machine is quiet enough to measure on: a 1-minute load average above the CPU count
 * less half a CPU says another process keeps a vCPU busy, and every figure of a run, floors
 * included, then moves with it.
 */

/** How far below the CPU count the 1-minute load average must stay for a quiet run. */
export const loadAverageMarginCpus = 0.5;

/** The warning for a run that starts on a busy machine, or undefined when it is quiet. */
export function loadWarning(loadAverage: readonly number[], cpus: number): string | undefined {
  const oneMinute = loadAverage[0];
  if (oneMinute === undefined || oneMinute <= cpus - loadAverageMarginCpus) return undefined;
  return `warning: load average ${oneMinute.toFixed(2)} at the start on ${cpus} CPUs (above ${cpus - loadAverageMarginCpus}): another process is using a CPU, so measurements will be noisy`;
}
