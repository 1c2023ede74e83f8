/**
 * `bench/ab-bench.ts` runs: two builds (here the same one, copied as the CLI tests copy it) are
 * measured in alternating slices and every slice reports its throughput and CPU per transaction;
 * a build without `dist/` is refused with one line. Speed itself is never asserted here.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, useBuiltCli } from '../cli/helpers.js';

const cli = useBuiltCli();

interface Report {
  options: { warmupMs: number };
  slices: Record<'base' | 'new', Array<{ txPerSec: number; cpuUs: Record<string, number> }>>;
  lines: string[];
}

describe('ab-bench', () => {
  it('alternates two builds of the embedded store and reports each slice and the paired ratios', async () => {
    const build = path.dirname(path.dirname(path.dirname(cli())));
    const script = path.join(build, 'dist', 'bench', 'ab-bench.js');
    const args = ['--base', build, '--new', build, '--pairs', '2', '--slice-ms', '100', '--warmup-ms', '20', '--concurrency', '4', '--fsync', 'never', '--json'];
    const result = await runCli(script, args);
    expect(result.exitCode, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as Report;
    for (const side of ['base', 'new'] as const) {
      expect(report.slices[side]).toHaveLength(2);
      for (const slice of report.slices[side]) {
        expect(slice.txPerSec).toBeGreaterThan(0);
        expect(slice.cpuUs['process']).toBeGreaterThan(0);
      }
    }
    expect(report.lines.some((line) => line.startsWith('tx/s:') && line.includes('paired new/base'))).toBe(true);
    expect(report.options.warmupMs).toBe(20);
    expect(report.lines[0]).toContain('2 pairs of 100 ms after 20 ms');
  });

  it('refuses a build with no dist/ in one line, exit 1', async () => {
    const build = path.dirname(path.dirname(path.dirname(cli())));
    const script = path.join(build, 'dist', 'bench', 'ab-bench.js');
    const result = await runCli(script, ['--base', path.join(build, 'nowhere'), '--new', build]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/--base .*nowhere has no dist\/engine\/index.js/);
    const negative = await runCli(script, ['--base', build, '--new', build, '--warmup-ms=-1']);
    expect(negative.exitCode).toBe(1);
    expect(negative.stderr).toContain('--warmup-ms must be an integer in [0, 600000]');
  });
});
