/**
 * Whether running some code loads a package: a fresh Node process (with tsx, from the
 * repository root) runs `setup`, notes whether any file of the packages is loaded, runs `load`
 * (which should load them, so a check that cannot see them fails), and notes it again.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface LoadedBeforeAndAfter {
  before: boolean;
  after: boolean;
}

/** `packages`: names as in `node_modules/<name>/` (a regular-expression alternation). */
export function packagesLoaded(packages: string, setup: string, load: string): LoadedBeforeAndAfter {
  const pattern = `[\\\\/]node_modules[\\\\/](${packages})[\\\\/]`;
  const script = `
    import { createRequire } from 'node:module';
    const require = createRequire(import.meta.url);
    const loaded = () => Object.keys(require.cache).some((file) => new RegExp(${JSON.stringify(pattern)}).test(file));
    ${setup}
    const before = loaded();
    ${load}
    console.log(JSON.stringify({ before, after: loaded() }));
  `;
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (result.status !== 0) throw new Error(`the loading check failed: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').pop()!) as LoadedBeforeAndAfter;
}
