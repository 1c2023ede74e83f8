/**
 * Proves how `txlog bench` finds where the interrupts of its data's disk land: `dev_t` numbers
 * split as glibc splits them, `/proc/interrupts` counted per CPU for the disk's interrupts only,
 * the device found through a sysfs tree (a fake one here, shaped like this VM's virtio disk, and
 * a partition inside it), and the note it adds when the pinned primary sits elsewhere.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { describeDiskInterrupts, deviceNumbers, diskInterruptSource, interruptCountsOf, placementNote } from '../../bench/disk-interrupts.js';

const procInterrupts = [
  '           CPU0       CPU1       ',
  ' 35:          0          1 PCI-MSIX-0000:00:02.0   0-edge      virtio1-config',
  ' 36:          7   10379291 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0',
  ' 38:          0      75541 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0',
  'NMI:          0          0   Non-maskable interrupts',
  'LOC:    7144409    7629094   Local timer interrupts',
  'ERR:          0',
].join('\n');

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('disk interrupts', () => {
  it('splits dev_t numbers as glibc does', () => {
    expect(deviceNumbers(0xfe00)).toEqual({ major: 254, minor: 0 });
    expect(deviceNumbers(0xfe01)).toEqual({ major: 254, minor: 1 });
    expect(deviceNumbers(0x10301)).toEqual({ major: 259, minor: 1 }); // nvme0n1p1 style: 259:1 (0x103 << 8 | 1)
    // Minor numbers past 255 keep their high bits above the major's (makedev(8, 300)).
    expect(deviceNumbers(((300 & 0xfff00) << 12) | (8 << 8) | (300 & 0xff))).toEqual({ major: 8, minor: 300 });
    // Majors past 4095 go to the high word (makedev(5000, 7)).
    expect(deviceNumbers((5000 & 0xfffff000) * 2 ** 32 + ((5000 & 0xfff) << 8) + 7)).toEqual({ major: 5000, minor: 7 });
  });

  it("counts only the disk's interrupts, per CPU", () => {
    expect(interruptCountsOf(procInterrupts, [35, 36])).toEqual([7, 10379292]);
    expect(interruptCountsOf(procInterrupts, [38])).toEqual([0, 75541]);
    expect(interruptCountsOf(procInterrupts, [99])).toEqual([0, 0]);
  });

  it('finds the disk and its interrupts through sysfs, from the disk or a partition', () => {
    const sys = fs.mkdtempSync(path.join(tmpdir(), 'txlog-sysfs-'));
    made.push(sys);
    const pci = path.join(sys, 'devices', 'pci0000:00', '0000:00:02.0');
    const disk = path.join(pci, 'virtio1', 'block', 'vda');
    fs.mkdirSync(path.join(disk, 'vda1'), { recursive: true });
    fs.mkdirSync(path.join(pci, 'msi_irqs'), { recursive: true });
    for (const irq of ['35', '36']) fs.writeFileSync(path.join(pci, 'msi_irqs', irq), 'msix');
    const { major, minor } = deviceNumbers(fs.statSync(sys).dev);
    fs.mkdirSync(path.join(sys, 'dev', 'block'), { recursive: true });
    const link = path.join(sys, 'dev', 'block', `${major}:${minor}`);

    fs.symlinkSync(disk, link);
    expect(diskInterruptSource(sys, sys)).toEqual({ device: 'vda', irqs: [35, 36] });
    fs.unlinkSync(link);
    fs.symlinkSync(path.join(disk, 'vda1'), link);
    expect(diskInterruptSource(sys, sys)).toEqual({ device: 'vda', irqs: [35, 36] });

    // No MSI interrupts on the way up (a virtual device): nothing to say.
    fs.rmSync(path.join(pci, 'msi_irqs'), { recursive: true });
    expect(diskInterruptSource(sys, sys)).toBeUndefined();
    // No such device at all.
    expect(diskInterruptSource(path.join(sys, 'missing'), sys)).toBeUndefined();
  });

  it('describes the counts and notes a pinned primary away from them', () => {
    const counts = { device: 'vda', perCpu: [12, 10_321] };
    expect(describeDiskInterrupts(counts)).toBe('vda: CPU 0 12 (0.1%), CPU 1 10,321 (99.9%)');
    expect(describeDiskInterrupts({ device: 'vda', perCpu: [0, 0] })).toBe('vda: no interrupts counted');
    const note = placementNote(counts, 'The primary', '0');
    expect(note).toMatch(/^The primary ran on CPU 0, but 100% of the interrupts of the disk it fdatasyncs to \(vda\) landed on other CPUs \(most on CPU 1\)/);
    expect(placementNote(counts, 'The primary', '1')).toBeUndefined();
    expect(placementNote(counts, 'The primary', '0-1')).toBeUndefined();
    expect(placementNote(counts, 'The primary', undefined)).toBeUndefined();
    // A list taskset would refuse says nothing, rather than judge a part of it.
    expect(placementNote(counts, 'The primary', '0,x')).toBeUndefined();
    expect(placementNote({ device: 'vda', perCpu: [0, 0] }, 'The primary', '0')).toBeUndefined();
  });
});
