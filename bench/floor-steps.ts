/**
 * The floors of this machine as bench steps: write+fdatasync and write of one commit record
 * (bench/floors.ts), a loopback round trip to an echo child, the two overlapped, and the two-hop
 * floor of a replicated commit through a forwarder child placed like the primary
 * (bench/network-floors.ts). A run measures them twice, before and after its scenarios, into the
 * same samples, so a drift of the shared disk over the run shows in both halves.
 */
import { measureFloor } from './floors.js';
import * as path from 'node:path';
import { measureOverlapped, measureRoundTrips, startEchoPeer, startForwarderPeer, echoFrameBytes, type EchoPeer } from './network-floors.js';
import { LatencySamples } from './stats.js';
import type { FloorName, FloorSummary, ScenarioResult, Step } from './bench-types.js';

const floorFileBytes = 64 * 1024 * 1024;

const floorDescriptions: Record<FloorName, string> = {
  'write+fdatasync': 'pwrite of one commit record then fdatasync, in a preallocated file (bench/floors.ts)',
  write: 'pwrite of one commit record, no fdatasync (bench/floors.ts)',
  'tcp-rtt': `Node-to-Node loopback TCP round trip to a child echo process, ${echoFrameBytes}-byte frames, one at a time`,
  'tcp-rtt+fdatasync': 'send to the echo child, write+fdatasync one commit record locally, await the echo',
  'two-hop+fdatasync': 'round trip from here (the client) to a forwarder child placed like the primary, which sends each frame on to the echo child (placed like the backup), write+fdatasyncs one commit record meanwhile, and answers once the echo is back (bench/forwarder-server.ts)',
};

export interface FloorSettings {
  /** Where the floor files go. */
  root: string;
  recordBytes: number;
  /** Each half measures each floor for this long. */
  floorMs: number;
  /** `taskset -c` list for the echo child (it goes with the backup), or undefined. */
  echoCpus: string | undefined;
  /** `taskset -c` list for the forwarder child of the two-hop floor (it goes with the primary), or undefined. */
  forwarderCpus: string | undefined;
}

export class FloorRun {
  private readonly samples = new Map<FloorName, LatencySamples>(
    (['write+fdatasync', 'write', 'tcp-rtt', 'tcp-rtt+fdatasync', 'two-hop+fdatasync'] as const).map((name) => [name, new LatencySamples()]),
  );
  private echo: EchoPeer | undefined;
  private forwarder: EchoPeer | undefined;
  private readonly settings: FloorSettings;

  constructor(settings: FloorSettings) {
    this.settings = settings;
  }

  /** The steps of one half (`first half`, `second half`); both add to the same samples. */
  steps(half: string): Step[] {
    const { root, recordBytes, floorMs } = this.settings;
    return [
      {
        label: `floors (${half}): write+fdatasync, write`,
        run: async () => {
          const floorOptions = { dir: root, recordBytes, durationMs: floorMs, fileBytes: floorFileBytes };
          measureFloor({ ...floorOptions, batchRecords: 1, sync: true, samples: this.samples.get('write+fdatasync')! });
          measureFloor({ ...floorOptions, batchRecords: 1, sync: false, samples: this.samples.get('write')! });
        },
      },
      {
        label: `floors (${half}): loopback round trip, and overlapped with fdatasync`,
        run: async () => {
          const echo = (this.echo ??= await startEchoPeer(this.settings.echoCpus));
          await measureRoundTrips(echo, Math.min(200, floorMs), new LatencySamples()); // warm-up
          await measureRoundTrips(echo, floorMs, this.samples.get('tcp-rtt')!);
          await measureOverlapped(echo, { dir: root, recordBytes, fileBytes: floorFileBytes, durationMs: floorMs }, this.samples.get('tcp-rtt+fdatasync')!);
        },
      },
      {
        label: `floors (${half}): two hops, client to forwarder to echo, fdatasync overlapped`,
        run: async () => {
          const echo = (this.echo ??= await startEchoPeer(this.settings.echoCpus));
          const forwarderFile = { filePath: path.join(root, 'floor-two-hop.tmp'), recordBytes, fileBytes: floorFileBytes };
          const forwarder = (this.forwarder ??= await startForwarderPeer(this.settings.forwarderCpus, echo, forwarderFile));
          await measureRoundTrips(forwarder, Math.min(200, floorMs), new LatencySamples()); // warm-up
          await measureRoundTrips(forwarder, floorMs, this.samples.get('two-hop+fdatasync')!);
        },
      },
    ];
  }

  /** Each floor over both halves. */
  summaries(): FloorSummary[] {
    return [...this.samples.entries()].map(([name, samples]) => {
      const summary = samples.summarize();
      return { name, p50Us: summary.p50Us, p99Us: summary.p99Us, p999Us: summary.p999Us, maxUs: summary.maxUs, throughputPerSec: 1e6 / summary.meanUs, samples: summary.samples, what: floorDescriptions[name] };
    });
  }

  async close(): Promise<void> {
    await this.forwarder?.close();
    await this.echo?.close();
  }
}

/** A floor as a row of the scenario table, read against itself. */
export function floorScenario(floor: FloorSummary): ScenarioResult {
  return {
    name: `floor ${floor.name}`,
    system: 'floor',
    mode: floor.name.startsWith('tcp') || floor.name.startsWith('two-hop') ? 'replicated' : 'embedded',
    fsync: floor.name.endsWith('fdatasync') ? 'always' : 'never',
    concurrency: 1,
    p50Us: floor.p50Us,
    p99Us: floor.p99Us,
    p999Us: floor.p999Us,
    maxUs: floor.maxUs,
    throughputPerSec: floor.throughputPerSec,
    samples: floor.samples,
    cpuUsPerTransaction: { bench: null, primary: null, backup: null },
    floor: floor.name,
    p50VsFloor: 1,
  };
}
