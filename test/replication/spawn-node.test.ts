/**
 * `spawnNode` runs a node pinned to one CPU with `node --single-threaded-gc` (the README's
 * recommendation for such a node), and only then unless asked: checked on the real process's
 * command line (`/proc/PID/cmdline`), where taskset has exec'd node.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { namesOneCpu, singleThreadedGcFlag, spawnNode, type SpawnedNode, type SpawnNodeOptions } from '../../dist/replication/spawn-node.js';
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
    for (const list of ['0', '7', ' 3 ', '2-2', '12']) expect(namesOneCpu(list), list).toBe(true);
    for (const list of ['0,1', '0-1', '1-0', '', 'a', '0-', '1,1']) expect(namesOneCpu(list), list).toBe(false);
  });
});

describe.runIf(process.platform === 'linux' && tasksetRuns())('spawnNode and the garbage collector', () => {
  it('passes --single-threaded-gc to a node pinned to one CPU, not to an unpinned one', async () => {
    const pinned = await commandLineOf({ cpus: '0' });
    expect(pinned).toContain(singleThreadedGcFlag);
    expect(pinned).toContain('serve');
    expect(pinned.indexOf(singleThreadedGcFlag)).toBeLessThan(pinned.indexOf('serve'));
    expect(await commandLineOf({})).not.toContain(singleThreadedGcFlag);
  }, 60_000);

  it('leaves it out when told to, and passes it when asked without pinning', async () => {
    expect(await commandLineOf({ cpus: '0', singleThreadedGc: false })).not.toContain(singleThreadedGcFlag);
    expect(await commandLineOf({ singleThreadedGc: true })).toContain(singleThreadedGcFlag);
  }, 60_000);
});
