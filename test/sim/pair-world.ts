/**
 * Two simulated machines running the real `TxlogNode` pair (unmodified: disk, clock, randomness
 * and network reach it only through its seams), clients that resend with the same request ids
 * (`pair-clients.ts`), the outside gateway, and a fault schedule drawn from the seed: either node
 * is killed (with or without its machine) and restarted, the link between the nodes is
 * partitioned and heals, a node is paused as by SIGSTOP and resumed late, links are slow, disks
 * fail and stall.
 *
 * Checked after every step: the invariants of `pair-checks.ts` (one primary per epoch, the
 * backup's log against the primary's, "in sync" against the other node's state, no records before
 * a join, a superseded primary's releases and stepping down, what each node holds in memory).
 * Checked while it runs: no handler sees a second journaled result for a key (a stale primary may
 * call the gateway again, but its record is never acknowledged). Checked once the faults stop and
 * the pair settles: every acknowledged transaction is in the primary's state exactly once and
 * none twice; every event a client read is there; both logs are identical record for record and
 * both states equal; the backup found no determinism violation; every acknowledged request resent
 * gets the reply it first got; then both nodes let go of everything they held for the work.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { replicationHooksOf } from '../../engine/replication-hooks.js';
import { startNode, type TxlogNode } from '../../replication/node.js';
import type { Platform, Random } from '../../wal/platform.js';
import { seededRandom, type SeededRandom } from '../helpers/random.js';
import { Gateway, InvariantViolation, bugBehind, checkStreams, checkTagCounts, closeLmdbUnder, simulationTempRoot, deferred, tagCounts } from './bank.js';
import { SimDisk, noDiskFaults } from './disk.js';
import type { SeedSummary } from './embedded-world.js';
import { SimNetwork, type SimProcess } from './network.js';
import { PairChecks, pairSettled, resourceSample, type CheckedNode } from './pair-checks.js';
import { awaitDrained } from './resource-checks.js';
import { PairClients } from './pair-clients.js';
import { Scheduler, type ProcessClock } from './scheduler.js';

interface NodeIncarnation {
  number: number;
  machine: MachineName;
  alive: boolean;
  clock: ProcessClock;
  process: SimProcess;
  stateRoot: string;
  node: TxlogNode | undefined;
  /** The epoch it last said it was ready to serve in as primary. */
  readyEpoch: number | undefined;
}

type MachineName = 'a' | 'b';
const addressOf: Record<MachineName, string> = { a: '127.0.0.1:7001', b: '127.0.0.1:7002' };
/** A second listen address per node: two replication links, so one can fail alone. */
const secondAddressOf: Record<MachineName, string> = { a: '127.0.0.1:7101', b: '127.0.0.1:7102' };
const peerOf: Record<MachineName, MachineName> = { a: 'b', b: 'a' };
const heartbeatIntervalMs = 20;
const heartbeatTimeoutMs = 150;
const connectTimeoutMs = 100;

export async function runPairSeed(seed: number, options: { durationMs?: number } = {}): Promise<SeedSummary> {
  const world = new PairWorld(seed, options.durationMs ?? 3000);
  try {
    return await world.run();
  } finally {
    world.cleanUp();
  }
}

class PairWorld {
  private readonly scheduler = new Scheduler();
  /** Separate streams, so that code drawing more of one (a nonce, a sync) leaves the others alone. */
  private readonly random: SeededRandom;
  private readonly faultRandom: SeededRandom;
  private readonly workloadRandom: SeededRandom;
  private readonly platformRandom: SeededRandom;
  private readonly clients: PairClients;
  /** Per seed: how often faults come, and how long a client waits before it resends. */
  private readonly faultIntervalMs: { min: number; max: number };
  private readonly network: SimNetwork;
  private readonly disks: Record<MachineName, SimDisk>;
  private readonly nodes: Record<MachineName, NodeIncarnation | undefined> = { a: undefined, b: undefined };
  private readonly tempRoot = mkdtempSync(path.join(simulationTempRoot(), 'txlog-sim-pair-'));
  private readonly gateway: Gateway;
  private readonly counts = { crashes: 0, machineCrashes: 0, restarts: 0, storeFailures: 0, failovers: 0, partitions: 0 };
  private incarnations = 0;
  private faultsOn = true;
  /** The first broken invariant: thrown where it is found, and again by the run loop. */
  private violation: InvariantViolation | undefined;
  private readonly checks: PairChecks;
  private readonly clientCount: number;

  constructor(
    private readonly seed: number,
    private readonly durationMs: number,
  ) {
    this.random = seededRandom(seed);
    this.faultRandom = seededRandom(this.random.integer(0, 2 ** 32 - 1));
    this.workloadRandom = seededRandom(this.random.integer(0, 2 ** 32 - 1));
    this.platformRandom = seededRandom(this.random.integer(0, 2 ** 32 - 1));
    const dense = this.random.float() < 0.75;
    this.faultIntervalMs = dense ? { min: 20, max: 200 } : { min: 100, max: 900 };
    const clientDeadlineMs = this.random.float() < 0.3 ? this.random.integer(50, 400) : 1500;
    this.network = new SimNetwork(this.scheduler, seededRandom(this.random.integer(0, 2 ** 32 - 1)));
    this.disks = {
      a: new SimDisk(seededRandom(this.random.integer(0, 2 ** 32 - 1)), 'a'),
      b: new SimDisk(seededRandom(this.random.integer(0, 2 ** 32 - 1)), 'b'),
    };
    for (const disk of Object.values(this.disks)) {
      disk.faults = {
        syncFailure: this.random.float() < 0.7 ? 0 : this.random.float() * 0.002,
        writeFailure: this.random.float() < 0.7 ? 0 : this.random.float() * 0.002,
        slowSync: this.random.float() * 0.2,
      };
    }
    this.network.latencyMs.slowChance = this.random.float() * 0.05;
    const latencyMaxMs = this.network.latencyMs.max + this.network.latencyMs.slowMs;
    this.checks = new PairChecks((invariant, message) => this.fail(invariant, message), { heartbeatIntervalMs, heartbeatTimeoutMs, connectTimeoutMs, latencyMaxMs });
    this.gateway = new Gateway(this.workloadRandom, (invariant, message) => this.fail(invariant, message));
    this.clientCount = this.random.integer(1, 4);
    this.clients = new PairClients({
      scheduler: this.scheduler,
      network: this.network,
      servers: [addressOf.a, addressOf.b],
      platformRandom: this.platformRandom,
      workloadRandom: this.workloadRandom,
      deadlineMs: clientDeadlineMs,
      connectTimeoutMs,
      fileSystemFor: (clock) => this.disks.a.fileSystemFor(clock, '/unused'),
      fail: (invariant, message) => this.fail(invariant, message),
    });
  }

  async run(): Promise<SeedSummary> {
    this.scheduler.note(`seed ${this.seed}: ${this.clientCount} clients`);
    this.scheduler.schedule(0, () => void this.startNode('a').catch(() => undefined));
    this.scheduler.schedule(0, () => void this.startNode('b').catch(() => undefined));
    this.scheduleFault();
    for (let client = 0; client < this.clientCount; client++) {
      // A violation found inside a client is kept by `fail` and thrown again by the run loop.
      this.scheduler.schedule(this.workloadRandom.integer(5, 50), () => void this.clients.run(client).catch(() => undefined));
    }
    this.scheduler.schedule(this.durationMs, () => (this.faultsOn = false));
    const settled = await this.scheduler.runUntil(
      () => (this.checkStep(), this.violation !== undefined || (!this.faultsOn && this.clients.done === this.clientCount)),
      this.durationMs * 40,
    );
    if (this.violation !== undefined) throw this.violation;
    if (!settled || this.clients.done < this.clientCount) this.fail('progress', `clients finished ${this.clients.done} of ${this.clientCount} by virtual ${Math.round(this.scheduler.nowMs)} ms`);
    await this.settle();
    await this.finalCheck();
    // The run ends here; what follows only waits for the nodes to let go of what they held.
    const summary: SeedSummary = {
      seed: this.seed,
      steps: this.scheduler.steps,
      simulatedMs: Math.round(this.scheduler.nowMs),
      ...this.counts,
      acknowledged: this.clients.acknowledged.size,
      diskFaults: { ...this.disks.a.injected },
      traceHash: this.scheduler.traceHash(),
    };
    await awaitDrained(this.scheduler, this.checks.resources, () => this.checkedNodes().map((checked) => resourceSample(checked)));
    return summary;
  }

  cleanUp(): void {
    closeLmdbUnder(this.tempRoot);
    rmSync(this.tempRoot, { recursive: true, force: true });
  }

  // ------------------------------------------------------------------ nodes

  private async startNode(machine: MachineName): Promise<void> {
    const number = ++this.incarnations;
    const clock = this.scheduler.clockOf(`${machine}${number}`);
    const process: SimProcess = { machine, clock };
    const stateRoot = path.join(this.tempRoot, `${machine}-${number}`);
    const incarnation: NodeIncarnation = { number, machine, alive: true, clock, process, stateRoot, node: undefined, readyEpoch: undefined };
    this.nodes[machine] = incarnation;
    const random: Random = { float: () => this.platformRandom.float(), bytes: (count) => this.platformRandom.bytes(count) };
    const platform: Platform = { fileSystem: this.disks[machine].fileSystemFor(clock, stateRoot), clock, random };
    try {
      const node = await startNode({
        dir: stateRoot,
        listen: [addressOf[machine], secondAddressOf[machine]],
        peers: [addressOf[peerOf[machine]], secondAddressOf[peerOf[machine]]],
        role: machine === 'a' ? 'primary' : 'backup',
        nodeId: machine.toUpperCase(),
        service: this.gateway.service(incarnation),
        fsync: 'always',
        segmentBytes: 64 * 1024,
        preallocate: false,
        stateMapBytes: 64 * 1024 * 1024,
        // Small, so that seeds write the stream index's table (and crash around its flushes).
        streamIndexFlushEntries: 8,
        heartbeatIntervalMs,
        heartbeatTimeoutMs,
        replicaTimeoutMs: 300,
        connectTimeoutMs,
        network: this.network.networkFor(process),
        platform,
        log: (message) => this.onNodeLog(incarnation, message),
      });
      if (!incarnation.alive) return;
      incarnation.node = node;
      void node.whenClosed.then(() => {
        // The node closed itself (its disk failed): the operator restarts it, unless no injected
        // fault explains why.
        const bug = bugBehind(node.store.failedWith);
        // `fail` records the violation for the run loop; here it must not escape as a rejection.
        if (bug !== undefined && incarnation.alive) {
          try {
            this.fail('bug', `${machine}${number} closed: ${bug}`);
          } catch {
            return;
          }
        }
        if (incarnation.alive && this.nodes[machine] === incarnation) {
          this.counts.storeFailures += 1;
          this.kill(machine, false);
        }
      });
    } catch (error) {
      if (!incarnation.alive) return;
      const bug = bugBehind(error);
      if (bug !== undefined) this.fail('bug', `${machine}${number} failed to start: ${bug}`);
      this.scheduler.note(`${machine}${number} failed to start: ${String(error)}`);
      this.counts.storeFailures += 1;
      this.kill(machine, false);
    }
  }

  private onNodeLog(incarnation: NodeIncarnation, message: string): void {
    if (!incarnation.alive) return;
    this.scheduler.note(`[${incarnation.machine}${incarnation.number}] ${message}`);
    const promoted = /becoming primary with epoch (\d+)/.exec(message);
    if (promoted !== null && Number(promoted[1]) > 1) this.counts.failovers += 1;
    const ready = /primary with epoch (\d+) ready/.exec(message);
    if (ready !== null) incarnation.readyEpoch = Number(ready[1]);
  }

  /** SIGKILL of a node (with `machine`, a power loss too); it restarts a little later. */
  private kill(machine: MachineName, withMachine: boolean): void {
    const incarnation = this.nodes[machine];
    if (incarnation === undefined || !incarnation.alive) return;
    incarnation.alive = false;
    incarnation.clock.kill();
    this.network.killProcess(incarnation.process);
    this.counts.crashes += 1;
    if (withMachine) {
      this.counts.machineCrashes += 1;
      this.disks[machine].crash();
    } else {
      this.disks[machine].processCrash();
    }
    this.scheduler.note(`kill ${machine}${incarnation.number}${withMachine ? ' with its machine' : ''}`);
    closeLmdbUnder(incarnation.stateRoot);
    this.nodes[machine] = undefined;
    this.scheduler.schedule(this.faultRandom.integer(5, 120), () => {
      this.counts.restarts += 1;
      void this.startNode(machine).catch(() => undefined);
    });
  }

  private scheduleFault(): void {
    const random = this.faultRandom;
    this.scheduler.schedule(random.integer(this.faultIntervalMs.min, this.faultIntervalMs.max), () => {
      if (!this.faultsOn) return;
      const roll = random.float();
      const target = this.primaryMachine() ?? (random.float() < 0.5 ? 'a' : 'b');
      let victim: MachineName = random.float() < 0.85 ? target : peerOf[target];
      // A paused or cut-off node is spared now and then, so that it comes back as a stale
      // primary while a newer one leads (what fencing is for).
      if (this.isIsolated(victim) && random.float() < 0.7) victim = peerOf[victim];
      if (roll < 0.6) {
        this.kill(victim, random.float() < 0.3);
      } else if (roll < 0.68) {
        const address = random.pick([addressOf.a, addressOf.b, secondAddressOf.a, secondAddressOf.b]);
        this.scheduler.note(`cut link ${address}`);
        this.network.cutAddress(address);
        this.scheduler.schedule(random.integer(20, 400), () => {
          this.scheduler.note(`heal link ${address}`);
          this.network.healAddress(address);
        });
      } else if (roll < 0.76) {
        // The clients lose a node for a moment: their sessions break and they resend.
        const machine = random.float() < 0.5 ? 'a' : 'b';
        this.scheduler.note(`partition c|${machine}`);
        this.network.partition('c', machine);
        this.scheduler.schedule(random.integer(10, 200), () => {
          this.scheduler.note(`heal c|${machine}`);
          this.network.heal('c', machine);
        });
      } else if (roll < 0.86 && !this.network.isCut('a', 'b')) {
        this.counts.partitions += 1;
        this.scheduler.note('partition a|b');
        this.network.partition('a', 'b');
        this.scheduler.schedule(random.integer(50, 600), () => {
          this.scheduler.note('heal a|b');
          this.network.heal('a', 'b');
        });
      } else {
        const incarnation = this.nodes[victim];
        if (incarnation !== undefined && !incarnation.clock.paused) {
          this.scheduler.note(`pause ${victim}${incarnation.number}`);
          incarnation.clock.pause();
          this.scheduler.schedule(random.integer(50, 800), () => {
            this.scheduler.note(`resume ${victim}${incarnation.number}`);
            incarnation.clock.resume();
          });
        }
      }
      this.scheduleFault();
    });
  }

  private isIsolated(machine: MachineName): boolean {
    return this.nodes[machine]?.clock.paused === true || this.network.isCut('a', 'b');
  }

  /** The live nodes that have started, as the checks see them. */
  private checkedNodes(): CheckedNode[] {
    const live: CheckedNode[] = [];
    for (const incarnation of [this.nodes.a, this.nodes.b]) {
      if (incarnation?.node === undefined || !incarnation.alive) continue;
      const { machine, number, node, clock, readyEpoch, process } = incarnation;
      const connectionEndsOpen = this.network.openEndsOf(process);
      live.push({ name: `${machine}${number}`, node, paused: clock.paused, readyEpoch, timersPending: clock.timersPending, connectionEndsOpen });
    }
    return live;
  }

  /** After every step: the invariants of `pair-checks.ts`, on the live nodes that have started. */
  private checkStep(): void {
    const live = this.checkedNodes();
    const addresses = [addressOf.a, addressOf.b, secondAddressOf.a, secondAddressOf.b];
    const reachable = !this.network.isCut('a', 'b') && addresses.some((address) => !this.network.isAddressCut(address));
    const [a, b] = [this.nodes.a, this.nodes.b];
    const connectedSinceMs = a?.alive === true && b?.alive === true ? this.network.connectedSinceMs(a.process, b.process) : undefined;
    this.checks.afterStep(this.scheduler.nowMs, live, { reachable, connectedSinceMs });
  }

  private primaryMachine(): MachineName | undefined {
    for (const machine of ['a', 'b'] as const) {
      const node = this.nodes[machine]?.node;
      if (node !== undefined && node.status().role === 'primary') return machine;
    }
    return undefined;
  }

  // ------------------------------------------------------------------ the end

  /** Faults have stopped: heal, start what is down, and wait until both nodes hold the same log. */
  private async settle(): Promise<void> {
    this.network.healAll();
    for (const disk of Object.values(this.disks)) disk.faults = noDiskFaults;
    for (const machine of ['a', 'b'] as const) {
      const incarnation = this.nodes[machine];
      if (incarnation?.clock.paused === true) incarnation.clock.resume();
    }
    const synced = deferred();
    const check = (): void => {
      if (pairSettled(this.nodes.a?.node, this.nodes.b?.node)) synced.resolve();
      else this.scheduler.schedule(10, check);
    };
    this.scheduler.schedule(0, check);
    let done = false;
    void synced.promise.then(() => (done = true));
    await this.scheduler.runUntil(() => done || this.violation !== undefined, this.scheduler.nowMs + 30_000);
    if (this.violation !== undefined) throw this.violation;
    if (!done) this.fail('settle', 'the pair did not settle with identical logs within 30 s of virtual time after the faults stopped');
  }

  private async finalCheck(): Promise<void> {
    const fail = (invariant: string, message: string): never => this.fail(invariant, message);
    const a = this.nodes.a!.node!;
    const b = this.nodes.b!.node!;
    const primary = a.status().role === 'primary' ? a : b;
    const counts = await tagCounts((fromPosition) => primary.store.readAll({ fromPosition, maxCount: 4096 }));
    checkTagCounts(counts, this.clients.acknowledged, this.clients.observedTags, fail);
    const framesOf = (node: TxlogNode): string[] => [...replicationHooksOf(node.store).readRecords(1)].map((record) => record.frame.toString('base64'));
    const [framesA, framesB] = [framesOf(a), framesOf(b)];
    if (framesA.length !== framesB.length || framesA.some((frame, index) => frame !== framesB[index])) {
      fail('logs-differ', `the two logs differ (${framesA.length} and ${framesB.length} records)`);
    }
    if (JSON.stringify(a.store.dumpState()) !== JSON.stringify(b.store.dumpState())) fail('states-differ', 'the two states differ');
    for (const node of [a, b]) {
      await checkStreams((fromPosition) => node.store.readAll({ fromPosition, maxCount: 4096 }), (stream) => node.store.readStream(stream, { maxCount: 4096 }), fail);
    }
    for (const node of [a, b]) {
      const status = node.status();
      if (status.determinismViolations !== 0) fail('determinism', `${status.nodeId} counted ${status.determinismViolations} violations: ${JSON.stringify(status.lastViolation)}`);
    }
    await this.resendAll();
  }

  private async resendAll(): Promise<void> {
    let done = false;
    let failure: unknown;
    this.scheduler.schedule(0, () => void this.clients.resendAll().then(() => (done = true), (error: unknown) => (failure = error)));
    await this.scheduler.runUntil(() => done || failure !== undefined || this.violation !== undefined, this.scheduler.nowMs + 60_000);
    if (this.violation !== undefined) throw this.violation;
    if (failure !== undefined) throw failure;
    if (!done) this.fail('progress', 'resending the acknowledged requests did not finish');
  }

  private fail(invariant: string, message: string): never {
    this.violation ??= new InvariantViolation(invariant, `seed ${this.seed}: ${message}`, this.scheduler.lastTraceLines());
    throw this.violation;
  }
}
