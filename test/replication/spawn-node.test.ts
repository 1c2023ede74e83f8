/**
 * `spawnNode` starts a node with txlog's garbage-collector settings (`gcNodeArgs`: 8 MB
 * semi-spaces, and `--single-threaded-gc` when pinned to one CPU), leaves out what the caller set
 * itself, and none with `defaultGc`: checked on the real process's command line
 * (`/proc/PID/cmdline`, where taskset has exec'd node).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { gcNodeArgs, namesOneCpu, parseCpuList, semiSpaceMb, singleThreadedGcFlag, spawnedGcArgs, spawnNode, type SpawnedNode, type SpawnNodeOptions } from '../../dist/replication/spawn-node.js';
import { useTempDir } from '../helpers/temp.js';
import { requireFreshBuild } from './pair.js';

requireFreshBuild();
const tempDir = useTempDir('txlog-spawn-node-');
const started: SpawnedNode[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((node) => node.kill()));
});

function tasksetRuns(): boolean {
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function commandLineOf(options: Omit<SpawnNodeOptions, 'args'>): Promise<string[]> {
  const node = await spawnNode({ args: ['--dir', tempDir(), '--listen', '127.0.0.1:0', '--fsync', 'never'], ...options });
  started.push(node);
  return readFileSync(`/proc/${node.pid}/cmdline`, 'utf8').split('\0');
}

describe('namesOneCpu', () => {
  it('is true for one CPU, written alone or as a range of one', () => {
    for (const list of ['0', '7', ' 3 ', '2-2', '12', '1,1']) expect(namesOneCpu(list), list).toBe(true);
    for (const list of ['0,1', '0-1', '1-0', '', 'a', '0-', '0,a']) expect(namesOneCpu(list), list).toBe(false);
  });

  it('parses a list whole, or not at all', () => {
    expect(parseCpuList('0,2-4')).toEqual([0, 2, 3, 4]);
    for (const list of ['', '1-', '0,x', '3-1', '1,,2']) expect(parseCpuList(list), list).toBeUndefined();
  });
});

const semiSpace = `--max-semi-space-size=${semiSpaceMb}`;

describe('gcNodeArgs', () => {
  it('gives the semi-space always and the single-threaded collector on one CPU, unless already given', () => {
    expect(gcNodeArgs(false)).toEqual([semiSpace]);
    expect(gcNodeArgs(true)).toEqual([semiSpace, singleThreadedGcFlag]);
    expect(gcNodeArgs(true, ['--max-semi-space-size=4'])).toEqual([singleThreadedGcFlag]);
    expect(gcNodeArgs(true, ['--max_semi_space_size=32', '--single-threaded-gc'])).toEqual([]);
    expect(gcNodeArgs(false, ['--cpu-prof'])).toEqual([semiSpace]);
    expect(spawnedGcArgs({ cpus: '0-1' })).toEqual([semiSpace]);
    expect(spawnedGcArgs({ cpus: '1' })).toEqual([semiSpace, singleThreadedGcFlag]);
    expect(spawnedGcArgs({ cpus: '1', defaultGc: true })).toEqual([]);
  });
});

describe.runIf(process.platform === 'linux' && tasksetRuns())('spawnNode and the garbage collector', () => {
  it('passes both flags to a node pinned to one CPU, the semi-space alone to an unpinned one', async () => {
    const pinned = await commandLineOf({ cpus: '0' });
    expect(pinned).toContain(singleThreadedGcFlag);
    expect(pinned).toContain(semiSpace);
    expect(pinned.indexOf(singleThreadedGcFlag)).toBeLessThan(pinned.indexOf('serve'));
    const unpinned = await commandLineOf({});
    expect(unpinned).toContain(semiSpace);
    expect(unpinned).not.toContain(singleThreadedGcFlag);
  }, 60_000);

  it('passes neither with defaultGc, and keeps a semi-space the caller gave', async () => {
    const plain = await commandLineOf({ cpus: '0', defaultGc: true });
    expect(plain.filter((arg) => arg === singleThreadedGcFlag || arg.startsWith('--max-semi-space-size'))).toEqual([]);
    const own = await commandLineOf({ nodeArgs: ['--max-semi-space-size=4'] });
    expect(own.filter((arg) => arg.startsWith('--max-semi-space-size'))).toEqual(['--max-semi-space-size=4']);
  }, 60_000);
});
