/**
 * The performance targets, judged on a finished run: the replicated p50 at one in flight against
 * its floor (under `always` the two-hop floor of the real topology: client to primary to backup
 * with the flush overlapped; under `interval` one round trip), and the throughput at 256 in
 * flight against 50,000 tx/s and against SQLite FULL; then issue 11's others that one run can
 * judge: the embedded store's p50 at one in flight against write+fdatasync and its throughput at
 * 256 (100,000 tx/s, 60,000 as a first milestone), and the CPU each process of the pair spends
 * per transaction at 256 in flight under `always`. A target whose scenario did not run (`--only`)
 * or whose figure is unknown (no CPU method) is left out, not judged.
 */
import { fsyncPolicies, type BenchMode, type FloorName, type FloorSummary, type ScenarioResult, type TargetVerdict } from './bench-types.js';

export function verdicts(scenarios: readonly ScenarioResult[], floors: readonly FloorSummary[]): TargetVerdict[] {
  // The targets are the plaintext pair's; a TLS run is read beside it, not judged.
  const find = (mode: BenchMode, fsync: string, concurrency: number): ScenarioResult | undefined =>
    scenarios.find((scenario) => scenario.system === 'txlog' && scenario.mode === mode && scenario.fsync === fsync && scenario.concurrency === concurrency && (scenario.tls ?? 'off') === 'off');
  const floor = (name: FloorName): FloorSummary | undefined => floors.find((candidate) => candidate.name === name);
  const result: TargetVerdict[] = [];
  const ratioTarget = (fsync: string, floorName: FloorName, limit: number, mode: BenchMode = 'replicated'): void => {
    const scenario = find(mode, fsync, 1);
    const base = floor(floorName);
    if (scenario === undefined || base === undefined || base.samples === 0) return;
    const value = scenario.p50Us / base.p50Us;
    result.push({
      target: `${mode} ${fsync} c=1 p50 <= ${limit}x ${floorName} p50`,
      value,
      limit,
      met: value <= limit,
      detail: `${scenario.p50Us.toFixed(1)} µs vs ${base.p50Us.toFixed(1)} µs`,
    });
  };
  ratioTarget('always', 'two-hop+fdatasync', 1.3);
  ratioTarget('interval', 'tcp-rtt', 1.5);
  const sqlite = scenarios.find((scenario) => scenario.system === 'sqlite');
  for (const fsync of fsyncPolicies) {
    const scenario = find('replicated', fsync, 256);
    if (scenario === undefined) continue;
    result.push({
      target: `replicated ${fsync} c=256 >= 50000 tx/s`,
      value: scenario.throughputPerSec,
      limit: 50_000,
      met: scenario.throughputPerSec >= 50_000,
      detail: `${Math.round(scenario.throughputPerSec)} tx/s`,
    });
    if (sqlite !== undefined) {
      result.push({
        target: `replicated ${fsync} c=256 > SQLite FULL tx/s`,
        value: scenario.throughputPerSec / sqlite.throughputPerSec,
        limit: 1,
        met: scenario.throughputPerSec > sqlite.throughputPerSec,
        detail: `${Math.round(scenario.throughputPerSec)} vs ${Math.round(sqlite.throughputPerSec)} tx/s`,
      });
    }
  }
  ratioTarget('always', 'write+fdatasync', 1.15, 'embedded');
  const embedded = find('embedded', 'always', 256);
  if (embedded !== undefined) {
    for (const [limit, what] of [[100_000, ''], [60_000, ' (first milestone)']] as const) {
      result.push({
        target: `embedded always c=256 >= ${limit} tx/s${what}`,
        value: embedded.throughputPerSec,
        limit,
        met: embedded.throughputPerSec >= limit,
        detail: `${Math.round(embedded.throughputPerSec)} tx/s`,
      });
    }
  }
  const pair = find('replicated', 'always', 256);
  if (pair !== undefined) {
    for (const [process, limit, name] of cpuLimits) {
      const value = pair.cpuUsPerTransaction[process];
      if (value === null) continue;
      result.push({
        target: `replicated always c=256 ${name} CPU <= ${limit} µs/tx`,
        value,
        limit,
        met: value <= limit,
        detail: `${value.toFixed(1)} µs of CPU per transaction`,
      });
    }
  }
  return result;
}

/** Issue 11's CPU per transaction at c=256: each process of the pair, the clients being this one. */
const cpuLimits = [
  ['primary', 25, 'primary'],
  ['backup', 10, 'backup'],
  ['bench', 8, 'client'],
] as const;
