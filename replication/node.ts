/**
 * A node of a primary/backup pair: one store, its links to the peer, and the role state machine.
 * The protocol sides live in their own files and read the role and epoch from here:
 * `links.ts` (listening, dialing, the peer links), `sender.ts` (the primary's side),
 * `receiver.ts` (the backup's side), `determinism.ts` (the backup's re-execution check),
 * `requests.ts` (clients). Everything beyond the public `Store` API goes through
 * `engine-port.ts`.
 *
 * Roles. A node starts `waiting` and dials its peer. When both are up and neither is primary,
 * both compute the same decision (higher epoch, then higher last LSN, then the configured
 * primary, then the lower node id wins); the winner begins a new epoch, the other joins as its
 * backup. A running primary is only displaced by a higher epoch. A backup promotes itself when
 * its primary is gone (link closed or silent past `heartbeatTimeoutMs`) **and** a client asks
 * it to serve, and only if it was in sync: it then serves alone until the other node rejoins.
 *
 * With an arbiter (`leadership.ts`) etcd decides instead: a node becomes primary only when its
 * campaign wins the leader key, with the epoch etcd hands out; the peer decision only says who
 * may start a fresh cluster (`bootstrap`); there is no promotion by a client and no forced start.
 */
import { txlogError } from '../wal/errors.js';
import type { TimerHandle } from '../wal/platform.js';
import { Store } from '../engine/store.js';
import type { AnyEvent } from '../engine/service.js';
import { resolveStoreOptions } from '../engine/options.js';
import { DeterminismCheck } from './determinism.js';
import { ArbiterLeadership, notServingError } from './leadership.js';
import { replicatedStoreOf, type ReplicatedStore } from './engine-port.js';
import { NodeState, winsAgainst, type PeerLink } from './context.js';
import { PeerLinks } from './links.js';
import { resolveNodeOptions, type NodeOptions, type ResolvedNodeOptions } from './options.js';
import type { Message, PeerState } from './protocol.js';
import { BackupReceiver } from './receiver.js';
import { ClientRequests } from './requests.js';
import { PrimarySender } from './sender.js';
import { statusOf, type NodeStatus } from './status.js';

export type { NodeStatus } from './status.js';

/** Starts a node; its store is typed by its service's events, or `startNode<Events>()`, as `openStore`'s. */
export async function startNode<Events extends AnyEvent = AnyEvent>(options: NodeOptions<Events>): Promise<TxlogNode<Events>> {
  const resolved = resolveNodeOptions(options);
  resolveStoreOptions(options);
  // Its WAL fdatasyncs on a worker thread, so frames go to the backup during a sync (ARCHITECTURE.md).
  const store = await Store.open<Events>({ syncOnWorkerThread: true, ...options });
  const node = new TxlogNode<Events>(resolved, store);
  try {
    await node.start();
  } catch (error) {
    await node.close();
    throw error;
  }
  return node;
}

export class TxlogNode<Events extends AnyEvent = AnyEvent> {
  readonly options: ResolvedNodeOptions;
  readonly store: Store<Events>;
  private readonly port: ReplicatedStore;
  /** Id, role, epoch: what the parts read and only this class changes. */
  private readonly state: NodeState;
  private readonly peers: PeerLinks;
  private readonly sender: PrimarySender;
  private readonly receiver: BackupReceiver;
  private readonly determinism: DeterminismCheck;
  private readonly clients: ClientRequests;
  /** Only with an `arbiter` option. */
  private readonly leadership: ArbiterLeadership | undefined;
  private tickTimer: TimerHandle | undefined;
  private closing: Promise<void> | undefined;
  private resolveClosed!: () => void;
  private readonly closedSignal = new Promise<void>((resolve) => (this.resolveClosed = resolve));
  /** Resolves once a new primary's epoch record is applied; requests wait on it. */
  private primaryReady: Promise<void> | undefined;
  /** LSN of the epoch record this node wrote when it last became primary. */
  private epochLsn: number | undefined;

  constructor(options: ResolvedNodeOptions, store: Store<Events>) {
    this.options = options;
    this.store = store;
    this.port = replicatedStoreOf(store);
    const { clock, random } = store.options.platform;
    const state = new NodeState(options, this.port, clock, random, (line) => store.options.log(line));
    this.state = state;
    this.peers = new PeerLinks(state, {
      peerState: () => this.peerState(),
      onPeerMessage: (link, message) => this.onPeerMessage(link, message),
      onLinkClosed: (link) => this.onLinkClosed(link),
      onClient: (connection, clientId) => this.clients.add(connection, clientId),
    }, state.links);
    this.leadership = options.arbiter === undefined ? undefined : new ArbiterLeadership(options.arbiter, state, {
      mayBootstrap: () => this.mayBootstrap(),
      epochAbove: () => Math.max(state.epoch, this.port.epoch),
      lead: (epoch) => this.lead(epoch),
      stepDown: (reason) => {
        if (state.role === 'primary') this.stepDown(state.epoch, reason);
      },
      releaseMore: () => this.port.releaseMore(),
      backupHoldsAll: (nodeId) => this.sender.backupHoldsAll(nodeId),
    });
    this.sender = new PrimarySender(state, this.leadership);
    this.receiver = new BackupReceiver(state, () => this.peers.broadcastState());
    // While a stepped-down primary drops its unreleased tail, nothing is released, whatever its
    // role by then (found by the stale-primary test: following the new primary opened the gate
    // for a tail the new primary never had).
    this.port.setReleaseGate(() => (this.receiver.droppingTail ? this.port.appliedLsn : this.sender.releaseLimit()));
    this.port.setWritable(false);
    this.port.onBatch((frames, firstLsn) => this.sender.onBatch(frames, firstLsn));
    this.determinism = new DeterminismCheck(state, store.options.service, store.options.limits);
    this.clients = new ClientRequests(state, store, {
      observeClientEpoch: (epoch) => {
        if (epoch > state.epoch && state.role === 'primary') this.stepDown(epoch, 'a client');
      },
      servePrimary: () => this.servePrimary(),
      // What servePrimary waits for, all true already: it would neither wait nor throw.
      servingPrimaryNow: () => this.leadership?.notServing() === undefined && state.role === 'primary' && this.epochLsn !== undefined && this.port.appliedLsn >= this.epochLsn,
      replicaUnavailable: () => this.sender.replicaUnavailable,
      primaryHint: () => this.peers.primaryAddress(this.receiver.primaryLink),
      status: () => this.status(),
    });
    this.port.onFailure((failure) => {
      // A node whose disk failed must not keep its peer from taking over: heartbeats from a
      // primary that can no longer commit would hold the backup back for good.
      state.log(`store failed (${failure.code}: ${failure.message}); closing the node so its peer can take over`);
      void this.close();
    });
  }

  get addresses(): string[] {
    return this.peers.addresses;
  }

  async start(): Promise<void> {
    await this.peers.listen();
    if (!this.options.nodeIdGiven) this.state.nodeId = this.peers.addresses[0]!;
    this.scheduleTick();
    if (this.leadership !== undefined) {
      await this.leadership.open();
    } else if (this.options.forcePrimary) {
      this.state.log('forced to become primary without its peer');
      await this.becomePrimary(true);
    }
    this.peers.dialPeers();
  }

  private scheduleTick(): void {
    this.tickTimer = this.state.clock.setTimeout(() => {
      if (this.state.closed) return;
      this.tick();
      this.scheduleTick();
    }, this.options.heartbeatIntervalMs);
  }

  private peerState(): PeerState {
    return {
      nodeId: this.state.nodeId,
      role: this.state.role,
      configuredRole: this.options.role,
      epoch: this.state.epoch,
      lastLsn: this.port.lastLsn,
      lastEpoch: this.port.lastEpoch,
      inSync: this.state.role === 'backup' ? this.receiver.inSync : this.sender.inSync,
      addresses: this.peers.addresses,
    };
  }

  // ---------------------------------------------------------------- peer messages

  private onPeerMessage(link: PeerLink, message: Message): void {
    link.lastHeardMs = this.state.clock.monotonicMs();
    // Fencing: replication from a primary of an older epoch is refused outright.
    const fromPrimary = message.t === 'records' || message.t === 'truncate' || message.t === 'live' || message.t === 'synced';
    if (fromPrimary && message.epoch < this.state.epoch) {
      link.connection.reject(txlogError('STALE_EPOCH', `epoch ${message.epoch} is below ${this.state.epoch}`));
      return;
    }
    switch (message.t) {
      case 'peer':
        link.state = message.state;
        this.onPeerState(link, message.state);
        return;
      case 'heartbeat':
        if (message.epoch > this.state.epoch && this.state.role === 'primary') this.stepDown(message.epoch, 'a heartbeat');
        return;
      case 'join':
        // Not (or no longer) primary: our state tells the peer whom to follow instead.
        if (this.state.role === 'primary') this.sender.onJoin(link, message);
        else link.connection.send({ t: 'peer', state: this.peerState() });
        return;
      case 'ack':
        this.sender.onAck(link, message);
        return;
      case 'truncate':
      case 'records':
      case 'live':
      case 'synced':
        this.receiver.onReplicationMessage(link, message);
        return;
      default:
        link.connection.reject(txlogError('PROTOCOL_ERROR', `unexpected ${message.t} on a peer link`));
    }
  }

  private onPeerState(link: PeerLink, peer: PeerState): void {
    if (peer.epoch > this.state.epoch && this.state.role === 'primary') {
      this.stepDown(peer.epoch, `peer ${peer.nodeId}`);
    }
    if (this.state.role === 'primary') {
      this.sender.onSpareLinkState(link, peer);
      return;
    }
    if (peer.role === 'primary' && peer.epoch >= this.state.epoch) {
      this.followPrimary(link, peer);
      return;
    }
    if (peer.role === 'primary') return;
    if (this.state.role === 'backup') {
      // The peer we followed is back but not primary (it restarted or stepped down). Stop
      // following it and decide afresh, both of us waiting. Deciding while still a backup would
      // race our own promotion: a client could make us promote alone at the very moment the
      // peer, taking our state for "not primary", begins the same epoch number with another
      // history (found by the simulator: two epoch-3 primaries, then an acknowledged commit cut).
      if (this.primaryAlive()) return;
      this.state.log(`peer ${peer.nodeId} is back as ${peer.role}; no longer following, deciding who leads`);
      this.receiver.stop();
      this.state.changeRole('waiting');
      this.peers.broadcastState();
      return;
    }
    // Only two waiting nodes decide, and both compute the same answer. A peer that is still a
    // backup may yet promote itself alone; it will tell us when it waits or leads. With an
    // arbiter both campaign, and the decision only says who may start a fresh cluster.
    if (this.state.role !== 'waiting' || peer.role !== 'waiting') return;
    if (this.leadership !== undefined) this.leadership.campaignSoon();
    else if (winsAgainst(this.peerState(), peer)) void this.becomePrimary(false);
  }

  private onLinkClosed(link: PeerLink): void {
    this.receiver.onLinkClosed(link);
    this.sender.onLinkClosed(link);
  }

  /** With an arbiter: an operator's forced start, or the peer decision between two waiting nodes. */
  private mayBootstrap(): boolean {
    if (this.options.forcePrimary) return true;
    if (this.state.role !== 'waiting') return false;
    return [...this.peers.links].some((link) => !link.connection.closed && link.state?.role === 'waiting' && winsAgainst(this.peerState(), link.state));
  }

  /** The arbiter made this node leader with `epoch` (above every epoch it knew when it asked). */
  private lead(epoch: number): boolean {
    if (this.state.closed || this.state.role === 'primary') return false;
    if (epoch <= Math.max(this.state.epoch, this.port.epoch)) {
      this.state.log(`the arbiter's epoch ${epoch} is not above this node's ${this.state.epoch}; not leading with it`);
      return false;
    }
    void this.becomePrimary(false, epoch);
    return true;
  }

  private followPrimary(link: PeerLink, peer: PeerState): void {
    if (this.receiver.follows(peer)) return; // Another link to the primary we follow is a spare.
    if (this.state.role === 'primary') return;
    this.state.changeRole('backup');
    this.state.observeEpoch(peer.epoch);
    this.receiver.follow(link, peer);
  }

  private stepDown(epoch: number, cause: string): void {
    this.state.log(`stepping down: ${cause}${epoch > this.state.epoch ? ` has epoch ${epoch}, above this primary's ${this.state.epoch}` : ''}`);
    void this.leadership?.resign();
    this.state.observeEpoch(epoch);
    this.port.observeEpoch(epoch);
    this.state.changeRole('waiting');
    this.primaryReady = undefined;
    this.sender.stop(this.port.lastLsn);
    const notPrimary = txlogError('NOT_PRIMARY', 'this node stepped down; resend to the new primary');
    this.port.setWritable(false, notPrimary);
    this.receiver.dropUnreleasedTail(notPrimary);
    this.peers.broadcastState();
  }

  // ---------------------------------------------------------------- becoming primary

  /** `arbiterEpoch`: the epoch the arbiter handed out with the leader key. */
  private async becomePrimary(alone: boolean, arbiterEpoch?: number): Promise<void> {
    if (this.state.role === 'primary') return;
    this.state.changeRole('primary');
    this.epochLsn = undefined;
    this.receiver.stop();
    this.sender.begin(alone);
    const epoch = arbiterEpoch ?? Math.max(this.state.epoch, this.port.epoch) + 1;
    this.state.epoch = epoch;
    this.port.setWritable(true);
    this.state.log(`becoming primary with epoch ${epoch}${alone ? ', serving alone' : ''}`);
    const begun = (async () => {
      await this.port.whenIdle();
      return this.port.beginEpoch(epoch, this.state.nodeId);
    })();
    const ready = begun.then((lsn) => {
      if (this.state.role === 'primary' && this.state.epoch === epoch) this.epochLsn = lsn;
    });
    this.primaryReady = ready;
    ready.catch(() => undefined);
    this.peers.broadcastState();
    try {
      await this.port.waitApplied(await begun);
      this.state.log(`primary with epoch ${epoch} ready at LSN ${this.port.lastLsn}`);
    } catch (error) {
      this.state.log(`epoch ${epoch} not ready yet: ${String(error)}`);
    }
  }

  /** A backup whose primary is gone and which was in sync takes over when a client asks. */
  private async promote(): Promise<void> {
    if (this.state.role === 'primary') return;
    for (const link of [...this.peers.links]) link.connection.close(txlogError('STALE_EPOCH', 'promoting'));
    this.state.changeRole('waiting');
    this.store.options.metrics.failover();
    await this.becomePrimary(true);
  }

  /** Some link to a primary of our epoch or above was heard from recently. */
  private primaryAlive(): boolean {
    return this.peers.primaryHeardFrom(this.state.epoch, this.state.clock.monotonicMs());
  }

  /** Resolves when this node may serve as primary now, promoting a lone in-sync backup. */
  private async servePrimary(): Promise<void> {
    if (this.leadership !== undefined) {
      const reason = this.leadership.notServing();
      if (reason !== undefined) throw notServingError(reason, this.state.role);
    } else if (this.state.role === 'backup' && !this.primaryAlive()) {
      if (!this.receiver.inSync) {
        throw txlogError('NOT_PRIMARY', 'the primary is unreachable and this backup is not in sync, so it cannot take over');
      }
      this.state.log('primary unreachable and a client asks to be served: promoting');
      await this.promote();
    }
    if (this.state.role !== 'primary') throw txlogError('NOT_PRIMARY', `this node is ${this.state.role}`);
    await this.primaryReady;
    // Nothing is served before this primary's epoch record is applied (in a pair: acknowledged
    // by the backup). A wait that failed (the backup went away) is tried again by later requests.
    if (this.epochLsn !== undefined && this.port.appliedLsn < this.epochLsn) await this.port.waitApplied(this.epochLsn);
    if (this.state.role !== 'primary') throw txlogError('NOT_PRIMARY', `this node is ${this.state.role}`);
  }

  // ---------------------------------------------------------------- heartbeats

  private tick(): void {
    const now = this.state.clock.monotonicMs();
    this.peers.heartbeat(now, this.state.epoch, this.port.lastLsn);
    this.sender.checkReplicaLost(now);
    // A backup whose primary went silent while its peer's last word was "not primary" decides
    // again now: nothing else would wake it until a client asks it to promote.
    if (this.state.role === 'backup' && !this.primaryAlive()) {
      const peer = [...this.peers.links].find((link) => link.state !== undefined && link.state.role !== 'primary' && !link.connection.closed);
      if (peer?.state !== undefined) this.onPeerState(peer, peer.state);
    }
  }

  // ---------------------------------------------------------------- status and closing

  status(): NodeStatus {
    return statusOf({
      state: this.state,
      store: this.port,
      sender: this.sender,
      receiver: this.receiver,
      determinism: this.determinism,
      peers: this.peers,
      clients: this.clients,
      clientSessions: this.store.clientSessions,
      arbiter: this.leadership?.status(),
    });
  }

  /** Resolves when the node has closed, by `close()` or because its store failed. */
  get whenClosed(): Promise<void> {
    return this.closedSignal;
  }

  close(): Promise<void> {
    return (this.closing ??= this.closeNow());
  }

  private async closeNow(): Promise<void> {
    this.state.closed = true;
    this.tickTimer?.cancel();
    // Giving the leader key back lets the peer lead at once instead of after the lease runs out.
    await this.leadership?.close();
    await this.peers.close(() => this.clients.closeAll());
    await this.determinism.whenDone();
    try {
      await this.store.close();
    } finally {
      this.resolveClosed();
    }
  }
}
