/**
 * A node's use of its arbiter (issue 12; ARCHITECTURE.md, "Arbiter"): campaigning for the leader
 * key, the lease validity the release gate checks, and the in-sync set in etcd. Only a node
 * started with an `arbiter` option has one; without it nothing here runs and the two nodes
 * decide between themselves.
 *
 * Who leads: a node that is not primary campaigns every `renewIntervalMs` (on the node's clock),
 * and at once when its peer waits too. `leader` makes it primary with the epoch etcd handed out;
 * `held` leaves it following the holder (the peer link says where it is), `not-in-sync` leaves
 * it waiting, and `status` says why.
 *
 * The in-sync set: only the primary changes it, one change at a time (read, then compare-and-swap
 * on the revision read, retried a few times when another change came between). The backup is
 * added once it holds everything released (`backupInSync`); it is removed before the primary
 * goes on alone (`removeBackup`).
 */
import { txlogError } from '../wal/errors.js';
import type { TimerHandle } from '../wal/platform.js';
import { openArbiter, type Arbiter, type ArbiterStatus, type CampaignOutcome } from './arbiter.js';
import type { NodeContext } from './context.js';
import type { NodeArbiterConfig } from './options.js';
import type { SenderArbiter } from './sender.js';

/** Rounds of read-then-compare-and-swap one change of the in-sync set makes. */
const setChangeAttemptsMax = 3;

/** What the leadership needs from the node's role state machine. */
export interface LeadingNode {
  /** May this node lead a fresh cluster (no in-sync set yet)? The peer decision chose it. */
  mayBootstrap(): boolean;
  /** The highest epoch this node knows (its log's and any it observed). */
  epochAbove(): number;
  /** Won the leader key with `epoch`: become primary (false: it could not, resign). */
  lead(epoch: number): boolean;
  /** etcd says this node no longer leads: step down as for a higher epoch. */
  stepDown(reason: string): void;
  /** The lease was renewed: release what the gate held. */
  releaseMore(): void;
  /** Does the backup `nodeId` still hold every released commit (the sender's view)? */
  backupHoldsAll(nodeId: string): boolean;
}

/** The arbiter as `status` shows it, on every node that has one. */
export interface ArbiterNodeStatus extends Omit<ArbiterStatus, 'self'> {
  /** This node holds the leader key. */
  leading: boolean;
  /** How long this node's lease is certainly valid from now (0: not leading, or run out). */
  leaseValidForMs: number;
  /** Why this node does not lead, when it does not. */
  waiting?: string;
  /** How long ago etcd was asked for this view (it is refreshed every `renewIntervalMs`). */
  checkedAgoMs: number;
}

export class ArbiterLeadership implements SenderArbiter {
  private arbiter: Arbiter | undefined;
  private timer: TimerHandle | undefined;
  private campaigning = false;
  private waitingReason: string | undefined = 'not campaigned yet';
  /** In-sync set changes run one after the other. */
  private changes: Promise<unknown> = Promise.resolve();
  /** A backup to add to the set once a change can be made (retried on the timer). */
  private backupToAdd: string | undefined;
  /** An add is queued or running: the timer's retries never pile up behind a slow etcd. */
  private adding = false;
  private lastStatus: ArbiterStatus | undefined;
  private lastStatusAtMs = 0;
  private statusInFlight = false;

  constructor(
    readonly config: NodeArbiterConfig,
    private readonly context: NodeContext,
    private readonly node: LeadingNode,
  ) {}

  /** Opens the arbiter (the etcd client loads here) and starts campaigning. */
  async open(): Promise<void> {
    this.arbiter = await openArbiter({
      ...this.config,
      clock: this.context.clock,
      onLeadershipLost: (reason) => this.node.stepDown(`the arbiter: ${reason}`),
      onLeaseRenewed: () => this.node.releaseMore(),
    });
    this.tick();
  }

  /** Rule 3: release only while this node's lease is certainly valid. */
  leaseValid(): boolean {
    return this.arbiter !== undefined && this.context.clock.monotonicMs() < this.arbiter.leaseValidUntilMs();
  }

  /** Why a client's request cannot be served here (not primary, or the lease ran out). */
  notServing(): string | undefined {
    if (this.context.role !== 'primary') return this.waitingReason;
    return this.leaseValid() ? undefined : 'its arbiter lease is not certainly valid (etcd unreachable?); held until it is renewed';
  }

  /** The peer waits too: campaign now instead of at the next tick. */
  campaignSoon(): void {
    void this.campaign();
  }

  private tick(): void {
    if (this.context.closed) return;
    void this.campaign();
    void this.refreshStatus();
    if (this.backupToAdd !== undefined) this.backupInSync(this.backupToAdd);
    this.timer = this.context.clock.setTimeout(() => this.tick(), this.config.renewIntervalMs);
  }

  /**
   * Campaigns when not primary, even while a primary answers: a primary cut from etcd stops
   * acknowledging, and its backup can only take over by finding the key free when that lease
   * has expired (a campaign that finds it held costs one etcd read).
   */
  private async campaign(): Promise<void> {
    const arbiter = this.arbiter;
    if (arbiter === undefined || this.campaigning || this.context.closed) return;
    if (this.context.role === 'primary' || arbiter.leadership() !== undefined) return;
    this.campaigning = true;
    try {
      const outcome = await arbiter.campaign({
        nodeId: this.context.nodeId,
        epochAbove: this.node.epochAbove(),
        bootstrap: this.node.mayBootstrap(),
      });
      await this.onCampaign(arbiter, outcome);
    } catch (error) {
      this.waitingReason = `cannot campaign: ${error instanceof Error ? error.message : String(error)}`;
    } finally {
      this.campaigning = false;
    }
  }

  private async onCampaign(arbiter: Arbiter, outcome: CampaignOutcome): Promise<void> {
    switch (outcome.outcome) {
      case 'held': {
        const { nodeId, epoch } = outcome.holder;
        this.waitingReason = nodeId === this.context.nodeId
          ? `the leader key is still held by this node's previous process (epoch ${epoch}); waiting for its lease to expire`
          : `the leader key is held by ${nodeId} (epoch ${epoch})`;
        return;
      }
      case 'not-in-sync':
        this.waitingReason = outcome.inSync.revision === 0
          ? 'etcd has no in-sync set yet and the peer decision has not chosen this node to start one'
          : `not in the in-sync set [${outcome.inSync.members.join(', ')}]`;
        return;
      case 'leader':
        break;
    }
    let started: boolean;
    try {
      // A fresh cluster: the winner is the first member of the set, before it serves anything.
      const inSync = await arbiter.readInSync();
      started = inSync.revision !== 0 || (await arbiter.setInSync([this.context.nodeId], 0)).ok;
    } catch (error) {
      await arbiter.resign();
      throw error;
    }
    if (!started) this.waitingReason = 'won the leader key but could not start the in-sync set';
    // After the awaits: a node that closed meanwhile must not lead.
    if (!started || this.context.closed || !this.node.lead(outcome.epoch)) {
      await arbiter.resign();
      return;
    }
    this.waitingReason = undefined;
    this.context.log(`the arbiter made this node leader with epoch ${outcome.epoch}`);
  }

  /** Gives the leader key back (a primary stepping down for a higher epoch, or closing). */
  resign(): Promise<void> {
    return this.arbiter?.resign() ?? Promise.resolve();
  }

  async close(): Promise<void> {
    this.timer?.cancel();
    await this.resign();
    this.arbiter?.close();
  }

  // ---------------------------------------------------------------- the in-sync set

  /** Rule 4: the backup holds everything released; add it to the set (retried until it is in). */
  backupInSync(nodeId: string): void {
    this.backupToAdd = nodeId;
    if (this.adding) return;
    this.adding = true;
    void this.changeSet(`add ${nodeId}`, (members) => {
      // After the read: a backup lost meanwhile is not added.
      if (!this.node.backupHoldsAll(nodeId)) return null;
      return members.includes(nodeId) ? undefined : [...members, nodeId];
    }).then((result) => {
      this.adding = false;
      if (result !== 'failed' && this.backupToAdd === nodeId) this.backupToAdd = undefined;
    });
  }

  /** Rule 5: before going on alone the set becomes this node alone. True once etcd says so. */
  async removeBackup(): Promise<boolean> {
    const self = this.context.nodeId;
    const result = await this.changeSet('remove the backup', (members) => {
      if (!members.includes(self)) return null; // Never write a set that drops the leader itself.
      return members.length === 1 ? undefined : [self];
    });
    return result === 'done';
  }

  /**
   * One change of the set, after every change before it: `next` gets the members read and says
   * the new set (undefined: already so; null: give up, it no longer applies).
   */
  private changeSet(what: string, next: (members: string[]) => string[] | undefined | null): Promise<'done' | 'given-up' | 'failed'> {
    const run = async (): Promise<'done' | 'given-up' | 'failed'> => {
      const arbiter = this.arbiter;
      if (arbiter === undefined || this.context.role !== 'primary') return 'failed';
      try {
        for (let attempt = 1; attempt <= setChangeAttemptsMax; attempt++) {
          const read = await arbiter.readInSync();
          const members = next(read.members);
          if (members === null) return 'given-up';
          if (members === undefined) return 'done';
          const update = await arbiter.setInSync(members, read.revision);
          if (update.ok) {
            this.context.log(`in-sync set is now [${members.join(', ')}] (${what})`);
            return 'done';
          }
          if (update.reason === 'not-leader') {
            this.node.stepDown('the arbiter: this node no longer holds the leader key');
            return 'failed';
          }
        }
        this.context.log(`could not ${what}: the in-sync set kept changing`);
      } catch (error) {
        this.context.log(`could not ${what} in the in-sync set: ${error instanceof Error ? error.message : String(error)}`);
      }
      return 'failed';
    };
    const change = this.changes.then(run, run);
    this.changes = change;
    return change;
  }

  // ---------------------------------------------------------------- status

  private async refreshStatus(): Promise<void> {
    if (this.arbiter === undefined || this.statusInFlight) return;
    this.statusInFlight = true;
    try {
      this.lastStatus = await this.arbiter.status();
      this.lastStatusAtMs = this.context.clock.monotonicMs();
    } finally {
      this.statusInFlight = false;
    }
  }

  status(): ArbiterNodeStatus {
    const now = this.context.clock.monotonicMs();
    const validUntilMs = this.arbiter?.leaseValidUntilMs() ?? -Infinity;
    const { self: _self, ...seen } = this.lastStatus ?? { reachable: false, error: 'not asked yet', self: undefined };
    const status: ArbiterNodeStatus = {
      ...seen,
      leading: this.arbiter?.leadership() !== undefined,
      leaseValidForMs: Math.max(0, validUntilMs - now),
      checkedAgoMs: this.lastStatus === undefined ? 0 : Math.round(now - this.lastStatusAtMs),
    };
    const waiting = this.notServing();
    if (waiting !== undefined) status.waiting = waiting;
    return status;
  }
}

/** A node with an arbiter serves nothing while it does not lead or its lease ran out. */
export function notServingError(reason: string | undefined, role: string): Error {
  return txlogError('NOT_PRIMARY', `this node is ${role}${reason === undefined ? '' : `: ${reason}`}`);
}
