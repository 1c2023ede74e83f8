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
import type { Etcd3, ICompare, IKeyValue, IOptions, IRequestOp } from 'etcd3';
import { assert } from '../wal/assert.js';
import { TxlogError, txlogError } from '../wal/errors.js';
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
import { decodeEpoch, decodeInSync, decodeLeader, revisionOf } from './arbiter-values.js';

/** Rounds of read-then-compare-and-swap a campaign makes before it reports the key as busy. */
const campaignAttemptsMax = 3;

type Policy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

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

/**
 * etcd3 calls only `execute` on its fault-handling policies (connection-pool.js). Its defaults
 * retry and open a circuit breaker for 5 s after failures, which would hide an etcd that came
 * back; our own loops retry and every request is bounded, so one attempt per endpoint suffices.
 */
function attemptsPolicy(attempts: number, isRecoverable: (error: Error) => boolean): Policy {
  const policy = {
    async execute(run: () => Promise<unknown>): Promise<unknown> {
      for (let attempt = 1; ; attempt++) {
        try {
          return await run();
        } catch (error) {
          if (attempt >= attempts || !(error instanceof Error) || !isRecoverable(error)) throw error;
        }
      }
    },
  };
  return policy as unknown as Policy;
}

export class EtcdArbiter implements Arbiter {
  private holding: Holding | undefined;
  private closed = false;
  private readonly keys: { leader: Buffer; epoch: Buffer; inSync: Buffer };

  private constructor(
    private readonly options: ResolvedArbiterOptions,
    private readonly client: Etcd3,
  ) {
    this.keys = {
      leader: Buffer.from(`${options.prefix}/leader`),
      epoch: Buffer.from(`${options.prefix}/epoch`),
      inSync: Buffer.from(`${options.prefix}/in-sync`),
    };
  }

  static async open(options: ResolvedArbiterOptions): Promise<EtcdArbiter> {
    const etcd = await import('etcd3');
    const client = new etcd.Etcd3({
      hosts: options.endpoints.map((endpoint) => `http://${endpoint}`),
      dialTimeout: options.requestTimeoutMs,
      faultHandling: {
        host: () => attemptsPolicy(1, etcd.isRecoverableError),
        global: attemptsPolicy(options.endpoints.length, etcd.isRecoverableError),
      },
      // gRPC's reconnect backoff grows to 120 s by default; an etcd that restarts must be found
      // again within a renewal or two.
      grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 200, 'grpc.max_reconnect_backoff_ms': options.requestTimeoutMs },
    });
    return new EtcdArbiter(options, client);
  }

  async campaign(request: CampaignRequest): Promise<CampaignOutcome> {
    assert(this.holding === undefined, 'campaign while already leading');
    assert(typeof request.nodeId === 'string' && request.nodeId !== '', 'campaign needs a node id');
    assert(Number.isSafeInteger(request.epochAbove) && request.epochAbove >= 0, 'epochAbove must be a whole number');
    for (let attempt = 1; attempt <= campaignAttemptsMax; attempt++) {
      const snapshot = await this.readSnapshot();
      if (snapshot.leader !== undefined && (await this.leaseAlive(snapshot.leader.leaseId))) {
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
    await this.revokeQuietly(holding.leaseId);
  }

  async readInSync(): Promise<InSyncSet> {
    const response = await this.request('read in-sync', (callOptions) => this.client.kv.range({ key: this.keys.inSync }, callOptions));
    return decodeInSync(response.kvs[0]);
  }

  async setInSync(members: readonly string[], expectedRevision: number): Promise<InSyncUpdate> {
    assert(members.length <= inSyncMembersMax, `the in-sync set holds at most ${inSyncMembersMax} members`);
    assert(members.every((member) => typeof member === 'string' && member !== ''), 'in-sync members are node ids');
    assert(new Set(members).size === members.length, 'in-sync members are distinct');
    assert(Number.isSafeInteger(expectedRevision) && expectedRevision >= 0, 'expectedRevision is a revision');
    const holding = this.holding;
    if (holding === undefined) return { ok: false, reason: 'not-leader' };
    const value = Buffer.from(JSON.stringify([...members].sort()));
    const response = await this.request('set in-sync', (callOptions) =>
      this.client.kv.txn(
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
        const remainingMs = await this.leaseRemainingMs(snapshot.leader.leaseId);
        status.leader = { nodeId: snapshot.leader.nodeId, epoch: snapshot.leader.epoch, leaseRemainingMs: remainingMs };
      }
      return status;
    } catch (error) {
      return { reachable: false, error: error instanceof Error ? error.message : String(error), self };
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.holding !== undefined) this.drop(this.holding);
    this.client.close();
  }

  /** Grants a lease and takes the leader key with it, raising the epoch; undefined: lost the race. */
  private async takeLeaderKey(request: CampaignRequest, snapshot: Snapshot): Promise<CampaignOutcome | undefined> {
    const grantSentMs = this.options.clock.monotonicMs();
    const grant = await this.request('lease grant', (callOptions) =>
      this.client.leaseClient.leaseGrant({ TTL: this.options.leaseTtlMs / 1000 }, callOptions),
    );
    const grantedTtlMs = Number(grant.TTL) * 1000;
    const key: LeaderKey = { nodeId: request.nodeId, epoch: Math.max(snapshot.epoch.value, request.epochAbove) + 1 };
    let succeeded: boolean;
    let revision: number;
    try {
      const response = await this.request('campaign', (callOptions) =>
        this.client.kv.txn(
          {
            compare: [
              this.modifiedAt(this.keys.leader, snapshot.leader?.revision ?? 0),
              this.modifiedAt(this.keys.epoch, snapshot.epoch.revision),
              this.modifiedAt(this.keys.inSync, snapshot.inSync.revision),
            ],
            success: [
              { request_put: { key: this.keys.leader, value: Buffer.from(JSON.stringify(key)), lease: grant.ID } },
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
      await this.revokeQuietly(grant.ID);
      throw error;
    }
    if (!succeeded || this.closed || !(grantedTtlMs > 0)) {
      await this.revokeQuietly(grant.ID);
      if (this.closed) throw txlogError('CLOSED', 'the arbiter was closed during a campaign');
      return undefined;
    }
    const holding: Holding = {
      key,
      leaseId: grant.ID,
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
      ttlSeconds = await this.keepAliveOnce(holding.leaseId);
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
  }

  private drop(holding: Holding): void {
    assert(this.holding === holding, 'dropping a leadership not held');
    holding.renewal?.cancel();
    holding.renewal = undefined;
    this.holding = undefined;
  }

  /** Sends one keep-alive on its own stream and returns the TTL etcd answered (0: lease gone). */
  private keepAliveOnce(leaseId: string): Promise<number> {
    return this.request('lease renewal', async (callOptions) => {
      const stream = await this.client.leaseClient.leaseKeepAlive(callOptions);
      try {
        return await new Promise<number>((resolve, reject) => {
          stream.on('data', (response) => resolve(Number(response.TTL)));
          stream.on('error', reject);
          stream.on('end', () => reject(new Error('the keep-alive stream ended without an answer')));
          stream.write({ ID: leaseId });
        });
      } finally {
        stream.end();
      }
    });
  }

  private async leaseAlive(leaseId: string): Promise<boolean> {
    // A leader key without a lease was written by hand: it never expires, so it stays held.
    if (leaseId === '0') return true;
    return (await this.leaseRemainingMs(leaseId)) > 0;
  }

  /** What etcd says is left of a lease, in whole seconds as it counts them; 0: gone. */
  private async leaseRemainingMs(leaseId: string): Promise<number> {
    const response = await this.request('lease lookup', (callOptions) => this.client.leaseClient.leaseTimeToLive({ ID: leaseId }, callOptions));
    return Math.max(0, Number(response.TTL) * 1000);
  }

  private async revokeQuietly(leaseId: string): Promise<void> {
    try {
      await this.request('lease revoke', (callOptions) => this.client.leaseClient.leaseRevoke({ ID: leaseId }, callOptions));
    } catch {
      // Unreachable: the lease runs out by itself within its TTL.
    }
  }

  /** The three keys in one transaction, so they are read at one revision. */
  private async readSnapshot(): Promise<Snapshot> {
    const ranges: IRequestOp[] = [this.keys.leader, this.keys.epoch, this.keys.inSync].map((key) => ({ request_range: { key } }));
    const response = await this.request('read', (callOptions) => this.client.kv.txn({ success: ranges }, callOptions));
    const found = (index: number): IKeyValue | undefined => response.responses[index]?.response_range.kvs[0];
    return { leader: decodeLeader(found(0)), epoch: decodeEpoch(found(1)), inSync: decodeInSync(found(2)) };
  }

  private modifiedAt(key: Buffer, revision: number): ICompare {
    // An absent key compares with modification revision 0, so 0 means "still absent".
    return { key, target: 'Mod', result: 'Equal', mod_revision: revision };
  }

  /**
   * Runs one etcd call bounded by `requestTimeoutMs` on our clock (and by a gRPC deadline, so
   * etcd drops it too). Every failure becomes a retryable `TIMEOUT` naming what was asked.
   */
  private async request<T>(what: string, operation: (callOptions: { deadline: number }) => Promise<T>): Promise<T> {
    if (this.closed) throw txlogError('CLOSED', 'the arbiter is closed');
    const timeoutMs = this.options.requestTimeoutMs;
    let timer: TimerHandle | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = this.options.clock.setTimeout(
        () => reject(txlogError('TIMEOUT', `etcd did not answer (${what}) within ${timeoutMs} ms`, { endpoints: this.options.endpoints })),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([operation({ deadline: this.options.clock.nowMs() + timeoutMs }), timeout]);
    } catch (error) {
      if (error instanceof TxlogError) throw error;
      const message = error instanceof Error ? error.message : String(error);
      throw txlogError('TIMEOUT', `etcd failed (${what}): ${message}`, { endpoints: this.options.endpoints }, error);
    } finally {
      timer?.cancel();
    }
  }
}
