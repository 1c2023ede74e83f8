/**
 * A node of a primary/backup pair: one store, a listener for clients and the peer, links to the
 * peer, and the role logic.
 *
 * Roles. A node starts `waiting` and dials its peer. When both are up and neither is primary,
 * both compute the same decision (higher epoch, then higher last LSN, then the configured
 * primary, then the lower node id wins); the winner begins a new epoch, the other joins as its
 * backup. A running primary is only displaced by a higher epoch. A backup promotes itself when
 * its primary is gone (link closed or silent past `heartbeatTimeoutMs`) **and** a client asks
 * it to serve, and only if it was in sync: it then serves alone until the other node rejoins.
 *
 * Replication. The backup sends `join` (its last LSN and epoch); the primary answers `truncate`
 * with the point where their logs agree (the end of the backup's last epoch in the primary's
 * history), then streams frames: from its WAL while the backup is behind, then live batches as
 * the WAL encodes them (before its own write, so the round trip overlaps the primary's
 * fdatasync). The backup acknowledges by LSN as soon as the frames are in its mirror
 * (cumulative). Commits are released to clients only up to the acknowledged LSN. If the active
 * link fails the primary picks another link to the same backup and resends everything not yet
 * acknowledged, read back from its WAL; the backup drops what it already has by LSN.
 */
import type * as net from 'node:net';
import { TxlogError, txlogError } from '../wal/errors.js';
import type { TimerHandle } from '../wal/platform.js';
import { Store } from '../engine/store.js';
import { resolveStoreOptions } from '../engine/options.js';
import { JournalCollector, reexecute, type Divergence } from '../engine/replay.js';
import { replicationHooksOf, type ReplicationHooks } from '../engine/replication-hooks.js';
import { recordTypes, type CommitPayload, type JournalPayload } from '../engine/records.js';
import type { ApplicableRecord } from '../engine/state.js';
import { accept, dial, type Connection } from './connection.js';
import { recordsMessageBytesMax, type Message, type PeerState, type Role } from './protocol.js';
import { resolveNodeOptions, type NodeOptions, type ResolvedNodeOptions } from './options.js';

/** Bytes queued on a peer socket before the catch-up pump waits for it to drain. */
const catchUpQueueBytesMax = 8 * 1024 * 1024;
/** Commits waiting for re-execution on a backup; past it checks are skipped (and counted). */
const verifyQueueMax = 10_000;
/** Divergences kept for `status` (the count covers all of them). */
const violationsKeptMax = 100;
/** Replication messages a backup holds while it cuts its log; past it the link is dropped. */
const deferredMessagesMax = 4096;
/** How long `readAll` may wait for new events (subscriptions long-poll). */
const readWaitMsMax = 30_000;

interface PeerLink {
  connection: Connection;
  /** Set when the peer told us its state. */
  state: PeerState | undefined;
  lastHeardMs: number;
  dialed: boolean;
}

interface ReplicaProgress {
  link: PeerLink | undefined;
  /** Highest LSN sent on the active link. */
  sentLsn: number;
  ackedLsn: number;
  durableLsn: number;
  mode: 'catchup' | 'live';
  /** LSN at which the backup switched to the live stream; in sync once acknowledged. */
  liveLsn: number | undefined;
  inSync: boolean;
  pumping: boolean;
  /** The node that joined (agreed on where the logs meet); only it may be resumed on a spare link. */
  backupNodeId: string | undefined;
}

export interface NodeStatus {
  nodeId: string;
  role: Role;
  epoch: number;
  lastLsn: number;
  appliedLsn: number;
  /** Primary: no backup in sync (serving alone, or holding/failing writes per policy). */
  alone: boolean;
  /** Primary: a backup is in sync and acknowledging. Backup: caught up with its primary. */
  inSync: boolean;
  /** Primary: records its backup has not acknowledged yet. */
  backupLagRecords: number;
  replicaAckedLsn: number;
  replicaDurableLsn: number;
  /** Primary whose backup is gone past replicaTimeoutMs under onReplicaLost 'fail'. */
  replicaUnavailable: boolean;
  peerLinks: number;
  clients: number;
  checkedCommits: number;
  skippedChecks: number;
  determinismViolations: number;
  lastViolation: Divergence | undefined;
  addresses: string[];
}

export async function startNode(options: NodeOptions): Promise<TxlogNode> {
  const resolved = resolveNodeOptions(options);
  resolveStoreOptions(options);
  // A node's WAL always fdatasyncs on a worker thread: the frames for the backup then go out
  // while the primary's sync runs, instead of after it (see ARCHITECTURE.md).
  const store = await Store.open({ syncOnWorkerThread: true, ...options });
  const node = new TxlogNode(resolved, store);
  try {
    await node.start();
  } catch (error) {
    await node.close();
    throw error;
  }
  return node;
}

export class TxlogNode {
  readonly options: ResolvedNodeOptions;
  readonly store: Store;
  /** What the engine offers replication only (the release gate, epochs, cutting the log). */
  private readonly engine: ReplicationHooks;
  /** `options.nodeId`, or the first address actually bound. */
  private nodeId: string;
  private readonly nodeExplicit: boolean;
  private role: Role = 'waiting';
  /** Highest epoch this node has seen anywhere (fencing). */
  private epoch: number;
  private readonly links = new Set<PeerLink>();
  private readonly clients = new Set<Connection>();
  private servers: Array<{ port: number; close: () => Promise<void> }> = [];
  private boundAddresses: string[] = [];
  private tickTimer: TimerHandle | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private resolveClosed!: () => void;
  private readonly closedSignal = new Promise<void>((resolve) => (this.resolveClosed = resolve));
  /** Resolves once a new primary's epoch record is applied; requests wait on it. */
  private primaryReady: Promise<void> | undefined;
  /** LSN of the epoch record this node wrote when it last became primary. */
  private epochLsn: number | undefined;
  private alone = false;
  private replicaLostAtMs: number | undefined;
  private replicaUnavailable = false;
  private replica: ReplicaProgress = newReplica(0);
  // Backup side.
  private primaryLink: PeerLink | undefined;
  private receivedLsn = 0;
  private backupInSync = false;
  /** The current primary answered our join (truncate): its records may be taken from here on. */
  private joinedPrimary = false;
  private liveLsnFromPrimary: number | undefined;
  private truncating: Promise<void> | undefined;
  /** Replication messages waiting for a cut of the log to finish. */
  private deferredMessages = 0;
  /** Journal entries for re-execution: those applied here, and any earlier one read from the WAL. */
  private readonly journal: JournalCollector;
  private verifyChain: Promise<void> = Promise.resolve();
  private verifyQueued = 0;
  private checkedCommits = 0;
  private skippedChecks = 0;
  private readonly violations: Divergence[] = [];
  /** Every determinism violation seen, not only the ones kept in `violations`. */
  private violationCount = 0;
  private readonly dialing = new Set<string>();

  constructor(options: ResolvedNodeOptions, store: Store) {
    this.options = options;
    this.store = store;
    this.nodeId = options.nodeId;
    this.nodeExplicit = options.nodeIdGiven;
    this.epoch = store.epoch;
    this.receivedLsn = store.lastLsn;
    this.engine = replicationHooksOf(store);
    this.engine.setReleaseGate(() => this.releaseLimit());
    this.engine.setWritable(false);
    this.engine.onBatch((frames, firstLsn) => this.onBatch(frames, firstLsn));
    this.journal = new JournalCollector((lsn) => this.engine.journalEntryAt(lsn));
    this.engine.onApplied((records) => this.verifyApplied(records));
    this.engine.onFailure((failure) => {
      // A node whose disk failed must not keep its peer from taking over: heartbeats from a
      // primary that can no longer commit would hold the backup back for good.
      this.log(`store failed (${failure.code}: ${failure.message}); closing the node so its peer can take over`);
      void this.close();
    });
  }

  get addresses(): string[] {
    return this.boundAddresses;
  }

  private log(message: string): void {
    this.store.options.log(`[${this.nodeId}] ${message}`);
  }

  private nowMs(): number {
    return this.store.options.platform.clock.monotonicMs();
  }

  async start(): Promise<void> {
    for (const address of this.options.listen) {
      const separator = address.lastIndexOf(':');
      const host = address.slice(0, separator).replace(/^\[|\]$/g, '');
      const port = Number(address.slice(separator + 1));
      const server = await this.options.network.listen(host, port, (socket) => void this.onSocket(socket));
      this.servers.push(server);
      this.boundAddresses.push(`${address.slice(0, separator)}:${server.port}`);
    }
    if (this.nodeExplicit === false) this.nodeId = this.boundAddresses[0]!;
    this.everyInterval(() => this.tick());
    if (this.options.forcePrimary) {
      this.log('forced to become primary without its peer');
      await this.becomePrimary(true);
    }
    for (const address of this.options.peers) void this.dialLoop(address);
  }

  private everyInterval(action: () => void): void {
    const schedule = (): void => {
      const handle = this.store.options.platform.clock.setTimeout(() => {
        if (this.closed) return;
        action();
        schedule();
      }, this.options.heartbeatIntervalMs);
      this.tickTimer = handle;
    };
    schedule();
  }

  // ---------------------------------------------------------------- connections

  private handshakeOptions() {
    return {
      clusterId: this.options.clusterId,
      secret: this.options.secret,
      frameBytesMax: this.options.frameBytesMax,
      timeoutMs: this.options.connectTimeoutMs,
      random: this.store.options.platform.random,
    };
  }

  private async onSocket(socket: net.Socket): Promise<void> {
    if (this.closed) {
      socket.destroy();
      return;
    }
    let accepted;
    try {
      accepted = await accept(socket, { ...this.handshakeOptions(), nodeId: this.nodeId });
    } catch {
      return; // The connection was told why and closed; nothing else is affected.
    }
    if (this.closed) {
      accepted.connection.close(undefined);
      return;
    }
    if (accepted.kind === 'peer') this.addLink(accepted.connection, false);
    else this.addClient(accepted.connection, accepted.id);
  }

  private async dialLoop(address: string): Promise<void> {
    let delayMs = 50;
    while (!this.closed) {
      if (!this.dialing.has(address)) {
        this.dialing.add(address);
        try {
          const { connection } = await dial(this.options.network, address, {
            ...this.handshakeOptions(),
            kind: 'peer',
            id: this.nodeId,
          });
          if (this.closed) {
            connection.close(undefined);
            return;
          }
          delayMs = 50;
          this.addLink(connection, true);
          await new Promise<void>((resolve) => connection.onClose(() => resolve()));
        } catch (error) {
          if (error instanceof TxlogError && error.code === 'UNAUTHORIZED') this.log(`peer ${address}: ${error.message}`);
        } finally {
          this.dialing.delete(address);
        }
      }
      await new Promise<void>((resolve) => this.store.options.platform.clock.setTimeout(resolve, delayMs));
      delayMs = Math.min(delayMs * 2, 1000);
    }
  }

  private addLink(connection: Connection, dialed: boolean): void {
    const link: PeerLink = { connection, state: undefined, lastHeardMs: this.nowMs(), dialed };
    this.links.add(link);
    connection.onClose(() => this.onLinkClosed(link));
    connection.setHandler((message) => this.onPeerMessage(link, message));
    connection.send({ t: 'peer', state: this.peerState() });
  }

  private peerState(): PeerState {
    return {
      nodeId: this.nodeId,
      role: this.role,
      configuredRole: this.options.role,
      epoch: this.epoch,
      lastLsn: this.store.lastLsn,
      lastEpoch: this.engine.lastEpoch,
      inSync: this.role === 'backup' ? this.backupInSync : this.replica.inSync,
      addresses: this.boundAddresses,
    };
  }

  private broadcastState(): void {
    for (const link of this.links) link.connection.send({ t: 'peer', state: this.peerState() });
  }

  // ---------------------------------------------------------------- peer messages

  private onPeerMessage(link: PeerLink, message: Message): void {
    link.lastHeardMs = this.nowMs();
    // Fencing: replication from a primary of an older epoch is refused outright.
    const fromPrimary = message.t === 'records' || message.t === 'truncate' || message.t === 'live';
    if (fromPrimary && message.epoch < this.epoch) {
      link.connection.reject(txlogError('STALE_EPOCH', `epoch ${message.epoch} is below ${this.epoch}`));
      return;
    }
    switch (message.t) {
      case 'peer':
        link.state = message.state;
        this.onPeerState(link, message.state);
        return;
      case 'heartbeat':
        if (message.epoch > this.epoch && this.role === 'primary') this.stepDown(message.epoch, 'a heartbeat');
        return;
      case 'join':
        this.onJoin(link, message);
        return;
      case 'ack':
        this.onAck(link, message);
        return;
      case 'truncate':
      case 'records':
      case 'live':
        this.onReplicationMessage(link, message);
        return;
      default:
        link.connection.reject(txlogError('PROTOCOL_ERROR', `unexpected ${message.t} on a peer link`));
    }
  }

  private onPeerState(link: PeerLink, peer: PeerState): void {
    if (peer.epoch > this.epoch && this.role === 'primary') {
      this.stepDown(peer.epoch, `peer ${peer.nodeId}`);
    }
    if (this.role === 'primary') {
      // The active link failed before this spare link had told us it reaches our backup: the
      // backup still follows us over it and will not join again, so resume replication on it.
      if (
        peer.role === 'backup' &&
        peer.epoch === this.epoch &&
        peer.nodeId === this.replica.backupNodeId &&
        this.replica.link === undefined &&
        !link.connection.closed
      ) {
        this.switchReplicaLink();
      }
      return;
    }
    if (peer.role === 'primary' && peer.epoch >= this.epoch) {
      this.followPrimary(link, peer);
      return;
    }
    const undecided = this.role === 'waiting' || (this.role === 'backup' && !this.primaryAlive());
    if (undecided && peer.role !== 'primary' && this.winsAgainst(peer)) {
      void this.becomePrimary(false);
    }
  }

  /** The same decision on both sides: higher epoch, more log, configured primary, lower id. */
  private winsAgainst(peer: PeerState): boolean {
    const mine = this.peerState();
    if (mine.lastEpoch !== peer.lastEpoch) return mine.lastEpoch > peer.lastEpoch;
    if (mine.lastLsn !== peer.lastLsn) return mine.lastLsn > peer.lastLsn;
    if (mine.configuredRole !== peer.configuredRole) return mine.configuredRole === 'primary';
    return mine.nodeId < peer.nodeId;
  }

  private stepDown(epoch: number, cause: string): void {
    this.log(`stepping down: ${cause} has epoch ${epoch}, above this primary's ${this.epoch}`);
    this.epoch = Math.max(this.epoch, epoch);
    this.engine.observeEpoch(epoch);
    this.role = 'waiting';
    this.alone = false;
    this.primaryReady = undefined;
    this.replica = newReplica(this.store.lastLsn);
    const notPrimary = txlogError('NOT_PRIMARY', 'this node stepped down; resend to the new primary');
    this.engine.setWritable(false, notPrimary);
    // What it never released may be missing from the new primary's log: drop it before joining.
    const previous = this.truncating ?? Promise.resolve();
    this.truncating = previous
      .then(() => this.engine.dropUnapplied(notPrimary))
      .catch((error: unknown) => this.log(`could not drop the unreleased tail: ${String(error)}`))
      .finally(() => {
        this.truncating = undefined;
      });
    this.broadcastState();
  }

  // ---------------------------------------------------------------- becoming primary

  private async becomePrimary(alone: boolean): Promise<void> {
    if (this.role === 'primary') return;
    this.role = 'primary';
    this.epochLsn = undefined;
    this.primaryLink = undefined;
    this.alone = alone;
    this.replica = newReplica(0);
    this.replicaUnavailable = false;
    this.replicaLostAtMs = alone ? undefined : this.nowMs();
    const epoch = Math.max(this.epoch, this.store.epoch) + 1;
    this.epoch = epoch;
    this.engine.setWritable(true);
    this.log(`becoming primary with epoch ${epoch}${alone ? ', serving alone' : ''}`);
    const begun = (async () => {
      await this.store.whenIdle();
      return this.engine.beginEpoch(epoch, this.nodeId);
    })();
    const ready = begun.then((lsn) => {
      if (this.role === 'primary' && this.epoch === epoch) this.epochLsn = lsn;
    });
    this.primaryReady = ready;
    ready.catch(() => undefined);
    this.broadcastState();
    try {
      await this.engine.waitApplied(await begun);
      this.log(`primary with epoch ${epoch} ready at LSN ${this.store.lastLsn}`);
    } catch (error) {
      this.log(`epoch ${epoch} not ready yet: ${String(error)}`);
    }
  }

  /** A backup whose primary is gone and which was in sync takes over when a client asks. */
  private async promote(): Promise<void> {
    if (this.role === 'primary') return;
    for (const link of [...this.links]) link.connection.close(txlogError('STALE_EPOCH', 'promoting'));
    this.role = 'waiting';
    await this.becomePrimary(true);
  }

  /** Some link to a primary of our epoch or above was heard from recently. */
  private primaryAlive(): boolean {
    const now = this.nowMs();
    return [...this.links].some(
      (link) =>
        !link.connection.closed &&
        link.state?.role === 'primary' &&
        link.state.epoch >= this.epoch &&
        now - link.lastHeardMs < this.options.heartbeatTimeoutMs,
    );
  }

  // ---------------------------------------------------------------- primary side of replication

  private onJoin(link: PeerLink, join: Extract<Message, { t: 'join' }>): void {
    if (this.role !== 'primary') {
      link.connection.send({ t: 'peer', state: this.peerState() });
      return;
    }
    const agreed = Math.min(join.lastLsn, this.engine.endOfEpoch(join.lastEpoch), this.engine.nextLsn - 1);
    this.replica = { ...newReplica(agreed), link, backupNodeId: link.state?.nodeId };
    link.connection.send({ t: 'truncate', afterLsn: agreed, epoch: this.epoch });
    this.log(`backup joined at LSN ${join.lastLsn} (epoch ${join.lastEpoch}); logs agree up to ${agreed}`);
    void this.pump();
  }

  /** Sends from the WAL until the backup has everything written, then switches it to live. */
  private async pump(): Promise<void> {
    const replica = this.replica;
    if (replica.pumping) return;
    replica.pumping = true;
    try {
      while (replica === this.replica && replica.mode === 'catchup' && replica.link !== undefined && !this.closed) {
        const link = replica.link;
        if (link.connection.closed) return;
        const lastLsn = this.engine.lastLsn;
        if (replica.sentLsn >= lastLsn) {
          replica.mode = 'live';
          replica.liveLsn = replica.sentLsn;
          link.connection.send({ t: 'live', epoch: this.epoch, lsn: replica.sentLsn });
          return;
        }
        let frames: Uint8Array[] = [];
        let bytes = 0;
        let firstLsn = replica.sentLsn + 1;
        for (const record of this.engine.readRecords(replica.sentLsn + 1, lastLsn)) {
          frames.push(record.frame);
          bytes += record.frame.length;
          replica.sentLsn = record.lsn;
          if (bytes >= recordsMessageBytesMax) {
            link.connection.send({ t: 'records', epoch: this.epoch, firstLsn, frames });
            frames = [];
            bytes = 0;
            firstLsn = record.lsn + 1;
            if (link.connection.socket.writableLength > catchUpQueueBytesMax) break;
          }
        }
        if (frames.length > 0) link.connection.send({ t: 'records', epoch: this.epoch, firstLsn, frames });
        if (link.connection.socket.writableLength > catchUpQueueBytesMax) {
          await new Promise<void>((resolve) => {
            link.connection.socket.once('drain', resolve);
            link.connection.onClose(() => resolve());
          });
        } else {
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
    } finally {
      replica.pumping = false;
    }
  }

  /** Live path: called with each WAL batch before it is written. */
  private onBatch(frames: readonly Buffer[], firstLsn: number): void {
    const replica = this.replica;
    if (this.role !== 'primary' || replica.mode !== 'live' || replica.link === undefined) return;
    if (firstLsn !== replica.sentLsn + 1) {
      // Should not happen; fall back to reading from the WAL.
      replica.mode = 'catchup';
      void this.pump();
      return;
    }
    let start = 0;
    let bytes = 0;
    for (let index = 0; index < frames.length; index++) {
      bytes += frames[index]!.length;
      if (bytes >= recordsMessageBytesMax || index === frames.length - 1) {
        replica.link.connection.send({
          t: 'records',
          epoch: this.epoch,
          firstLsn: firstLsn + start,
          frames: frames.slice(start, index + 1),
        });
        start = index + 1;
        bytes = 0;
      }
    }
    replica.sentLsn = firstLsn + frames.length - 1;
    // The WAL calls this once the batch is written and its fdatasync started on a worker thread:
    // send now, not at the end of the tick, so the backup's round trip overlaps that sync.
    replica.link.connection.flush();
  }

  private onAck(link: PeerLink, ack: Extract<Message, { t: 'ack' }>): void {
    const replica = this.replica;
    if (this.role !== 'primary' || replica.link === undefined) return;
    if (ack.receivedLsn > replica.ackedLsn) replica.ackedLsn = Math.min(ack.receivedLsn, replica.sentLsn);
    replica.durableLsn = Math.max(replica.durableLsn, ack.durableLsn);
    if (!replica.inSync && replica.liveLsn !== undefined && replica.ackedLsn >= replica.liveLsn) {
      replica.inSync = true;
      this.replicaLostAtMs = undefined;
      this.replicaUnavailable = false;
      if (this.alone) this.log(`backup ${link.state?.nodeId ?? link.connection.remote} is in sync; no longer alone`);
      this.alone = false;
    }
    this.engine.releaseMore();
  }

  /** How far commits may be released to clients. */
  private releaseLimit(): number {
    // Not primary: only replicated records are pending, and they apply once written.
    if (this.role !== 'primary' || this.alone) return Number.MAX_SAFE_INTEGER;
    return this.replica.ackedLsn;
  }

  private onLinkClosed(link: PeerLink): void {
    this.links.delete(link);
    if (link === this.primaryLink) {
      this.primaryLink = [...this.links].find((candidate) => candidate.state?.role === 'primary' && !candidate.connection.closed);
      if (this.primaryLink === undefined) this.log('lost the link to the primary');
    }
    if (this.role === 'primary' && link === this.replica.link) this.switchReplicaLink();
  }

  /** The active link failed: resend what is unacknowledged on another link, or note the loss. */
  private switchReplicaLink(): void {
    const replica = this.replica;
    const next = [...this.links].find((candidate) => candidate.state?.role === 'backup' && !candidate.connection.closed);
    if (next === undefined) {
      replica.link = undefined;
      // No link reaches the backup: it is not in sync any more (status, and the peer state,
      // must not report a healthy pair); a rejoin starts a fresh replica.
      replica.inSync = false;
      this.replicaLostAtMs ??= this.nowMs();
      const others = [...this.links].map((candidate) => `${candidate.state?.role ?? 'unknown'}${candidate.connection.closed ? ' (closed)' : ''}`);
      this.log(`lost the backup (other peer links: ${others.length === 0 ? 'none' : others.join(', ')})`);
      return;
    }
    replica.link = next;
    replica.sentLsn = replica.ackedLsn;
    replica.mode = 'catchup';
    this.log(`replication moves to another link; resending from LSN ${replica.ackedLsn + 1}`);
    void this.pump();
  }

  // ---------------------------------------------------------------- backup side of replication

  private followPrimary(link: PeerLink, peer: PeerState): void {
    if (this.primaryLink !== undefined && !this.primaryLink.connection.closed && this.primaryLink.state?.epoch === peer.epoch) {
      return; // Already following this primary; another link is a spare.
    }
    if (this.role === 'primary') return;
    this.role = 'backup';
    this.epoch = Math.max(this.epoch, peer.epoch);
    this.engine.observeEpoch(peer.epoch);
    this.primaryLink = link;
    this.backupInSync = false;
    this.liveLsnFromPrimary = undefined;
    this.joinedPrimary = false;
    this.log(`following primary ${peer.nodeId} (epoch ${peer.epoch})`);
    void this.sendJoin(link);
  }

  private async sendJoin(link: PeerLink): Promise<void> {
    await this.truncating;
    await this.store.whenIdle();
    this.receivedLsn = this.store.lastLsn;
    link.connection.send({ t: 'join', lastLsn: this.store.lastLsn, lastEpoch: this.engine.lastEpoch, epoch: this.epoch });
    this.broadcastState();
  }

  private onReplicationMessage(link: PeerLink, message: Extract<Message, { t: 'truncate' | 'records' | 'live' }>): void {
    if (this.role !== 'backup') return;
    if (this.truncating !== undefined) {
      // A cut is short; a primary that keeps sending meanwhile gets its link dropped, not an
      // unbounded queue here (it resends from the acknowledged LSN on the next link).
      if (this.deferredMessages >= deferredMessagesMax) {
        link.connection.reject(txlogError('BUSY', 'too many replication messages while the log is being cut'));
        return;
      }
      this.deferredMessages += 1;
      const previous = this.truncating;
      this.truncating = previous.then(() => {
        this.deferredMessages -= 1;
        this.onReplicationMessage(link, message);
      });
      return;
    }
    this.epoch = Math.max(this.epoch, message.epoch);
    switch (message.t) {
      case 'truncate':
        this.truncating = this.truncate(link, message.afterLsn).finally(() => {
          this.truncating = undefined;
        });
        return;
      case 'records':
        this.receive(link, message);
        return;
      case 'live':
        if (!this.joinedPrimary) return; // Not ours yet: a live marker before the join means nothing.
        this.liveLsnFromPrimary = message.lsn;
        this.checkInSync();
        return;
    }
  }

  private async truncate(link: PeerLink, afterLsn: number): Promise<void> {
    await this.store.whenIdle();
    if (afterLsn < this.store.lastLsn) {
      this.log(`cutting the log after LSN ${afterLsn} (a tail the primary never had)`);
      await this.engine.truncateAfter(afterLsn);
    }
    this.receivedLsn = this.store.lastLsn;
    this.joinedPrimary = true;
    link.connection.send({ t: 'ack', epoch: this.epoch, receivedLsn: this.receivedLsn, durableLsn: this.engine.durableLsn });
  }

  private receive(link: PeerLink, message: Extract<Message, { t: 'records' }>): void {
    // Before the logs have agreed where they meet (truncate), an LSN this node already holds may
    // be a different record: nothing is taken, the primary sends again after the join.
    if (!this.joinedPrimary) return;
    let lsn = message.firstLsn;
    for (const frame of message.frames) {
      if (lsn <= this.receivedLsn) {
        lsn += 1;
        continue; // A duplicate resent on another link.
      }
      if (lsn !== this.receivedLsn + 1) {
        link.connection.reject(txlogError('PROTOCOL_ERROR', `gap in replication: LSN ${lsn} after ${this.receivedLsn}`));
        return;
      }
      const appended = this.engine.appendReplicated(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength));
      appended.applied.catch((error: unknown) => this.log(`replicated record ${lsn} failed: ${String(error)}`));
      if (this.engine.nextLsn !== lsn + 1) {
        link.connection.reject(txlogError('PROTOCOL_ERROR', `replicated frame ${lsn} was refused`));
        return;
      }
      this.receivedLsn = lsn;
      lsn += 1;
    }
    link.connection.send({ t: 'ack', epoch: this.epoch, receivedLsn: this.receivedLsn, durableLsn: this.engine.durableLsn });
    this.checkInSync();
  }

  private checkInSync(): void {
    if (!this.backupInSync && this.liveLsnFromPrimary !== undefined && this.receivedLsn >= this.liveLsnFromPrimary) {
      this.backupInSync = true;
      this.log(`in sync with the primary at LSN ${this.receivedLsn}`);
    }
  }

  /** Backup: re-execute each applied commit and compare digests (determinism check). */
  private verifyApplied(records: readonly ApplicableRecord[]): void {
    if (this.closed || this.role !== 'backup' || this.store.options.service === undefined) return;
    for (const record of records) {
      if (record.type === recordTypes.journal) this.journal.add(record.lsn, record.payload as JournalPayload);
      if (record.type !== recordTypes.commit) continue;
      const commit = record.payload as CommitPayload;
      const journal = this.journal.take(commit);
      if (journal === undefined) {
        // Its calls were journaled before the oldest record this node still has: nothing to check against.
        this.skippedChecks += 1;
        continue;
      }
      if (this.verifyQueued >= verifyQueueMax) {
        this.skippedChecks += 1;
        continue;
      }
      this.verifyQueued += 1;
      this.verifyChain = this.verifyChain.then(async () => {
        try {
          if (this.store.isClosed) return;
          const divergence = await reexecute(
            this.store.options.service,
            record.lsn,
            commit,
            journal,
            (stream, fromVersion, maxCount, version) => this.readAsOf(stream, fromVersion, maxCount, version),
            this.store.options.limits,
          );
          // A node closing under a re-execution proves nothing either way.
          if (this.closed) return;
          this.checkedCommits += 1;
          if (divergence !== undefined) {
            this.violationCount += 1;
            this.violations.push(divergence);
            if (this.violations.length > violationsKeptMax) this.violations.shift();
            this.log(`DETERMINISM VIOLATION at LSN ${divergence.lsn} (${divergence.command}): ${divergence.detail}; keeping the primary's outcome`);
          }
        } catch (error) {
          this.skippedChecks += 1;
          this.log(`could not re-execute LSN ${record.lsn}: ${String(error)}`);
        } finally {
          this.verifyQueued -= 1;
        }
      });
    }
  }

  private readAsOf(stream: string, fromVersion: number, maxCount: number, version: number) {
    return this.engine.readStreamAsOf(stream, fromVersion, maxCount, version);
  }

  // ---------------------------------------------------------------- heartbeats and timers

  private tick(): void {
    const now = this.nowMs();
    for (const link of [...this.links]) {
      if (now - link.lastHeardMs > this.options.heartbeatTimeoutMs) {
        this.log(`peer link ${link.connection.remote} silent for ${Math.round(now - link.lastHeardMs)} ms; closing it`);
        link.connection.close(txlogError('TIMEOUT', 'heartbeat timeout'));
        continue;
      }
      link.connection.send({ t: 'heartbeat', epoch: this.epoch, lastLsn: this.store.lastLsn });
    }
    if (this.role === 'primary' && !this.alone && this.replica.link === undefined) {
      this.replicaLostAtMs ??= now;
      if (!this.replicaUnavailable && now - this.replicaLostAtMs >= this.options.replicaTimeoutMs) this.onReplicaLost();
    }
  }

  private onReplicaLost(): void {
    if (this.options.onReplicaLost === 'continue') {
      this.alone = true;
      this.log('no backup for replicaTimeoutMs: continuing ALONE (onReplicaLost: continue; unsafe under a partition)');
      this.engine.releaseMore();
      return;
    }
    this.replicaUnavailable = true;
    this.log('no backup for replicaTimeoutMs: failing writes with REPLICA_UNAVAILABLE until a backup is in sync');
    this.engine.failUnreleased(txlogError('REPLICA_UNAVAILABLE', 'no backup acknowledged this commit in time; its outcome is unknown, resend the same request id'));
  }

  // ---------------------------------------------------------------- clients

  private addClient(connection: Connection, clientId: string): void {
    if (this.clients.size >= this.options.clientConnectionsMax) {
      connection.reject(txlogError('BUSY', `this node serves at most ${this.options.clientConnectionsMax} clients`));
      return;
    }
    if (clientId.length === 0 || clientId.length > this.store.options.limits.clientIdLengthMax) {
      connection.reject(txlogError('BAD_REQUEST', 'client id must be 1..128 characters'));
      return;
    }
    this.clients.add(connection);
    let running = 0;
    connection.onClose(() => this.clients.delete(connection));
    connection.setHandler((message) => {
      if (message.t !== 'req') {
        connection.reject(txlogError('PROTOCOL_ERROR', `unexpected ${message.t} from a client`));
        return;
      }
      if (running >= this.options.requestsPerConnectionMax) {
        this.reply(connection, message.callId, txlogError('BUSY', 'too many requests in flight on this connection'));
        return;
      }
      running += 1;
      this.handleRequest(clientId, message)
        .then(
          (value) => this.reply(connection, message.callId, undefined, value),
          (error: unknown) => this.reply(connection, message.callId, error),
        )
        .finally(() => {
          running -= 1;
        });
    });
  }

  private reply(connection: Connection, callId: number, error: unknown, value?: unknown): void {
    if (error === undefined) {
      connection.send({ t: 'res', callId, ok: true, value: value ?? null, epoch: this.epoch });
      return;
    }
    const coded = error instanceof TxlogError ? error : txlogError('HANDLER_FAILED', String(error));
    const message: Message = { t: 'res', callId, ok: false, error: coded.toJSON(), epoch: this.epoch };
    const hint = this.primaryHint();
    if (coded.code === 'NOT_PRIMARY' && hint !== undefined) message.primary = hint;
    connection.send(message);
  }

  private primaryHint(): string | undefined {
    const link = this.primaryLink ?? [...this.links].find((candidate) => candidate.state?.role === 'primary');
    return link?.state?.addresses[0];
  }

  private async handleRequest(clientId: string, request: Extract<Message, { t: 'req' }>): Promise<unknown> {
    if (request.epoch > this.epoch && this.role === 'primary') this.stepDown(request.epoch, 'a client');
    const body = request.body;
    switch (request.op) {
      case 'status':
        return this.status();
      case 'session':
        // Only the primary knows every request id taken: a lagging backup would hand a restarted
        // client ids already used, and its new requests would get the old requests' replies.
        await this.servePrimary();
        return { latestRequestId: this.store.latestRequestId(clientId) };
      case 'execute': {
        await this.servePrimary();
        if (this.replicaUnavailable) {
          throw txlogError('REPLICA_UNAVAILABLE', 'no backup is in sync; the outcome is unknown, resend the same request id later');
        }
        const requestId = body['requestId'];
        if (typeof requestId !== 'number') throw txlogError('BAD_REQUEST', 'execute needs a requestId');
        return this.store.execute(body['command'] as string, body['args'], { clientId, requestId });
      }
      case 'readStream': {
        await this.servePrimary();
        const options: { fromVersion?: number; maxCount?: number } = {};
        if (body['fromVersion'] !== undefined) options.fromVersion = body['fromVersion'] as number;
        if (body['maxCount'] !== undefined) options.maxCount = body['maxCount'] as number;
        return this.store.readStream(body['stream'] as string, options);
      }
      case 'readAll': {
        await this.servePrimary();
        const options: { fromPosition?: number; maxCount?: number } = {};
        if (body['fromPosition'] !== undefined) options.fromPosition = body['fromPosition'] as number;
        if (body['maxCount'] !== undefined) options.maxCount = body['maxCount'] as number;
        if (body['direction'] !== undefined) (options as { direction?: unknown }).direction = body['direction'];
        const waitMs = Math.min(typeof body['waitMs'] === 'number' ? body['waitMs'] : 0, readWaitMsMax);
        let events = await this.store.readAll(options);
        if (events.length === 0 && waitMs > 0) {
          await this.store.waitForEvents(waitMs);
          events = await this.store.readAll(options);
        }
        return events;
      }
      case 'readAllPage': {
        // A filtered subscription's long poll: the node filters, the client moves past the rest.
        await this.servePrimary();
        const options = { fromPosition: body['fromPosition'] ?? 0, maxCount: body['maxCount'], filter: body['filter'] ?? undefined } as NonNullable<Parameters<Store['readAllPage']>[0]>;
        const waitMs = Math.min(typeof body['waitMs'] === 'number' ? body['waitMs'] : 0, readWaitMsMax);
        let page = await this.store.readAllPage(options);
        if (page.nextPosition === options.fromPosition && waitMs > 0) {
          await this.store.waitForEvents(waitMs);
          page = await this.store.readAllPage(options);
        }
        return page;
      }
    }
  }

  /** Resolves when this node may serve as primary now, promoting a lone in-sync backup. */
  private async servePrimary(): Promise<void> {
    if (this.role === 'backup' && !this.primaryAlive()) {
      if (!this.backupInSync) {
        throw txlogError('NOT_PRIMARY', 'the primary is unreachable and this backup is not in sync, so it cannot take over');
      }
      this.log('primary unreachable and a client asks to be served: promoting');
      await this.promote();
    }
    if (this.role !== 'primary') throw txlogError('NOT_PRIMARY', `this node is ${this.role}`);
    await this.primaryReady;
    // Nothing is served before this primary's epoch record is applied (in a pair: acknowledged
    // by the backup). A wait that failed (the backup went away) is tried again by later requests.
    if (this.epochLsn !== undefined && this.store.appliedLsn < this.epochLsn) await this.engine.waitApplied(this.epochLsn);
    if (this.role !== 'primary') throw txlogError('NOT_PRIMARY', `this node is ${this.role}`);
  }

  status(): NodeStatus {
    const isPrimary = this.role === 'primary';
    return {
      nodeId: this.nodeId,
      role: this.role,
      epoch: this.epoch,
      lastLsn: this.store.lastLsn,
      appliedLsn: this.store.appliedLsn,
      alone: isPrimary && (this.alone || !this.replica.inSync),
      inSync: isPrimary ? this.replica.inSync : this.backupInSync,
      backupLagRecords: isPrimary ? Math.max(0, this.store.lastLsn - this.replica.ackedLsn) : 0,
      replicaAckedLsn: this.replica.ackedLsn,
      replicaDurableLsn: this.replica.durableLsn,
      replicaUnavailable: this.replicaUnavailable,
      peerLinks: this.links.size,
      clients: this.clients.size,
      checkedCommits: this.checkedCommits,
      skippedChecks: this.skippedChecks,
      determinismViolations: this.violationCount,
      lastViolation: this.violations[this.violations.length - 1],
      addresses: this.boundAddresses,
    };
  }

  /** The failure that made the node close itself, if its store failed. */
  get storeFailure(): TxlogError | undefined {
    return this.store.failedWith;
  }

  /** Resolves when the node has closed, by `close()` or because its store failed. */
  get whenClosed(): Promise<void> {
    return this.closedSignal;
  }

  close(): Promise<void> {
    this.closing ??= this.closeNow();
    return this.closing;
  }

  private async closeNow(): Promise<void> {
    this.closed = true;
    this.tickTimer?.cancel();
    for (const link of [...this.links]) link.connection.close(undefined);
    for (const client of [...this.clients]) client.close(undefined);
    await Promise.all(this.servers.map((server) => server.close()));
    await this.verifyChain;
    try {
      await this.store.close();
    } finally {
      this.resolveClosed();
    }
  }
}

function newReplica(agreedLsn: number): ReplicaProgress {
  return {
    link: undefined,
    sentLsn: agreedLsn,
    ackedLsn: agreedLsn,
    durableLsn: 0,
    mode: 'catchup',
    liveLsn: undefined,
    inSync: false,
    pumping: false,
    backupNodeId: undefined,
  };
}

