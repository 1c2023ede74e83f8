/**
 * CPU time spent during a scenario: of this process (the clients, or the whole embedded system),
 * and of the replicated primary and backup, read from /proc by their pids.
 *
 * The time comes from `/proc/PID/task/*\/schedstat`, whose first field is the nanoseconds each
 * thread has run, kept by the scheduler at every switch: exact to the nanosecond, where the
 * utime and stime of `/proc/PID/stat` come in 10 ms ticks (a large error on a 500 ms `--quick`
 * scenario) and were seen to charge short, frequent wake-ups about 3x (issue 11). A thread that
 * exits during a scenario takes its time with it; Node's threads (main, libuv pool, V8 helpers)
 * live as long as the process.
 */
import * as fs from 'node:fs';

/**
 * How CPU time is read: `schedstat` (exact, Linux with schedstats), `stat-ticks` (`/proc/PID/stat`
 * utime + stime, tick-sampled) where schedstat is missing, `getrusage` (this process only) where
 * there is no /proc.
 */
export type CpuMethod = 'schedstat' | 'stat-ticks' | 'getrusage';

export interface CpuMeter {
  /** CPU µs used since the meter started; null where a process's time cannot be read. */
  stop(): { bench: number; primary: number | null; backup: number | null };
}

/** The method this machine allows, decided once from this process's own /proc entry. */
export const cpuMethod: CpuMethod = fs.existsSync(`/proc/${process.pid}/task/${process.pid}/schedstat`)
  ? 'schedstat'
  : fs.existsSync(`/proc/${process.pid}/stat`)
    ? 'stat-ticks'
    : 'getrusage';

/** CPU time of a process (all its live threads), in µs; null where it cannot be read. */
export function processCpuUs(pid: number): number | null {
  switch (cpuMethod) {
    case 'schedstat':
      return schedstatCpuUs(pid);
    case 'stat-ticks':
      return statTicksCpuUs(pid);
    case 'getrusage':
      return pid === process.pid ? ownCpuUs() : null;
  }
}

function schedstatCpuUs(pid: number): number | null {
  let threads: string[];
  try {
    threads = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  let runNs = 0;
  for (const thread of threads) {
    try {
      runNs += Number(fs.readFileSync(`/proc/${pid}/task/${thread}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // The thread exited between the listing and the read: its time is gone either way.
    }
  }
  return runNs / 1000;
}

function statTicksCpuUs(pid: number): number | null {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime, fields 14 and 15 of stat, in clock ticks (USER_HZ, 100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return null;
  }
}

function ownCpuUs(): number {
  const used = process.cpuUsage();
  return used.user + used.system;
}

export function startCpuMeter(pids: { primary: number; backup: number } | undefined): CpuMeter {
  const bench = processCpuUs(process.pid);
  const primary = pids === undefined ? null : processCpuUs(pids.primary);
  const backup = pids === undefined ? null : processCpuUs(pids.backup);
  const since = (start: number | null, pid: number | undefined): number | null => {
    if (start === null || pid === undefined) return null;
    const now = processCpuUs(pid);
    return now === null ? null : now - start;
  };
  return {
    stop: () => ({
      // This process can always read its own time (getrusage is the last resort).
      bench: since(bench, process.pid) ?? 0,
      primary: since(primary, pids?.primary),
      backup: since(backup, pids?.backup),
    }),
  };
}
