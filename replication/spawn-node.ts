/**
 * Starting `txlog serve` as a child process and waiting for its "listening" line: used by
 * `txlog demo`, `txlog bench` and the failover tests, so all of them run real processes. It
 * imports nothing of `cli/` (it runs the built `cli/main.js` by path), so the CLI and the benches
 * can both use it without depending on each other.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { txlogError } from '../wal/errors.js';

/** The built `txlog` command (dist/cli/main.js beside this file's dist/replication/). */
export const cliMainPath = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface SpawnedNode {
  process: ChildProcess;
  pid: number;
  addresses: string[];
  /** Where it serves `/metrics` (`host:port`), when started with `--metrics-listen`. */
  metricsAddress: string | undefined;
  /** Everything the node wrote to stderr so far (its log), for reports and failed tests. */
  log(): string;
  /** SIGTERM and wait for exit (a clean close). */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit (a crash). */
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

export interface SpawnNodeOptions {
  /** Arguments after `txlog serve`. */
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** CPU list for `taskset -c` (repeatable benchmarks). */
  cpus?: string;
  /**
   * Run node with its own garbage-collector settings instead of txlog's (`gcNodeArgs`).
   * @default false
   */
  defaultGc?: boolean;
  /**
   * Arguments for node itself, before the script (e.g. `--cpu-prof`, which NODE_OPTIONS does
   * not allow). @default none
   */
  nodeArgs?: string[];
  startTimeoutMs?: number;
  /** Log lines kept from stderr. @default 2000 */
  logLinesMax?: number;
}

/**
 * V8 collects garbage with helper threads (parallel scavenges, concurrent marking); in a process
 * confined to one CPU they can only take turns with the event loop, and the hand-offs cost more
 * than they save: a pair node pinned to one CPU served 3-28% more transactions a second with
 * them off (README, "Measured"). The flag cannot be set from inside a running process, and
 * NODE_OPTIONS refuses it, so it goes on the command line.
 */
export const singleThreadedGcFlag = '--single-threaded-gc';

/**
 * The young generation's semi-space, in MB. A transaction in flight is young garbage a scavenge
 * may have to copy; V8's default on 64-bit machines is 16 MB, and with 8 a pair at 256 in flight
 * served 17-27% more transactions a second under `interval` through `txlog bench` (`always`
 * within its spread; 10-30% in a scratch script's fresh pairs) on the machine this was measured
 * on (README, "Measured"); 4 and 12 gave what 16 did, 2 less. On node's command line: set from inside the
 * process (`v8.setFlagsFromString`) it capped the young generation alike but gave none of that.
 */
export const semiSpaceMb = 8;
const semiSpaceFlag = '--max-semi-space-size';

/** The CPUs of a `taskset -c` list (`0`, `0,2`, `1-3`), or undefined when any part is not one. */
export function parseCpuList(list: string): number[] | undefined {
  const cpus: number[] = [];
  for (const part of list.split(',')) {
    const range = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (range === null) return undefined;
    const first = Number(range[1]);
    const last = range[2] === undefined ? first : Number(range[2]);
    if (last < first) return undefined;
    for (let cpu = first; cpu <= last; cpu++) cpus.push(cpu);
  }
  return cpus;
}

/** Whether a `taskset -c` list names exactly one CPU (`3`, `3-3`, `3,3`). */
export function namesOneCpu(cpus: string): boolean {
  return new Set(parseCpuList(cpus)).size === 1;
}

/**
 * node's garbage-collector arguments for a txlog node: the semi-space of `semiSpaceMb` (unless
 * `given`, the other node arguments, set one), and `--single-threaded-gc` on one CPU (unless
 * given too).
 */
export function gcNodeArgs(oneCpu: boolean, given: readonly string[] = []): string[] {
  const has = (flag: string): boolean => given.some((arg) => arg.replace(/_/g, '-') === flag || arg.replace(/_/g, '-').startsWith(`${flag}=`));
  const args: string[] = [];
  if (!has(semiSpaceFlag)) args.push(`${semiSpaceFlag}=${semiSpaceMb}`);
  if (oneCpu && !has(singleThreadedGcFlag)) args.push(singleThreadedGcFlag);
  return args;
}

/** The garbage-collector arguments `spawnNode` gives a node started with these options. */
export function spawnedGcArgs(options: Pick<SpawnNodeOptions, 'cpus' | 'defaultGc' | 'nodeArgs'>): string[] {
  if (options.defaultGc === true) return [];
  return gcNodeArgs(options.cpus !== undefined && namesOneCpu(options.cpus), options.nodeArgs ?? []);
}

export async function spawnNode(options: SpawnNodeOptions): Promise<SpawnedNode> {
  const command = options.cpus === undefined ? process.execPath : 'taskset';
  const nodeArgs = [...spawnedGcArgs(options), ...(options.nodeArgs ?? [])];
  const args = options.cpus === undefined
    ? [...nodeArgs, cliMainPath, 'serve', '--exit-on-stdin-eof', ...options.args]
    : ['-c', options.cpus, process.execPath, ...nodeArgs, cliMainPath, 'serve', '--exit-on-stdin-eof', ...options.args];
  // Its standard input is a pipe from us: if this process dies, even by SIGKILL, the node sees
  // the pipe close and stops, instead of running on as an orphan.
  const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  const logLines: string[] = [];
  const logLinesMax = options.logLinesMax ?? 2000;
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    logLines.push(chunk);
    if (logLines.length > logLinesMax) logLines.shift();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const waitExit = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  const listening = await new Promise<{ addresses: string[]; metrics?: string }>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(txlogError('TIMEOUT', `txlog serve did not start in time: ${logLines.join('')}`));
    }, options.startTimeoutMs ?? 20_000);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buffered.slice(0, newline)) as { addresses: string[]; metrics?: string });
      } catch (error) {
        reject(error);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(txlogError('IO_ERROR', `txlog serve exited with ${String(code)} before listening: ${logLines.join('')}`));
    });
  });
  return {
    process: child,
    pid: child.pid!,
    addresses: listening.addresses,
    metricsAddress: listening.metrics,
    log: () => logLines.join(''),
    stop: () => waitExit('SIGTERM'),
    kill: () => waitExit('SIGKILL'),
    exited,
  };
}
