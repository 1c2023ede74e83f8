/**
 * The primary's side of replication. It answers a backup's `join` with `truncate` (where the two
 * logs agree), then sends `records`: read back from the WAL while the backup is behind (the
 * catch-up pump), then `live` and each WAL batch as it is written, once its fdatasync has
 * started, so the backup's round trip overlaps the primary's sync. It takes the backup's `ack`s
 * and sets the release gate from them: a commit is released to its caller only when the backup
 * has it. If the active link fails it resumes on another link to the same backup, resending
 * everything not yet acknowledged from the WAL; if none is left, it applies `onReplicaLost`.
 *
 * With an arbiter (`SenderArbiter`) the gate also holds everything while the primary's lease is
 * not certainly valid; the backup is reported for the in-sync set once it holds everything
 * released; and `continue` goes on alone only after the backup is out of that set.
 */
import { assertionFailed } from '../wal/assert.js';
import { txlogError } from '../wal/errors.js';
import { catchUpQueueBytesMax, recordsMessageBytesMax } from './limits.js';
import type { NodeContext, PeerLink } from './context.js';
import type { MessageOf, PeerState } from './protocol.js';

interface ReplicaProgress {
  link: PeerLink | undefined;
  /** Highest LSN sent on the active link. */
  sentLsn: number;
  /** Highest LSN the backup acknowledged; never above `sentLsn`. */
  ackedLsn: number;
  durableLsn: number;
  mode: 'catchup' | 'live';
  /** LSN at which the backup switched to the live stream; in sync once acknowledged. */
  liveLsn: number | undefined;
  inSync: boolean;
  pumping: boolean;
  /** The node that joined (agreed on where the logs meet); only it may be resumed on a spare link. */
  backupNodeId: string | undefined;
  /** Highest LSN sent when the backup was counted in sync: everything released alone is at or below it. */
  syncedLsn: number | undefined;
  /** The backup acknowledged `syncedLsn`: it holds every commit released (told to the arbiter). */
  holdsAll: boolean;
  /** Resumed on another link (`switchLink`): what the backup acknowledged before still counts. */
  resumed: boolean;
}

/** What the sender asks of the node's arbiter, when it has one (`leadership.ts`). */
export interface SenderArbiter {
  /** This primary's lease is certainly valid now. */
  leaseValid(): boolean;
  /** The backup holds every released commit: it may join the in-sync set. */
  backupInSync(nodeId: string): void;
  /** Removes the backup from the in-sync set; true once etcd says it is out. */
  removeBackup(): Promise<boolean>;
}

export class PrimarySender {
  private replica: ReplicaProgress = newReplica(0);
  /** Committing without a backup: forced at start, or by `onReplicaLost: 'continue'`. */
  private aloneValue = false;
  private replicaLostAtMs: number | undefined;
  private replicaUnavailableValue = false;
  /** A removal from the in-sync set is in flight, and when the next may start. */
  private removing = false;
  private nextRemovalAtMs = 0;

  constructor(
    private readonly context: NodeContext,
    private readonly arbiter: SenderArbiter | undefined = undefined,
  ) {}

  /** This node became primary: no backup yet. */
  begin(alone: boolean): void {
    this.aloneValue = alone;
    this.replica = newReplica(0);
    this.replicaUnavailableValue = false;
    this.replicaLostAtMs = alone ? undefined : this.context.clock.monotonicMs();
  }

  /** This node stepped down: whatever it was sending stops (the pump sees a new replica). */
  stop(lastLsn: number): void {
    this.aloneValue = false;
    this.replica = newReplica(lastLsn);
  }

  get alone(): boolean {
    return this.aloneValue;
  }

  get inSync(): boolean {
    return this.replica.inSync;
  }

  get ackedLsn(): number {
    return this.replica.ackedLsn;
  }

  get durableLsn(): number {
    return this.replica.durableLsn;
  }

  /** The backup `nodeId` is in sync and has acknowledged everything released. */
  backupHoldsAll(nodeId: string): boolean {
    return this.context.role === 'primary' && this.replica.holdsAll && this.replica.backupNodeId === nodeId;
  }

  /** Past `replicaTimeoutMs` without a backup under `onReplicaLost: 'fail'`. */
  get replicaUnavailable(): boolean {
    return this.replicaUnavailableValue;
  }

  /** `join` from a backup (this node is primary): agree where the logs meet, then send. */
  onJoin(link: PeerLink, join: MessageOf<'join'>): void {
    const store = this.context.store;
    const agreed = Math.min(join.lastLsn, store.endOfEpoch(join.lastEpoch), store.nextLsn - 1);
    this.replica = { ...newReplica(agreed), link, backupNodeId: link.state?.nodeId };
    link.connection.send({ t: 'truncate', afterLsn: agreed, epoch: this.context.epoch });
    this.context.log(`backup joined at LSN ${join.lastLsn} (epoch ${join.lastEpoch}); logs agree up to ${agreed}`);
    void this.pump();
  }

  /** Sends from the WAL until the backup has everything written, then switches it to live. */
  private async pump(): Promise<void> {
    const replica = this.replica;
    if (replica.pumping) return;
    replica.pumping = true;
    try {
      while (replica === this.replica && replica.mode === 'catchup' && replica.link !== undefined && !this.context.closed) {
        const link = replica.link;
        if (link.connection.closed) return;
        const lastLsn = this.context.store.lastLsn;
        if (replica.sentLsn >= lastLsn) {
          replica.mode = 'live';
          replica.liveLsn = replica.sentLsn;
          link.connection.send({ t: 'live', epoch: this.context.epoch, lsn: replica.sentLsn });
          // Resumed on another link with nothing left to resend, the backup has acknowledged the
          // live marker already, and no acknowledgement would come before the next commit (found
          // by the simulator: an idle pair never counted its backup in sync again). A join waits
          // for the acknowledgement of its truncate.
          if (replica.resumed && this.checkInSync(link)) this.context.store.releaseMore();
          return;
        }
        this.sendFromLog(replica, link, lastLsn);
        // A slow backup holds the pump, not the primary's memory: wait for its link to drain.
        if (link.connection.bufferedBytes > catchUpQueueBytesMax) await link.connection.whenDrained();
        else await new Promise<void>((resolve) => this.context.clock.setImmediate(resolve));
      }
    } finally {
      replica.pumping = false;
    }
  }

  /** Sends `records` read back from the WAL up to `lastLsn`, or until the link's queue is full. */
  private sendFromLog(replica: ReplicaProgress, link: PeerLink, lastLsn: number): void {
    const epoch = this.context.epoch;
    let frames: Uint8Array[] = [];
    let bytes = 0;
    let firstLsn = replica.sentLsn + 1;
    for (const record of this.context.store.readFrames(replica.sentLsn + 1, lastLsn)) {
      frames.push(record.frame);
      bytes += record.frame.length;
      replica.sentLsn = record.lsn;
      if (bytes >= recordsMessageBytesMax) {
        link.connection.send({ t: 'records', epoch, firstLsn, frames });
        frames = [];
        bytes = 0;
        firstLsn = record.lsn + 1;
        if (link.connection.bufferedBytes > catchUpQueueBytesMax) break;
      }
    }
    if (frames.length > 0) link.connection.send({ t: 'records', epoch, firstLsn, frames });
  }

  /**
   * Live path: the WAL calls this with each batch once it is written and its fdatasync has
   * started (on a worker thread).
   */
  onBatch(frames: readonly Buffer[], firstLsn: number): void {
    const replica = this.replica;
    if (this.context.role !== 'primary' || replica.mode !== 'live' || replica.link === undefined) return;
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
          epoch: this.context.epoch,
          firstLsn: firstLsn + start,
          frames: frames.slice(start, index + 1),
        });
        start = index + 1;
        bytes = 0;
      }
    }
    replica.sentLsn = firstLsn + frames.length - 1;
    // Send now, not at the end of the tick, so the backup's round trip overlaps that sync.
    replica.link.connection.flush();
  }

  onAck(link: PeerLink, ack: MessageOf<'ack'>): void {
    const replica = this.replica;
    if (this.context.role !== 'primary' || replica.link === undefined) return;
    if (ack.receivedLsn > replica.ackedLsn) replica.ackedLsn = Math.min(ack.receivedLsn, replica.sentLsn);
    replica.durableLsn = Math.max(replica.durableLsn, ack.durableLsn);
    if (replica.ackedLsn > replica.sentLsn) assertionFailed(`acknowledged LSN ${replica.ackedLsn} above the sent LSN ${replica.sentLsn}`);
    this.checkInSync(link);
    this.context.store.releaseMore();
  }

  /**
   * The backup is in sync once it has acknowledged the live marker, and holds everything
   * released once it has acknowledged `synced`: returns whether either just became true.
   */
  private checkInSync(link: PeerLink): boolean {
    const replica = this.replica;
    let changed = false;
    if (!replica.inSync && replica.liveLsn !== undefined && replica.ackedLsn >= replica.liveLsn) {
      changed = true;
      replica.inSync = true;
      this.replicaLostAtMs = undefined;
      this.replicaUnavailableValue = false;
      if (this.aloneValue) this.context.log(`backup ${link.state?.nodeId ?? link.connection.remote} is in sync; no longer alone`);
      this.aloneValue = false;
      // After every record sent so far (the link keeps order), so the backup holds all that was
      // released alone before it counts itself in sync.
      link.connection.send({ t: 'synced', epoch: this.context.epoch, lsn: replica.sentLsn });
      replica.syncedLsn = replica.sentLsn;
    }
    if (!replica.holdsAll && replica.syncedLsn !== undefined && replica.ackedLsn >= replica.syncedLsn) {
      changed = true;
      replica.holdsAll = true;
      if (replica.backupNodeId !== undefined) this.arbiter?.backupInSync(replica.backupNodeId);
    }
    return changed;
  }

  /** How far commits may be released to clients. */
  releaseLimit(): number {
    // A backup: only replicated records are pending, and they apply once written.
    if (this.context.role === 'backup') return Number.MAX_SAFE_INTEGER;
    // Waiting, as a primary that just stepped down is: its unreleased tail is being dropped
    // (after the WAL settles), so nothing more is released meanwhile. Opening the gate here let
    // a commit the backup never had reach its caller (found by the simulator).
    if (this.context.role !== 'primary') return this.context.store.appliedLsn;
    // With an arbiter, nothing is released unless this node certainly still leads.
    if (this.arbiter !== undefined && !this.arbiter.leaseValid()) return this.context.store.appliedLsn;
    return this.aloneValue ? Number.MAX_SAFE_INTEGER : this.replica.ackedLsn;
  }

  onLinkClosed(link: PeerLink): void {
    if (this.context.role === 'primary' && link === this.replica.link) this.switchLink();
  }

  /**
   * The active link failed before this spare link had told us it reaches our backup: the backup
   * still follows us over it and will not join again, so resume replication on it.
   */
  onSpareLinkState(link: PeerLink, peer: PeerState): void {
    if (
      peer.role === 'backup' &&
      peer.epoch === this.context.epoch &&
      peer.nodeId === this.replica.backupNodeId &&
      this.replica.link === undefined &&
      !link.connection.closed
    ) {
      this.switchLink();
    }
  }

  /** The active link failed: resend what is unacknowledged on another link, or note the loss. */
  private switchLink(): void {
    const replica = this.replica;
    const links = [...this.context.links];
    const next = links.find((candidate) => candidate.state?.role === 'backup' && !candidate.connection.closed);
    if (next === undefined) {
      replica.link = undefined;
      // No link reaches the backup: it is not in sync any more (status, and the peer state,
      // must not report a healthy pair); a rejoin starts a fresh replica.
      replica.inSync = false;
      replica.holdsAll = false;
      this.replicaLostAtMs ??= this.context.clock.monotonicMs();
      const others = links.map((candidate) => `${candidate.state?.role ?? 'unknown'}${candidate.connection.closed ? ' (closed)' : ''}`);
      this.context.log(`lost the backup (other peer links: ${others.length === 0 ? 'none' : others.join(', ')})`);
      return;
    }
    replica.link = next;
    replica.sentLsn = replica.ackedLsn;
    replica.mode = 'catchup';
    replica.resumed = true;
    this.context.log(`replication moves to another link; resending from LSN ${replica.ackedLsn + 1}`);
    void this.pump();
  }

  /** Heartbeat tick of a primary: apply `onReplicaLost` once the backup is gone long enough. */
  checkReplicaLost(nowMs: number): void {
    if (this.context.role !== 'primary' || this.aloneValue || this.replica.link !== undefined) return;
    this.replicaLostAtMs ??= nowMs;
    if (nowMs - this.replicaLostAtMs < this.context.options.replicaTimeoutMs) return;
    if (this.arbiter !== undefined && this.context.options.onReplicaLost === 'continue') this.removeThenContinue(nowMs);
    else if (!this.replicaUnavailableValue) this.onReplicaLost();
  }

  /**
   * `continue` with an arbiter: alone only once the backup is out of the in-sync set, so it can
   * never lead without what is released from here on. Until then commits are held; if etcd does
   * not say yes they fail with REPLICA_UNAVAILABLE as under `fail`, and the removal is retried.
   */
  private removeThenContinue(nowMs: number): void {
    const arbiter = this.arbiter;
    if (arbiter === undefined || this.removing || nowMs < this.nextRemovalAtMs) return;
    this.removing = true;
    this.nextRemovalAtMs = nowMs + this.context.options.replicaTimeoutMs;
    const replica = this.replica;
    void arbiter.removeBackup().then((removed) => {
      this.removing = false;
      // After the await: still primary, still without a backup, not yet alone?
      if (this.context.role !== 'primary' || replica !== this.replica || replica.link !== undefined || this.aloneValue) return;
      if (removed) {
        this.replicaUnavailableValue = false;
        this.aloneValue = true;
        this.context.log('no backup for replicaTimeoutMs and it is out of the in-sync set: continuing alone');
        this.context.store.releaseMore();
      } else if (!this.replicaUnavailableValue) {
        this.onReplicaLost('fail');
      }
    });
  }

  private onReplicaLost(policy = this.context.options.onReplicaLost): void {
    const store = this.context.store;
    if (policy === 'continue') {
      this.aloneValue = true;
      this.context.log('no backup for replicaTimeoutMs: continuing ALONE (onReplicaLost: continue; unsafe under a partition)');
      store.releaseMore();
      return;
    }
    this.replicaUnavailableValue = true;
    this.context.log('no backup for replicaTimeoutMs: failing writes with REPLICA_UNAVAILABLE until a backup is in sync');
    store.failUnreleased(
      txlogError('REPLICA_UNAVAILABLE', 'no backup acknowledged this commit in time; its outcome is unknown, resend the same request id'),
    );
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
    syncedLsn: undefined,
    holdsAll: false,
    resumed: false,
  };
}
