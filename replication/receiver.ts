/**
 * The backup's side of replication. Following a primary, it sends `join` (its last LSN and
 * epoch); the primary's `truncate` says where the two logs agree, and the backup cuts any tail
 * past it before it takes anything. Then it takes `records` frame by frame into its mirror (the
 * store's WAL queue and pending map), dropping by LSN what it already has, and answers each
 * message with a cumulative `ack`. `live` marks where the primary's live stream began: holding
 * that LSN makes this backup in sync, and only an in-sync backup may promote itself.
 */
import { assertionFailed } from '../wal/assert.js';
import { txlogError, type TxlogError } from '../wal/errors.js';
import { deferredMessagesMax } from './limits.js';
import type { NodeContext, PeerLink } from './context.js';
import type { MessageOf, PeerState } from './protocol.js';

export class BackupReceiver {
  private primaryLinkValue: PeerLink | undefined;
  private receivedLsn: number;
  private inSyncValue = false;
  /** The current primary answered our join (truncate): its records may be taken from here on. */
  private joinedPrimary = false;
  private liveLsnFromPrimary: number | undefined;
  private droppingTailValue = false;
  /** Where the primary said it stopped committing alone (`synced`); holding it makes this node in sync. */
  private syncedLsnFromPrimary: number | undefined;
  /** A cut of the log (a truncate, or dropping an unreleased tail) in progress. */
  private truncating: Promise<void> | undefined;
  /** Replication messages waiting for a cut of the log to finish. */
  private deferredMessages = 0;

  constructor(
    private readonly context: NodeContext,
    /** Tells every peer our new state (a join on its way). */
    private readonly broadcastState: () => void,
  ) {
    this.receivedLsn = context.store.lastLsn;
  }

  /** The link to the primary this node follows, if any. */
  get primaryLink(): PeerLink | undefined {
    return this.primaryLinkValue;
  }

  /** Replication messages held while the log is cut (at most `deferredMessagesMax`). */
  get deferredMessageCount(): number {
    return this.deferredMessages;
  }

  /** Caught up with the primary's live stream. */
  get inSync(): boolean {
    return this.inSyncValue;
  }

  /** The primary it follows answered its join (the logs agree where they meet): records are taken only now. */
  get joined(): boolean {
    return this.joinedPrimary;
  }

  /** Already following this primary on an open link: another link to it is a spare. */
  follows(peer: PeerState): boolean {
    const link = this.primaryLinkValue;
    return link !== undefined && !link.connection.closed && link.state?.epoch === peer.epoch;
  }

  /** This node became primary: it follows no one. */
  stop(): void {
    this.primaryLinkValue = undefined;
  }

  /** Starts following the primary on `link` (the node is now its backup): join it. */
  follow(link: PeerLink, peer: PeerState): void {
    this.context.store.observeEpoch(peer.epoch);
    this.primaryLinkValue = link;
    this.inSyncValue = false;
    this.liveLsnFromPrimary = undefined;
    this.syncedLsnFromPrimary = undefined;
    this.joinedPrimary = false;
    this.context.log(`following primary ${peer.nodeId} (epoch ${peer.epoch})`);
    void this.sendJoin();
  }

  /** Sends `join` on the link to the primary as it is once the log is settled, unless answered already. */
  private async sendJoin(): Promise<void> {
    const store = this.context.store;
    await this.truncating;
    await store.whenIdle();
    const link = this.primaryLinkValue;
    if (link === undefined || link.connection.closed || this.joinedPrimary) return;
    this.receivedLsn = store.lastLsn;
    link.connection.send({ t: 'join', lastLsn: store.lastLsn, lastEpoch: store.lastEpoch, epoch: this.context.epoch });
    this.broadcastState();
  }

  /**
   * A primary stepping down drops what it never released before it joins anyone: that tail may
   * be missing from the new primary's log. Callers waiting on it get `error`.
   */
  dropUnreleasedTail(error: TxlogError): void {
    const previous = this.truncating ?? Promise.resolve();
    this.droppingTailValue = true;
    this.truncating = previous
      .then(() => this.context.store.dropUnapplied(error))
      .catch((failure: unknown) => this.context.log(`could not drop the unreleased tail: ${String(failure)}`))
      .finally(() => {
        this.truncating = undefined;
        this.droppingTailValue = false;
      });
  }

  /**
   * A tail this node wrote as primary is being dropped: none of it may be released meanwhile,
   * whatever role the node takes in between (it may follow the new primary before the WAL has
   * settled and the tail is gone).
   */
  get droppingTail(): boolean {
    return this.droppingTailValue;
  }

  onLinkClosed(link: PeerLink): void {
    if (link !== this.primaryLinkValue) return;
    this.primaryLinkValue = [...this.context.links].find(
      (candidate) => candidate.state?.role === 'primary' && !candidate.connection.closed,
    );
    if (this.primaryLinkValue === undefined) this.context.log('lost the link to the primary');
    // The join, or its answer, may have been lost with the link: join again on the one left (the
    // primary may take this node for its old backup on a spare link and resend records, which an
    // unjoined node drops; found by the simulator, pair seed 1325966663: the pair never settled).
    else if (!this.joinedPrimary) void this.sendJoin();
  }

  /** `truncate`, `records` or `live` from a primary whose epoch passed the fencing check. */
  onReplicationMessage(link: PeerLink, message: MessageOf<'truncate' | 'records' | 'live' | 'synced'>): void {
    if (this.context.role !== 'backup') return;
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
    this.context.observeEpoch(message.epoch);
    switch (message.t) {
      case 'truncate':
        this.truncating = this.truncate(link, message.afterLsn)
          .catch((failure: unknown) => {
            // The store failed under the cut (it closes the node); this link carries nothing more.
            this.context.log(`could not cut the log after LSN ${message.afterLsn}: ${String(failure)}`);
            link.connection.close(undefined);
          })
          .finally(() => {
            this.truncating = undefined;
          });
        return;
      case 'records':
        this.receive(link, message);
        return;
      case 'live':
        if (!this.joinedPrimary) return; // Not ours yet: a live marker before the join means nothing.
        this.liveLsnFromPrimary = message.lsn;
        return;
      case 'synced':
        // Only the primary knows when it stopped committing alone: until then it may release
        // commits this node lacks, so reaching the live marker is not enough to take over
        // (found by the simulator: a promoted backup and a still-alone primary both acknowledged).
        if (!this.joinedPrimary || this.liveLsnFromPrimary === undefined) return;
        this.syncedLsnFromPrimary = message.lsn;
        this.checkInSync();
        return;
    }
  }

  private async truncate(link: PeerLink, afterLsn: number): Promise<void> {
    const store = this.context.store;
    await store.whenIdle();
    if (afterLsn < store.lastLsn) {
      this.context.log(`cutting the log after LSN ${afterLsn} (a tail the primary never had)`);
      await store.truncateAfter(afterLsn);
    }
    this.receivedLsn = store.lastLsn;
    this.joinedPrimary = true;
    this.acknowledge(link);
  }

  private receive(link: PeerLink, message: MessageOf<'records'>): void {
    // Before the logs have agreed where they meet (truncate), an LSN this node already holds may
    // be a different record: nothing is taken, the primary sends again after the join.
    if (!this.joinedPrimary) return;
    const store = this.context.store;
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
      // A failed write or fdatasync of the frame fails the store, which closes this node.
      const appended = store.appendReplicated(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength));
      if (store.nextLsn !== lsn + 1) {
        // A full queue (a slow disk behind a fast link) is BUSY, said as such; the primary
        // resends from the acknowledged LSN on the next link either way.
        const refused = appended.refused;
        const why = refused === undefined ? '' : `: ${refused.message}`;
        link.connection.reject(txlogError(refused?.code === 'BUSY' ? 'BUSY' : 'PROTOCOL_ERROR', `replicated frame ${lsn} was refused${why}`));
        return;
      }
      this.receivedLsn = lsn;
      lsn += 1;
    }
    // Only replication appends on a backup: what it received is exactly what its log holds.
    if (this.receivedLsn !== store.nextLsn - 1) assertionFailed(`received LSN ${this.receivedLsn} but the log ends at ${store.nextLsn - 1}`);
    this.acknowledge(link);
    this.checkInSync();
  }

  private acknowledge(link: PeerLink): void {
    const store = this.context.store;
    link.connection.send({ t: 'ack', epoch: this.context.epoch, receivedLsn: this.receivedLsn, durableLsn: store.durableLsn });
  }

  private checkInSync(): void {
    if (!this.inSyncValue && this.syncedLsnFromPrimary !== undefined && this.receivedLsn >= this.syncedLsnFromPrimary) {
      this.inSyncValue = true;
      this.context.log(`in sync with the primary at LSN ${this.receivedLsn}`);
    }
  }
}
