/**
 * Proves that `txlog bench --quick --json` runs end to end as a real process (an embedded
 * store, a real pair of `txlog serve` children, the floors and the peers) and prints one JSON
 * document of the documented shape with every scenario present, and that `--tls psk` measures the
 * pair over TLS. It checks names and types, not speed: the machine is shared and a tiny
 * count says nothing about performance.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, useBuiltCli } from './helpers.js';

const cli = useBuiltCli();
const workDir = mkdtempSync(path.join(tmpdir(), 'txlog-bench-test-data-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function runBench(args: readonly string[]) {
  return runCli(cli(), ['bench', ...args]);
}

const systems = ['txlog', 'lmdb', 'sqlite', 'postgres', 'floor'];
const modes = ['embedded', 'replicated'];

describe('txlog bench --quick --json', () => {
  it('prints one JSON document with the machine, every scenario and the floors', async () => {
    const result = await runBench(['--quick', '--json', '--count', '20', '--warmup-ms', '0', '--floor-ms', '20', '--no-pin', '--dir', workDir]);
    // The only thing allowed on stderr is the warning of a busy machine (the test machine often is).
    expect(result.stderr.replace(/^warning: load average .*measurements will be noisy\n/, '')).toBe('');
    expect(result.exitCode).toBe(0);
    const report = JSON.parse(result.stdout) as Record<string, unknown>;

    const machine = report['machine'] as Record<string, unknown>;
    expect(typeof machine['cpus']).toBe('number');
    expect(typeof machine['node']).toBe('string');
    expect(Array.isArray(machine['loadAverageStart'])).toBe(true);
    expect(Array.isArray(machine['loadAverageEnd'])).toBe(true);
    const loadWarned = result.stderr.startsWith('warning: load average');
    expect((report['notes'] as unknown[]).some((note) => String(note).startsWith('warning: load average'))).toBe(loadWarned);
    expect(typeof machine['placement']).toBe('string');
    // Where the data disk's interrupts landed (null where sysfs cannot say: another OS, a tmpfs).
    const diskInterrupts = machine['diskInterrupts'] as { device: unknown; perCpu: unknown[] } | null;
    if (diskInterrupts !== null) {
      expect(typeof diskInterrupts.device).toBe('string');
      expect(diskInterrupts.perCpu).toHaveLength(machine['cpus'] as number);
      for (const count of diskInterrupts.perCpu) expect(Number.isSafeInteger(count) && (count as number) >= 0).toBe(true);
    }

    const scenarios = report['scenarios'] as Array<Record<string, unknown>>;
    for (const scenario of scenarios) {
      expect(typeof scenario['name']).toBe('string');
      expect(systems).toContain(scenario['system']);
      expect(modes).toContain(scenario['mode']);
      expect(typeof scenario['fsync']).toBe('string');
      expect(Number.isSafeInteger(scenario['concurrency'])).toBe(true);
      for (const key of ['p50Us', 'p99Us', 'p999Us', 'maxUs', 'throughputPerSec']) {
        expect(typeof scenario[key], `${String(scenario['name'])} ${key}`).toBe('number');
        expect(scenario[key] as number, `${String(scenario['name'])} ${key}`).toBeGreaterThan(0);
      }
      expect((scenario['p50Us'] as number) <= (scenario['maxUs'] as number)).toBe(true);
    }
    const keys = new Set(scenarios.map((scenario) => `${String(scenario['system'])} ${String(scenario['mode'])} ${String(scenario['fsync'])} ${String(scenario['concurrency'])}`));
    for (const mode of ['embedded', 'replicated']) {
      for (const fsync of ['always', 'interval']) {
        for (const concurrency of [1, 8, 64, 256]) expect(keys, `txlog ${mode} ${fsync} ${concurrency}`).toContain(`txlog ${mode} ${fsync} ${concurrency}`);
      }
    }
    // The peers are devDependencies: present here, so measured (a missing one would be a note).
    for (const concurrency of [1, 8, 64, 256]) expect(keys).toContain(`lmdb embedded overlapped ${concurrency}`);
    expect(keys).toContain('sqlite embedded always 1');
    expect(scenarios.filter((scenario) => scenario['system'] === 'floor')).toHaveLength(5);

    const floors = report['floors'] as Array<Record<string, unknown>>;
    expect(floors.map((floor) => floor['name']).sort()).toEqual(['tcp-rtt', 'tcp-rtt+fdatasync', 'two-hop+fdatasync', 'write', 'write+fdatasync']);
    for (const floor of floors) {
      for (const key of ['p50Us', 'p99Us', 'throughputPerSec']) expect(typeof floor[key]).toBe('number');
    }
    const replicatedAlways = scenarios.find((scenario) => scenario['name'] === 'txlog replicated always c=1');
    expect(replicatedAlways?.['floor']).toBe('two-hop+fdatasync');
    expect(Array.isArray(report['targets'])).toBe(true);
    expect(['schedstat', 'stat-ticks', 'getrusage']).toContain((report['settings'] as Record<string, unknown>)['cpuMethod']);
    // Unpinned (--no-pin), the pair's nodes get the semi-space flag and not the one-CPU one.
    expect((report['settings'] as Record<string, unknown>)['pairGcNodeArgs']).toEqual({ primary: ['--max-semi-space-size=8'], backup: ['--max-semi-space-size=8'] });
    expect((report['notes'] as unknown[]).some((note) => String(note).startsWith('postgres skipped'))).toBe(true);
  });

  it('measures the pair with TLS (--tls psk; the plaintext pair is the first test)', async () => {
    const result = await runBench(['--json', '--only', 'txlog-replicated', '--tls', 'psk', '--concurrency', '1', '--count', '20', '--warmup-ms', '0', '--floor-ms', '20', '--no-pin', '--dir', workDir]);
    expect(result.exitCode).toBe(0);
    const scenarios = (JSON.parse(result.stdout) as { scenarios: Array<Record<string, unknown>> }).scenarios.filter((scenario) => scenario['system'] === 'txlog');
    expect(scenarios.map((scenario) => [scenario['name'], scenario['tls']])).toEqual([
      ['txlog replicated tls-psk always c=1', 'psk'],
      ['txlog replicated tls-psk interval c=1', 'psk'],
    ]);
  });

  it('refuses a bad flag with the usage exit code', async () => {
    for (const args of [['--concurrency', 'zero'], ['--tls', 'on'], ['--tls', 'psk,psk']]) {
      const result = await runBench(args);
      expect(result.exitCode, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(/USAGE/);
    }
  });
});
