/**
 * A simulated network behind the `Network`/`Transport` seams: every connection is a pair of
 * in-memory byte pipes whose chunks arrive after a latency drawn from the seed, in order per
 * direction, on the receiving process's clock (so a paused process receives nothing until it
 * resumes). The world cuts links between hosts (a partition resets the connections that cross it
 * and refuses new ones until it heals) and kills processes (their connections close, their
 * listeners go away).
 */
import type { Network, Transport } from '../../replication/transport.js';
import type { SeededRandom } from '../helpers/random.js';
import type { ProcessClock, Scheduler } from './scheduler.js';

/** Bytes in flight on one direction before `write` says "wait for drain". */
const highWaterBytes = 1024 * 1024;

interface Listener {
  host: string;
  process: SimProcess;
  onTransport: (transport: Transport) => void;
}

/** One simulated process's presence on the network. */
export interface SimProcess {
  /** The machine it runs on: partitions are between machines. */
  readonly machine: string;
  readonly clock: ProcessClock;
}

export class SimNetwork {
  private readonly listeners = new Map<string, Listener>();
  private readonly cut = new Set<string>();
  /** Listen addresses cut off: one link of several fails while the others carry on. */
  private readonly cutAddresses = new Set<string>();
  private readonly open = new Set<SimEnd>();
  /** Latency range of one delivery, in ms; a slow link is drawn now and then. */
  latencyMs = { min: 0.05, max: 0.4, slowChance: 0.01, slowMs: 20 };

  constructor(
    private readonly scheduler: Scheduler,
    private readonly random: SeededRandom,
  ) {}

  /** The `Network` a process uses: it listens and dials as `process`. */
  networkFor(process: SimProcess): Network {
    return {
      listen: async (host, port, onTransport) => {
        const key = `${host}:${port}`;
        if (this.listeners.has(key)) throw Object.assign(new Error(`EADDRINUSE: ${key}`), { code: 'EADDRINUSE' });
        this.listeners.set(key, { host, process, onTransport });
        return {
          port,
          close: async () => {
            if (this.listeners.get(key)?.process === process) this.listeners.delete(key);
          },
        };
      },
      connect: (host, port) => this.connect(process, `${host}:${port}`),
    };
  }

  /** Cuts every link between two machines: open connections across it reset, new ones fail. */
  partition(machineA: string, machineB: string): void {
    this.cut.add(linkKey(machineA, machineB));
    for (const end of [...this.open]) {
      if (linkKey(end.process.machine, end.peer!.process.machine) === linkKey(machineA, machineB)) end.reset();
    }
  }

  /** Cuts the links to one listen address (one of several links between two nodes). */
  cutAddress(address: string): void {
    this.cutAddresses.add(address);
    for (const end of [...this.open]) if (end.listenAddress === address) end.reset();
  }

  /** Since when some connection between the two processes has been open at both ends, if one is. */
  connectedSinceMs(one: SimProcess, other: SimProcess): number | undefined {
    let sinceMs: number | undefined;
    for (const end of this.open) {
      if (end.process !== one || end.peer?.process !== other || end.peer.closed) continue;
      sinceMs = Math.min(sinceMs ?? end.openedAtMs, end.openedAtMs);
    }
    return sinceMs;
  }

  /** Connection ends of `process` open now: each connection a node holds has one of these. */
  openEndsOf(process: SimProcess): number {
    let count = 0;
    for (const end of this.open) if (end.process === process) count += 1;
    return count;
  }

  isAddressCut(address: string): boolean {
    return this.cutAddresses.has(address);
  }

  healAddress(address: string): void {
    this.cutAddresses.delete(address);
  }

  heal(machineA: string, machineB: string): void {
    this.cut.delete(linkKey(machineA, machineB));
  }

  healAll(): void {
    this.cut.clear();
    this.cutAddresses.clear();
  }

  isCut(machineA: string, machineB: string): boolean {
    return this.cut.has(linkKey(machineA, machineB));
  }

  /** A process died: its connections close (the peers hear of it after a latency), its listeners go. */
  killProcess(process: SimProcess): void {
    for (const [key, listener] of [...this.listeners]) if (listener.process === process) this.listeners.delete(key);
    for (const end of [...this.open]) if (end.process === process) end.reset();
  }

  /** When a chunk sent now arrives (at least `after`, to keep each direction in order). */
  deliveryDelayMs(after: number): number {
    const { min, max, slowChance, slowMs } = this.latencyMs;
    let latency = min + this.random.float() * (max - min);
    if (this.random.float() < slowChance) latency += this.random.float() * slowMs;
    return Math.max(this.scheduler.nowMs + latency, after) - this.scheduler.nowMs;
  }

  get nowMs(): number {
    return this.scheduler.nowMs;
  }

  schedule(delayMs: number, callback: () => void, owner: ProcessClock): void {
    this.scheduler.schedule(delayMs, callback, owner);
  }

  track(end: SimEnd, open: boolean): void {
    if (open) this.open.add(end);
    else this.open.delete(end);
  }

  private connect(dialer: SimProcess, address: string): Transport {
    const near = new SimEnd(this, dialer, address, address);
    const listener = this.listeners.get(address);
    const reachable = listener !== undefined && !this.isCut(dialer.machine, listener.process.machine) && !this.cutAddresses.has(address);
    if (!reachable) {
      // Refused (or lost in a partition): the dialer hears of it after a round trip.
      this.schedule(this.deliveryDelayMs(0) * 2, () => near.fail(new Error(`ECONNREFUSED ${address}`)), dialer.clock);
      return near;
    }
    const far = new SimEnd(this, listener.process, `${dialer.machine}:dialer`, address);
    near.peer = far;
    far.peer = near;
    this.track(near, true);
    this.track(far, true);
    this.schedule(this.deliveryDelayMs(0), () => {
      if (far.closed) return;
      listener.onTransport(far);
    }, listener.process.clock);
    return near;
  }
}

/** One end of a simulated connection. */
export class SimEnd implements Transport {
  peer: SimEnd | undefined;
  closed = false;
  private inFlightBytes = 0;
  private lastArrivalMs = 0;
  private readonly dataListeners: Array<(chunk: Buffer) => void> = [];
  private readonly closeListeners: Array<() => void> = [];
  private readonly errorListeners: Array<(error: Error) => void> = [];
  private drainListeners: Array<() => void> = [];
  /** Chunks that arrived before anyone listened (the server side before its handler is set). */
  private early: Buffer[] = [];
  readonly openedAtMs: number;

  constructor(
    private readonly network: SimNetwork,
    readonly process: SimProcess,
    readonly remoteAddress: string,
    /** The listen address this connection was made to. */
    readonly listenAddress: string,
  ) {
    this.openedAtMs = network.nowMs;
  }

  get bufferedBytes(): number {
    return this.inFlightBytes;
  }

  write(bytes: Uint8Array): boolean {
    const peer = this.peer;
    if (this.closed || peer === undefined) return false;
    const chunk = Buffer.from(bytes);
    this.inFlightBytes += chunk.length;
    const delayMs = this.network.deliveryDelayMs(this.lastArrivalMs);
    this.lastArrivalMs = this.network.nowMs + delayMs;
    this.network.schedule(delayMs, () => {
      this.inFlightBytes -= chunk.length;
      if (this.inFlightBytes < highWaterBytes && this.drainListeners.length > 0) {
        const listeners = this.drainListeners;
        this.drainListeners = [];
        for (const listener of listeners) listener();
      }
      if (!peer.closed) peer.receive(chunk);
    }, peer.process.clock);
    return this.inFlightBytes < highWaterBytes;
  }

  cork(): void {}

  uncork(): void {}

  onData(listener: (chunk: Buffer) => void): void {
    this.dataListeners.push(listener);
    const early = this.early;
    this.early = [];
    for (const chunk of early) listener(chunk);
  }

  onceDrained(listener: () => void): void {
    this.drainListeners.push(listener);
  }

  onClose(listener: () => void): void {
    if (this.closed) {
      this.network.schedule(0, listener, this.process.clock);
      return;
    }
    this.closeListeners.push(listener);
  }

  onError(listener: (error: Error) => void): void {
    this.errorListeners.push(listener);
  }

  /** Our side ends: the peer closes once what we sent has arrived. */
  close(): void {
    if (this.closed) return;
    const peer = this.peer;
    this.finish();
    // The peer hears of the close after what we sent before it.
    if (peer !== undefined) this.network.schedule(this.network.deliveryDelayMs(this.lastArrivalMs), () => peer.finish(), peer.process.clock);
  }

  destroy(): void {
    this.close();
  }

  /** A reset: both ends close, the peer a latency later. */
  reset(): void {
    this.close();
  }

  /** The connection could not be made. */
  fail(error: Error): void {
    if (this.closed) return;
    for (const listener of this.errorListeners) listener(error);
    this.finish();
  }

  receive(chunk: Buffer): void {
    if (this.closed) return;
    if (this.dataListeners.length === 0) {
      this.early.push(chunk);
      return;
    }
    for (const listener of this.dataListeners) listener(chunk);
  }

  finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.network.track(this, false);
    const listeners = this.closeListeners.splice(0);
    for (const listener of listeners) listener();
  }
}

function linkKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}
