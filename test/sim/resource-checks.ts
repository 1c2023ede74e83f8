/**
 * Memory checked after every step (issue 10: "a limit is never exceeded, and memory per node
 * stays bounded"), from each store's `resourceUsage()` or node's `status().resources` and what
 * the world knows of its processes (their open connections, their clock's timers):
 *
 * - resource-limit: every structure holds at most the limit the library gives for it.
 * - resource-owner: every entry of a structure belongs to something alive that bounds it; a
 *   release waiter waits for a record not yet released, a deadline is a running handler's, a
 *   connection the node holds is open on the network, and so on (`ownership` below). The
 *   library's limits are far above anything a simulated seed reaches; these relations hold at
 *   every load, so a leak of one entry per operation breaks one at its first operation.
 * - resource-memory: the entries a node holds for its work in progress (waiters, records,
 *   transactions, requests, connections, handshakes, timers, queued checks) stay under a bound:
 *   a fixed part per node (what an idle node keeps, and a few timers of its own), and a part per
 *   record not yet applied (how many, its backup and its disk decide; the drain check below
 *   catches records that are never let go), per request in progress and per connection end open
 *   (now or at the previous step: a connection closed in this step leaves a timer or two). It
 *   covers what no owner bounds: timers, the WAL's appends, queued checks.
 * - resource-drain (`checkDrained`, once the faults stop and the world settles): no waiter,
 *   record, transaction, deadline, request, client connection or handshake is left, and no more
 *   timers and peer links than an idle node keeps.
 *
 * They read state only and draw no randomness: a seed runs as it did without them.
 */
import type { ResourceUsage } from '../../engine/resources.js';
import type { Scheduler } from './scheduler.js';

type Fail = (invariant: string, message: string) => never;

/** One live node (or store) incarnation at this step. */
export interface ResourceSample {
  /** As the trace names it (`a3`, `store 2`). */
  name: string;
  usage: ResourceUsage;
  /** Timers its process set and are still to fire. */
  timersPending: number;
  /** Connection ends of its process open on the simulated network (undefined: it has none). */
  connectionEndsOpen: number | undefined;
  /** Calls into the store in progress that did not come through the node's requests (the embedded world's clients). */
  directCalls: number;
}

/** What the world's configuration allows, from which the bounds are derived. */
export interface ResourceWorld {
  /** Streams one commit of the world's service writes at most. */
  streamsPerCommitMax: number;
  /** Peer addresses a node dials plus the addresses it listens on (its links when idle). */
  peerLinksIdleMax: number;
  /** Timers an idle node keeps: its tick and a dial loop's wait per peer address. */
  timersIdleMax: number;
}

/** Structures that hold entries for work in progress (not caches, logs or tables of clients). */
const transientStructures = [
  'walAppendsWaiting',
  'recordsUnreleased',
  'recordsReleasedUnapplied',
  'releaseWaiters',
  'applyWaiters',
  'nextBatchWaiters',
  'transactionsRunning',
  'requestIdsRunning',
  'handlerDeadlines',
  'decidedCommits',
  'journaledCallsUnapplied',
  'streamHeadsUnapplied',
  'clientConnections',
  'handshakes',
  'clientRequests',
  'replicationMessagesDeferred',
  'determinismChecksQueued',
] as const;

/**
 * Entries a node holds whatever it does: the timers of an idle node (`timersIdleMax`), and one
 * each of the timers its parts arm while they have work (the WAL's flush, the apply delay, the
 * handler deadlines' tick, the catch-up pump), with room to spare.
 */
const fixedEntriesMax = 16;
/**
 * Entries one record not yet applied may hold, beyond `streamsPerCommitMax` stream heads:
 * itself, its WAL append, a release waiter, an apply waiter, its decided commit or journaled call,
 * and a queued determinism check once applied on a backup.
 */
const entriesPerRecordMax = 6;
/**
 * Entries one request (or direct call) in progress may hold: itself, its transaction, request id
 * and deadline, a wait for the next applied batch, and a timer of the service it calls.
 */
const entriesPerRequestMax = 6;
/** Entries one connection end may hold: the connection (a link, a client's, a handshake), its handshake timer, its close's timer. */
const entriesPerConnectionMax = 3;

/** One owner relation: a structure's entries (`held`) each belong to one of `bound` owners. */
interface Ownership {
  what: string;
  owners: string;
  held(sample: ResourceSample): number;
  bound(sample: ResourceSample, world: ResourceWorld): number;
}

function sizeOf(sample: ResourceSample, name: string): number {
  return sample.usage[name]?.size ?? 0;
}

const unreleased = (sample: ResourceSample): number => sizeOf(sample, 'recordsUnreleased');
const notApplied = (sample: ResourceSample): number => unreleased(sample) + sizeOf(sample, 'recordsReleasedUnapplied');
const running = (sample: ResourceSample): number => sizeOf(sample, 'transactionsRunning');
const callers = (sample: ResourceSample): number => sizeOf(sample, 'clientRequests') + sample.directCalls;

/**
 * Every entry waits for, or belongs to, something the relation names. A WAL append, a release
 * waiter: a record not yet released. An apply waiter, a decided commit, a journaled call, a
 * stream head: a record not yet applied (its streams). A transaction's request id or deadline:
 * the transaction. A transaction, a wait for the next batch: a request or a direct call (a
 * transaction shared by resends counts once). A connection, link or handshake: its open end.
 */
const ownerships: readonly Ownership[] = [
  { what: 'walAppendsWaiting', owners: 'records not yet released', held: (sample) => sizeOf(sample, 'walAppendsWaiting'), bound: unreleased },
  { what: 'releaseWaiters', owners: 'records not yet released', held: (sample) => sizeOf(sample, 'releaseWaiters'), bound: unreleased },
  { what: 'applyWaiters', owners: 'records not yet applied', held: (sample) => sizeOf(sample, 'applyWaiters'), bound: notApplied },
  {
    what: 'decidedCommits + journaledCallsUnapplied',
    owners: 'records not yet applied',
    held: (sample) => sizeOf(sample, 'decidedCommits') + sizeOf(sample, 'journaledCallsUnapplied'),
    bound: notApplied,
  },
  {
    what: 'streamHeadsUnapplied',
    owners: 'streams of the records not yet applied',
    held: (sample) => sizeOf(sample, 'streamHeadsUnapplied'),
    bound: (sample, world) => notApplied(sample) * world.streamsPerCommitMax,
  },
  { what: 'requestIdsRunning', owners: 'transactions running', held: (sample) => sizeOf(sample, 'requestIdsRunning'), bound: running },
  { what: 'handlerDeadlines', owners: 'transactions running', held: (sample) => sizeOf(sample, 'handlerDeadlines'), bound: running },
  { what: 'transactionsRunning', owners: 'requests and calls in progress', held: running, bound: callers },
  { what: 'nextBatchWaiters', owners: 'requests and calls in progress', held: (sample) => sizeOf(sample, 'nextBatchWaiters'), bound: callers },
  { what: 'requestsOnOneConnection', owners: 'requests running', held: (sample) => sizeOf(sample, 'requestsOnOneConnection'), bound: (sample) => sizeOf(sample, 'clientRequests') },
  {
    what: 'clientConnections + peerLinks + handshakes',
    owners: 'connection ends open on the network',
    held: (sample) => sizeOf(sample, 'clientConnections') + sizeOf(sample, 'peerLinks') + sizeOf(sample, 'handshakes'),
    bound: (sample) => sample.connectionEndsOpen ?? Number.POSITIVE_INFINITY,
  },
];

export class ResourceChecks {
  /** Each node's connection ends open at the step before. */
  private readonly endsBefore = new Map<string, number>();

  constructor(
    private readonly fail: Fail,
    private readonly world: ResourceWorld,
  ) {}

  afterStep(samples: readonly ResourceSample[]): void {
    for (const sample of samples) {
      this.checkLimits(sample);
      this.checkOwners(sample);
      this.checkMemory(sample);
      this.endsBefore.set(sample.name, sample.connectionEndsOpen ?? 0);
    }
  }

  /** Once the world has settled and its clients are gone: what is still held, if anything. */
  undrained(sample: ResourceSample): string | undefined {
    const held: string[] = [];
    for (const name of transientStructures) {
      const size = sizeOf(sample, name);
      if (size > 0) held.push(`${name} ${size}`);
    }
    const links = sizeOf(sample, 'peerLinks');
    if (links > this.world.peerLinksIdleMax) held.push(`peerLinks ${links} (idle: at most ${this.world.peerLinksIdleMax})`);
    if (sample.timersPending > this.world.timersIdleMax) held.push(`timers ${sample.timersPending} (idle: at most ${this.world.timersIdleMax})`);
    return held.length === 0 ? undefined : held.join(', ');
  }

  checkDrained(sample: ResourceSample): void {
    const held = this.undrained(sample);
    if (held !== undefined) this.fail('resource-drain', `${sample.name} still holds ${held} after the world settled`);
  }

  private checkLimits(sample: ResourceSample): void {
    for (const name in sample.usage) {
      const { size, limit } = sample.usage[name]!;
      if (limit !== null && size > limit) this.fail('resource-limit', `${sample.name}: ${name} holds ${size}, past its limit ${limit}`);
    }
  }

  private checkOwners(sample: ResourceSample): void {
    for (const ownership of ownerships) {
      const held = ownership.held(sample);
      const bound = ownership.bound(sample, this.world);
      if (held > bound) this.fail('resource-owner', `${sample.name}: ${ownership.what} holds ${held}, more than the ${ownership.owners} that own them (${bound})`);
    }
  }

  private checkMemory(sample: ResourceSample): void {
    let held = sample.timersPending;
    for (const name of transientStructures) held += sizeOf(sample, name);
    const records = notApplied(sample);
    const requests = callers(sample);
    const ends = Math.max(sample.connectionEndsOpen ?? 0, this.endsBefore.get(sample.name) ?? 0);
    const fixed = fixedEntriesMax + this.world.timersIdleMax;
    const perRecord = entriesPerRecordMax + this.world.streamsPerCommitMax;
    const bound = fixed + perRecord * records + entriesPerRequestMax * requests + entriesPerConnectionMax * ends;
    if (held > bound) {
      const parts = `${fixed} + ${perRecord} × ${records} records + ${entriesPerRequestMax} × ${requests} requests + ${entriesPerConnectionMax} × ${ends} connection ends`;
      this.fail('resource-memory', `${sample.name} holds ${held} entries for work in progress (timers ${sample.timersPending}), more than ${bound} (${parts})`);
    }
  }
}

/**
 * Once the world is done: runs it until every node (or store) has let go of its work in
 * progress, or `withinMs` of virtual time has passed, then checks what is left (resource-drain).
 */
export async function awaitDrained(scheduler: Scheduler, checks: ResourceChecks, samples: () => ResourceSample[], withinMs = 2000): Promise<void> {
  await scheduler.runUntil(() => samples().every((sample) => checks.undrained(sample) === undefined), scheduler.nowMs + withinMs);
  for (const sample of samples()) checks.checkDrained(sample);
}
