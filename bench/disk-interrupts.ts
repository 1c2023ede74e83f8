/**
 * Which CPU takes the interrupts of the disk a benchmark writes to (Linux only). A process that
 * fdatasyncs waits for the disk's completion interrupt; when that interrupt lands on another CPU
 * than the waiting thread's, the wake-up crosses CPUs, and on a virtual machine that costs far
 * more than the flush itself (README, "Where the disk's interrupts land": a pinned write+fdatasync
 * was up to twice as slow on the CPU without them, with the command). The placement of the primary,
 * whose fdatasync is on every commit's path, and of the two-hop floor's forwarder, then decides
 * the latency floor, so `txlog bench` says where the disk's interrupts landed during its run.
 *
 * The device is found from the directory's `st_dev` through sysfs (`/sys/dev/block/MAJ:MIN`,
 * up to the first ancestor with `msi_irqs`, the PCI function of the disk); its interrupts are
 * counted per CPU in `/proc/interrupts`. Anything missing (another OS, a device without MSI
 * interrupts, a tmpfs) gives undefined: the report then says nothing about it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseCpuList } from '../replication/spawn-node.js';

export interface DiskInterruptSource {
  /** The block device's name (`vda`, `nvme0n1`, a partition's disk). */
  device: string;
  /** Its interrupt numbers (`msi_irqs` of its PCI function). */
  irqs: number[];
}

export interface DiskInterruptCounts {
  device: string;
  /** Interrupts of the device per CPU (index = CPU number) over the span counted. */
  perCpu: number[];
}

/** Major and minor number of a Linux `dev_t` as Node's `stat` gives it. */
export function deviceNumbers(dev: number): { major: number; minor: number } {
  const high = Math.floor(dev / 2 ** 32);
  const low = dev % 2 ** 32;
  return {
    major: ((low >>> 8) & 0xfff) | ((high & 0xfffff000) >>> 0),
    minor: (low & 0xff) | ((low >>> 12) & 0xfff00) | (((high & 0xfff) << 20) >>> 0),
  };
}

/** The device holding `dir` and its interrupt numbers, or undefined when they cannot be found. */
export function diskInterruptSource(dir: string, sysRoot = '/sys'): DiskInterruptSource | undefined {
  try {
    const { major, minor } = deviceNumbers(fs.statSync(dir).dev);
    let at = fs.realpathSync(path.join(sysRoot, 'dev', 'block', `${major}:${minor}`));
    let device: string | undefined;
    const devicesRoot = path.join(sysRoot, 'devices');
    while (at.startsWith(devicesRoot) && at !== devicesRoot) {
      // The disk is the last `block/<name>` on the way up (a partition sits inside its disk).
      if (path.basename(path.dirname(at)) === 'block') device = path.basename(at);
      const msi = path.join(at, 'msi_irqs');
      if (fs.existsSync(msi)) {
        const irqs = fs.readdirSync(msi).map(Number).filter((irq) => Number.isSafeInteger(irq));
        return device === undefined || irqs.length === 0 ? undefined : { device, irqs };
      }
      at = path.dirname(at);
    }
    return undefined;
  } catch {
    return undefined;
  }
}

/**
 * Counts per CPU of the given interrupts in the text of `/proc/interrupts`: a header of `CPUn`
 * columns, then one line per interrupt, `N:` and a count per CPU.
 */
export function interruptCountsOf(text: string, irqs: readonly number[]): number[] {
  const lines = text.split('\n');
  const cpus = (lines[0] ?? '').trim().split(/\s+/).filter((column) => /^CPU\d+$/.test(column)).length;
  const perCpu = new Array<number>(cpus).fill(0);
  const wanted = new Set(irqs);
  for (const line of lines.slice(1)) {
    const match = /^\s*(\d+):((?:\s+\d+)+)/.exec(line);
    if (match === null || !wanted.has(Number(match[1]))) continue;
    const counts = match[2]!.trim().split(/\s+/).slice(0, cpus).map(Number);
    counts.forEach((count, cpu) => (perCpu[cpu]! += count));
  }
  return perCpu;
}

/**
 * Starts counting the interrupts of the disk holding `dir`; `stop` returns the counts since, or
 * undefined when the disk or its interrupts could not be found.
 */
export function startDiskInterruptCount(dir: string): { stop(): DiskInterruptCounts | undefined } {
  const source = diskInterruptSource(dir);
  const read = (): number[] | undefined => {
    if (source === undefined) return undefined;
    try {
      return interruptCountsOf(fs.readFileSync('/proc/interrupts', 'utf8'), source.irqs);
    } catch {
      return undefined;
    }
  };
  const start = read();
  return {
    stop() {
      const end = read();
      if (source === undefined || start === undefined || end === undefined) return undefined;
      return { device: source.device, perCpu: end.map((count, cpu) => count - (start[cpu] ?? 0)) };
    },
  };
}

/** "vda: CPU 0 12 (0.1%), CPU 1 10,321 (99.9%)", or a line saying none were counted. */
export function describeDiskInterrupts(counts: DiskInterruptCounts): string {
  const total = counts.perCpu.reduce((sum, count) => sum + count, 0);
  if (total === 0) return `${counts.device}: no interrupts counted`;
  return `${counts.device}: ${counts.perCpu.map((count, cpu) => `CPU ${cpu} ${count.toLocaleString('en-US')} (${((count / total) * 100).toFixed(1)}%)`).join(', ')}`;
}

/**
 * A note when a pinned process that fdatasyncs on the commit path sits on no CPU that took most
 * of the disk's interrupts, or undefined. `cpus` is a taskset list (`0`, `0,1`, `0-1`).
 */
export function placementNote(counts: DiskInterruptCounts, who: string, cpus: string | undefined): string | undefined {
  if (cpus === undefined) return undefined;
  const total = counts.perCpu.reduce((sum, count) => sum + count, 0);
  if (total === 0) return undefined;
  const pinned = parseCpuList(cpus);
  if (pinned === undefined) return undefined;
  const share = pinned.reduce((sum, cpu) => sum + (counts.perCpu[cpu] ?? 0), 0) / total;
  if (share >= 0.5) return undefined;
  const busiest = counts.perCpu.indexOf(Math.max(...counts.perCpu));
  return `${who} ran on CPU ${cpus}, but ${((1 - share) * 100).toFixed(0)}% of the interrupts of the disk it fdatasyncs to (${counts.device}) landed on other CPUs (most on CPU ${busiest}): each of its fdatasyncs ends with a wake-up across CPUs, which on a VM can cost more than the flush; the floors placed like it pay the same`;
}
