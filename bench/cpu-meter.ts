/**
 * CPU time (user + system) spent during a scenario: of this process (the clients, or the whole
 * embedded system), and of the replicated primary and backup, read from /proc by their pids.
 */
import * as fs from 'node:fs';

export interface CpuMeter {
  /** CPU µs used since the meter started; null where a process's time cannot be read. */
  stop(): { bench: number; primary: number | null; backup: number | null };
}

/** CPU time of a process from /proc (Linux), in µs; null where it cannot be read. */
export function processCpuUs(pid: number): number | null {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime, fields 14 and 15 of stat, in clock ticks (USER_HZ, 100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return null;
  }
}

export function startCpuMeter(pids: { primary: number; backup: number } | undefined): CpuMeter {
  const bench = process.cpuUsage();
  const primary = pids === undefined ? null : processCpuUs(pids.primary);
  const backup = pids === undefined ? null : processCpuUs(pids.backup);
  const since = (start: number | null, pid: number | undefined): number | null => {
    if (start === null || pid === undefined) return null;
    const now = processCpuUs(pid);
    return now === null ? null : now - start;
  };
  return {
    stop: () => {
      const used = process.cpuUsage(bench);
      return { bench: used.user + used.system, primary: since(primary, pids?.primary), backup: since(backup, pids?.backup) };
    },
  };
}
