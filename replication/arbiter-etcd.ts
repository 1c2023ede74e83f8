/**
 * The `Arbiter` on etcd, through the `etcd3` package's raw gRPC clients (KV transactions and
 * leases). Its election helper is not used: it has a report of two leaders after an etcd restart
 * (microsoft/etcd3 #158), and the rules here need control of when a renewal was sent anyway.
 *
 * Keys under the cluster's prefix: `leader` (`{nodeId, epoch}` bound to the leader's lease),
 * `epoch` (decimal, only ever raised, in the same transaction that takes `leader`) and `in-sync`
 * (a JSON array of node ids). Every change is a transaction that compares modification
 * revisions, so two nodes racing can never both win.
 */
import type { ICompare, IKeyValue, IRequestOp } from 'etcd3';
import { assert, assertionFailed } from '../wal/assert.js';
import { txlogError } from '../wal/errors.js';
import type { TimerHandle } from '../wal/platform.js';
import {
  inSyncMembersMax,
  type Arbiter,
  type ArbiterStatus,
  type CampaignOutcome,
  type CampaignRequest,
  type InSyncSet,
  type InSyncUpdate,
  type LeaderKey,
  type ResolvedArbiterOptions,
} from './arbiter.js';
import { EtcdRequests } from './arbiter-etcd-requests.js';
import { decodeEpoch, decodeInSync, decodeLeader, revisionOf } from './arbiter-values.js';

/** Rounds of read-then-compare-and-swap a campaign makes before it reports the key as busy. */
const campaignAttemptsMax = 3;

/** What one consistent read of the three keys found (all at one etcd revision). */
interface Snapshot {
  leader: (LeaderKey & { leaseId: string; revision: number }) | undefined;
  epoch: { value: number; revision: number };
  inSync: InSyncSet;
}

/** Leadership as this arbiter holds it: dropped when etcd says the lease is gone. */
interface Holding {
  key: LeaderKey;
  leaseId: string;
  /** The leader key's modification revision: `setInSync` requires it unchanged. */
  leaderRevision: number;
  validUntilMs: number;
  renewal: TimerHandle | undefined;
}

export class EtcdArbiter implements Arbiter {
  private holding: Holding | undefined;
  private readonly keys: { leader: Buffer; epoch: Buffer; inSync: Buffer };

  private constructor(
    private readonly options: ResolvedArbiterOptions,
    private readonly etcd: EtcdRequests,
  ) {
    this.keys = {
      leader: Buffer.from(`${options.prefix}/leader`),
      epoch: Buffer.from(`${options.prefix}/epoch`),
      inSync: Buffer.from(`${options.prefix}/in-sync`),
    };
  }


  static async open(options: ResolvedArbiterOptions): Promise<EtcdArbiter> {
    return new EtcdArbiter(options, await EtcdRequests.open(options));
  }

  async campaign(request: CampaignRequest): Promise<CampaignOutcome> {
    assert(this.holding === undefined, 'campaign while already leading');
    assert(typeof request.nodeId === 'string' && request.nodeId !== '', 'campaign needs a node id');
    assert(Number.isSafeInteger(request.epochAbove) && request.epochAbove >= 0, 'epochAbove must be a whole number');
    for (let attempt = 1; attempt <= campaignAttemptsMax; attempt++) {
      const snapshot = await this.readSnapshot();
      if (snapshot.leader !== undefined && (await this.etcd.leaseAlive(snapshot.leader.leaseId))) {
        return { outcome: 'held', holder: { nodeId: snapshot.leader.nodeId, epoch: snapshot.leader.epoch } };
      }
      const mayLead = snapshot.inSync.revision === 0 ? request.bootstrap : snapshot.inSync.members.includes(request.nodeId);
      if (!mayLead) return { outcome: 'not-in-sync', inSync: snapshot.inSync };
      const won = await this.takeLeaderKey(request, snapshot);
      if (won !== undefined) return won;
    }
    throw txlogError('BUSY', `the leader key under ${this.options.prefix} kept changing during ${campaignAttemptsMax} campaign rounds`);
  }

  leaseValidUntilMs(): number {
    return this.holding?.validUntilMs ?? -Infinity;
  }

  leadership(): LeaderKey | undefined {
    return this.holding?.key;
  }

  async resign(): Promise<void> {
    const holding = this.holding;
    if (holding === undefined) return;
    this.drop(holding);
    // Revoking the lease deletes the leader key with it, atomically; if etcd cannot be reached
    // the lease simply runs out, and nothing acknowledges meanwhile (the holding is gone).
    await this.etcd.revokeQuietly(holding.leaseId);
  }

  async readInSync(): Promise<InSyncSet> {
    const response = await this.etcd.request('read in-sync', (callOptions) => this.etcd.client.kv.range({ key: this.keys.inSync }, callOptions));
    return decodeInSync(response.kvs[0]);
  }

  async setInSync(members: readonly string[], expectedRevision: number): Promise<InSyncUpdate> {
    if (members.length > inSyncMembersMax) assertionFailed(`the in-sync set holds at most ${inSyncMembersMax} members`);
    assert(members.every((member) => typeof member === 'string' && member !== ''), 'in-sync members are node ids');
    assert(new Set(members).size === members.length, 'in-sync members are distinct');
    assert(Number.isSafeInteger(expectedRevision) && expectedRevision >= 0, 'expectedRevision is a revision');
    const holding = this.holding;
    if (holding === undefined) return { ok: false, reason: 'not-leader' };
    const value = Buffer.from(JSON.stringify([...members].sort()));
    const response = await this.etcd.request('set in-sync', (callOptions) =>
      this.etcd.client.kv.txn(
        {
          compare: [this.modifiedAt(this.keys.inSync, expectedRevision), this.modifiedAt(this.keys.leader, holding.leaderRevision)],
          success: [{ request_put: { key: this.keys.inSync, value } }],
          failure: [{ request_range: { key: this.keys.leader } }],
        },
        callOptions,
      ),
    );
    if (response.succeeded) return { ok: true, revision: revisionOf(response.header.revision) };
    const leader = response.responses[0]?.response_range.kvs[0];
    const stillOurs = leader !== undefined && revisionOf(leader.mod_revision) === holding.leaderRevision;
    return { ok: false, reason: stillOurs ? 'stale-revision' : 'not-leader' };
  }

  async status(): Promise<ArbiterStatus> {
    const now = this.options.clock.monotonicMs();
    const self: ArbiterStatus['self'] = {
      leading: this.holding !== undefined,
      leaseValidForMs: Math.max(0, this.leaseValidUntilMs() - now),
    };
    if (this.holding !== undefined) self.epoch = this.holding.key.epoch;
    try {
      const snapshot = await this.readSnapshot();
      const status: ArbiterStatus = { reachable: true, inSync: snapshot.inSync, epoch: snapshot.epoch.value, self };
      if (snapshot.leader !== undefined) {
        const remainingMs = await this.etcd.leaseRemainingMs(snapshot.leader.leaseId);
        status.leader = { nodeId: snapshot.leader.nodeId, epoch: snapshot.leader.epoch, leaseRemainingMs: remainingMs };
      }
      return status;
    } catch (error) {
      return { reachable: false, error: error instanceof Error ? error.message : String(error), self };
    }
  }

  close(): void {
    if (this.holding !== undefined) this.drop(this.holding);
    this.etcd.close();
  }

  /** Grants a lease and takes the leader key with it, raising the epoch; undefined: lost the race. */
  private async takeLeaderKey(request: CampaignRequest, snapshot: Snapshot): Promise<CampaignOutcome | undefined> {
    const grantSentMs = this.options.clock.monotonicMs();
    const { leaseId, grantedTtlMs } = await this.etcd.grantLease(this.options.leaseTtlMs);
    const key: LeaderKey = { nodeId: request.nodeId, epoch: Math.max(snapshot.epoch.value, request.epochAbove) + 1 };
    let succeeded: boolean;
    let revision: number;
    try {
      const response = await this.etcd.request('campaign', (callOptions) =>
        this.etcd.client.kv.txn(
          {
            compare: [
              this.modifiedAt(this.keys.leader, snapshot.leader?.revision ?? 0),
              this.modifiedAt(this.keys.epoch, snapshot.epoch.revision),
              this.modifiedAt(this.keys.inSync, snapshot.inSync.revision),
            ],
            success: [
              { request_put: { key: this.keys.leader, value: Buffer.from(JSON.stringify(key)), lease: leaseId } },
              { request_put: { key: this.keys.epoch, value: Buffer.from(String(key.epoch)) } },
            ],
          },
          callOptions,
        ),
      );
      succeeded = response.succeeded;
      revision = revisionOf(response.header.revision);
    } catch (error) {
      // The transaction may have landed without our hearing it: revoking the lease releases
      // the key in that case too (the epoch stays raised, which costs nothing).
      await this.etcd.revokeQuietly(leaseId);
      throw error;
    }
    // After the await: the arbiter may have been closed meanwhile.
    if (!succeeded || this.etcd.isClosed || !(grantedTtlMs > 0)) {
      await this.etcd.revokeQuietly(leaseId);
      if (this.etcd.isClosed) throw txlogError('CLOSED', 'the arbiter was closed during a campaign');
      return undefined;
    }
    const holding: Holding = {
      key,
      leaseId,
      leaderRevision: revision,
      validUntilMs: grantSentMs + grantedTtlMs - this.options.marginMs,
      renewal: undefined,
    };
    this.holding = holding;
    this.scheduleRenewal(holding);
    return { outcome: 'leader', epoch: key.epoch, leaseValidUntilMs: holding.validUntilMs };
  }

  private scheduleRenewal(holding: Holding): void {
    holding.renewal = this.options.clock.setTimeout(() => void this.renew(holding), this.options.renewIntervalMs);
  }

  /**
   * One renewal. The validity counts from when the request was SENT: etcd restarts the TTL when
   * it receives it, which is later, so ours ends first whatever the delays (a process frozen
   * with the answer in flight included).
   */
  private async renew(holding: Holding): Promise<void> {
    holding.renewal = undefined;
    if (this.holding !== holding) return;
    const sentMs = this.options.clock.monotonicMs();
    let ttlSeconds: number;
    try {
      ttlSeconds = await this.etcd.keepAliveOnce(holding.leaseId);
    } catch {
      // Unreachable or slow: the validity runs down by itself, and we keep trying, because
      // the lease may well outlive the outage (etcd extends leases when it elects a leader).
      if (this.holding === holding) this.scheduleRenewal(holding);
      return;
    }
    if (this.holding !== holding) return;
    if (!(ttlSeconds > 0)) {
      this.drop(holding);
      this.options.onLeadershipLost(`etcd says lease ${holding.leaseId} has expired`);
      return;
    }
    holding.validUntilMs = Math.max(holding.validUntilMs, sentMs + ttlSeconds * 1000 - this.options.marginMs);
    this.scheduleRenewal(holding);
    this.options.onLeaseRenewed(holding.validUntilMs);
  }

  private drop(holding: Holding): void {
    assert(this.holding === holding, 'dropping a leadership not held');
    holding.renewal?.cancel();
    holding.renewal = undefined;
    this.holding = undefined;
  }

  /** The three keys in one transaction, so they are read at one revision. */
  private async readSnapshot(): Promise<Snapshot> {
    const ranges: IRequestOp[] = [this.keys.leader, this.keys.epoch, this.keys.inSync].map((key) => ({ request_range: { key } }));
    const response = await this.etcd.request('read', (callOptions) => this.etcd.client.kv.txn({ success: ranges }, callOptions));
    const found = (index: number): IKeyValue | undefined => response.responses[index]?.response_range.kvs[0];
    return { leader: decodeLeader(found(0)), epoch: decodeEpoch(found(1)), inSync: decodeInSync(found(2)) };
  }

  private modifiedAt(key: Buffer, revision: number): ICompare {
    // An absent key compares with modification revision 0, so 0 means "still absent".
    return { key, target: 'Mod', result: 'Equal', mod_revision: revision };
  }
}
