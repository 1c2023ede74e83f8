/**
 * The pair world's invariants checked after every step, phrased against the nodes' real state
 * (their status, their stores' logs) and what the world knows of the processes (alive, paused,
 * cut off). Each holds of correct code at every step, with a grace bound where a node can only
 * learn of a change by a timeout:
 *
 * - one-primary-per-epoch: no two live nodes are primaries of the same epoch.
 * - backup-log-differs: a backup of the primary's epoch holds, up to the LSN the primary counts
 *   as acknowledged by its backup (which bounds what it releases unless it is alone), exactly
 *   the primary's frames, byte for byte (checksums included); records added since the last
 *   comparison are compared at most a heartbeat interval or 32 records late.
 * - backup-in-sync-lacks: a backup that says it is in sync (so may take over) holds every commit
 *   its primary released.
 * - primary-in-sync-claim: a primary does not say its backup is in sync while the other node is
 *   dead, paused, cut off or not its backup, for longer than the heartbeat timeout allows.
 * - records-before-join: a backup takes no record before its primary answered its join.
 * - stale-release: a primary superseded by a newer one that is ready releases no record the
 *   newer one lacks (a late acknowledgement of what both hold may still release).
 * - stale-primary-stays: a primary steps down once a connection to a node that knows a newer
 *   epoch (its primary, or waiting after it) is open, within a handshake and a heartbeat; and
 *   once it can reach one at all, within the time a dial loop takes to try again.
 * - resource-limit, resource-owner, resource-memory: what each node holds in memory, from the
 *   same status (`resource-checks.ts`).
 */
import { replicationHooksOf } from '../../engine/replication-hooks.js';
import type { NodeStatus, TxlogNode } from '../../replication/node.js';
import { dialBackoffMsMax } from '../../replication/limits.js';
import { ResourceChecks, type ResourceSample, type ResourceWorld } from './resource-checks.js';

/**
 * What the pair world's configuration allows a node to hold: the bank's deposit writes one
 * stream; idle, a node holds a link per peer address it dials and per listen address its peer
 * dials (2 + 2), and as timers its tick and a dial loop's wait per peer address (a loop whose
 * link is open waits for its close instead).
 */
const pairResourceWorld: ResourceWorld = { streamsPerCommitMax: 1, peerLinksIdleMax: 4, timersIdleMax: 3 };

/** One live node incarnation as the world sees it at this step. */
export interface CheckedNode {
  /** Machine and incarnation, such as `a3`. */
  name: string;
  node: TxlogNode;
  paused: boolean;
  /** The epoch it said it was ready to serve in (its epoch record applied), if any. */
  readyEpoch: number | undefined;
  /** Timers its process set and are still to fire. */
  timersPending: number;
  /** Connection ends of its process open on the network. */
  connectionEndsOpen: number;
}

/** What the network says of the two nodes' links at this step. */
export interface PairLinks {
  /** No partition between the machines, and some listen address not cut. */
  reachable: boolean;
  /** Since when a connection between the two live incarnations has been open, if one is. */
  connectedSinceMs: number | undefined;
}

export interface PairTimings {
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  connectTimeoutMs: number;
  /** The longest one delivery can take on the simulated network. */
  latencyMaxMs: number;
}

type Fail = (invariant: string, message: string) => never;

/** How many newly acknowledged records may wait for the next comparison of the two logs. */
const recordsPerCheckMax = 32;

interface Seen {
  status: NodeStatus;
  nextLsn: number;
}

export class PairChecks {
  /** How long a primary may keep saying "in sync" after its backup stopped following it. */
  private readonly inSyncGraceMs: number;
  /** How long a stale primary connected to a newer one may stay primary. */
  private readonly connectedGraceMs: number;
  /** How long a stale primary that can reach a newer one may stay primary (links must form). */
  private readonly reachableGraceMs: number;
  /** The previous step's view of each incarnation. */
  private previous = new Map<string, Seen>();
  /** Up to which LSN the backup's log was found equal to the primary's, for which pair of incarnations. */
  private verified: { key: string; joined: boolean; upToLsn: number; lowestWhileJoiningLsn: number; atMs: number } | undefined;
  private readonly verifyEveryMs: number;
  private inSyncClaimSinceMs: number | undefined;
  /** A primary and a node of a newer epoch, neither paused, since; and reachable from each other since. */
  private superseded: { runningSinceMs: number; reachableSinceMs: number | undefined } | undefined;
  readonly resources: ResourceChecks;

  constructor(
    private readonly fail: Fail,
    timings: PairTimings,
  ) {
    this.resources = new ResourceChecks(fail, pairResourceWorld);
    this.verifyEveryMs = timings.heartbeatIntervalMs;
    // Silence is noticed on the next tick past the timeout; the last heartbeat may arrive late.
    this.inSyncGraceMs = timings.heartbeatTimeoutMs + 2 * timings.heartbeatIntervalMs + 2 * timings.latencyMaxMs;
    // From the open connection, the handshake (three messages) and each side's first peer state
    // take five deliveries at most, and an epoch learned later goes out with the next heartbeat:
    // with this world's timings 5 × 20.4 + 20 = 122 ms. The bound (161 ms) leaves the margin.
    this.connectedGraceMs = timings.connectTimeoutMs + timings.heartbeatIntervalMs + 2 * timings.latencyMaxMs;
    // A dial loop backs off up to its maximum before it tries again.
    this.reachableGraceMs = dialBackoffMsMax + this.connectedGraceMs;
  }

  afterStep(nowMs: number, nodes: CheckedNode[], links: PairLinks): void {
    const seen = new Map<string, Seen>();
    for (const checked of nodes) {
      seen.set(checked.name, { status: checked.node.status(), nextLsn: replicationHooksOf(checked.node.store).nextLsn });
    }
    this.resources.afterStep(nodes.map((checked) => resourceSample(checked, seen.get(checked.name)!.status)));
    for (const checked of nodes) this.checkJoin(checked, seen.get(checked.name)!);
    const [first, second] = nodes;
    if (first !== undefined && second !== undefined) this.checkPair(nowMs, first, second, seen, links);
    else this.checkLonePrimary(nowMs, nodes, seen);
    this.previous = seen;
  }

  private checkJoin(checked: CheckedNode, now: Seen): void {
    const before = this.previous.get(checked.name);
    if (before === undefined || checked.paused) return;
    // A backup is never writable: its log grows only by records it took from a primary.
    if (unjoined(before) && unjoined(now) && now.nextLsn > before.nextLsn) {
      this.fail('records-before-join', `${checked.name} took LSNs ${before.nextLsn}..${now.nextLsn - 1} before its join was answered`);
    }
  }

  private checkPair(nowMs: number, first: CheckedNode, second: CheckedNode, seen: Map<string, Seen>, links: PairLinks): void {
    const [one, two] = [seen.get(first.name)!.status, seen.get(second.name)!.status];
    if (one.role === 'primary' && two.role === 'primary' && one.epoch === two.epoch) {
      this.fail('one-primary-per-epoch', `${first.name} and ${second.name} are both primary with epoch ${one.epoch}`);
    }
    const [lower, higher] = one.epoch < two.epoch ? [first, second] : [second, first];
    const [lowerStatus, higherStatus] = [seen.get(lower.name)!.status, seen.get(higher.name)!.status];
    if (lowerStatus.role === 'primary' && higherStatus.epoch > lowerStatus.epoch) {
      if (higherStatus.role === 'primary') this.checkStaleRelease(lower, higher, seen);
      this.checkStalePrimaryStays(nowMs, lower, higher, links);
    } else {
      this.superseded = undefined;
    }
    const primary = one.role === 'primary' ? first : two.role === 'primary' ? second : undefined;
    if (primary === undefined) {
      this.inSyncClaimSinceMs = undefined;
      return;
    }
    const other = primary === first ? second : first;
    this.checkInSyncClaim(nowMs, primary, other, seen, links.reachable);
    const [primaryStatus, otherStatus] = [seen.get(primary.name)!.status, seen.get(other.name)!.status];
    if (otherStatus.role !== 'backup' || otherStatus.epoch !== primaryStatus.epoch) return;
    this.checkBackupLog(nowMs, primary, other, primaryStatus, otherStatus);
    // Whatever the primary released alone came before its `synced`; after it, only what was acknowledged.
    if (otherStatus.inSync && primaryStatus.appliedLsn > seen.get(other.name)!.nextLsn - 1) {
      this.fail('backup-in-sync-lacks', `${other.name} says it is in sync but holds LSNs up to ${seen.get(other.name)!.nextLsn - 1}; ${primary.name} released up to ${primaryStatus.appliedLsn}`);
    }
  }

  /** Only one node is up: whatever it claims has no backup behind it for long. */
  private checkLonePrimary(nowMs: number, nodes: CheckedNode[], seen: Map<string, Seen>): void {
    this.superseded = undefined;
    const primary = nodes.find((checked) => seen.get(checked.name)!.status.role === 'primary');
    if (primary === undefined) {
      this.inSyncClaimSinceMs = undefined;
      return;
    }
    this.checkInSyncClaim(nowMs, primary, undefined, seen, false);
  }

  /**
   * The backup's frames up to what the primary counts as acknowledged are the primary's: all of
   * them for a new pair of incarnations, then what was added, at most a heartbeat interval or
   * `recordsPerCheckMax` records late (a read every step made the simulator a third slower).
   * Only a join cuts a backup's log, after the LSN where the two agree; records that came during
   * the cut may be appended in the same step. While the join is under way the primary counts no
   * more than that LSN as acknowledged, so once it is answered everything above the lowest
   * bound seen meanwhile is compared again.
   */
  private checkBackupLog(nowMs: number, primary: CheckedNode, backup: CheckedNode, primaryStatus: NodeStatus, backupStatus: NodeStatus): void {
    const key = `${primary.name}/${backup.name}/${primaryStatus.epoch}`;
    const upTo = Math.min(primaryStatus.replicaAckedLsn, backupStatus.lastLsn, primaryStatus.lastLsn);
    let verified = this.verified;
    let due = verified?.key !== key;
    if (verified === undefined || due) {
      verified = this.verified = { key, joined: backupStatus.joined, upToLsn: 0, lowestWhileJoiningLsn: upTo, atMs: nowMs };
    } else if (verified.joined !== backupStatus.joined) {
      // A join starts (what was added is compared before the cut) or is answered.
      if (backupStatus.joined) verified.upToLsn = Math.min(verified.upToLsn, verified.lowestWhileJoiningLsn);
      else verified.lowestWhileJoiningLsn = upTo;
      verified.joined = backupStatus.joined;
      due = true;
    } else if (!backupStatus.joined) {
      verified.lowestWhileJoiningLsn = Math.min(verified.lowestWhileJoiningLsn, upTo);
    }
    if (!due && nowMs - verified.atMs < this.verifyEveryMs && upTo - verified.upToLsn < recordsPerCheckMax) return;
    verified.upToLsn = Math.min(verified.upToLsn, backupStatus.lastLsn);
    verified.atMs = nowMs;
    if (verified.upToLsn >= upTo) return;
    const mismatch = firstDifference(primary.node, backup.node, verified.upToLsn + 1, upTo);
    if (mismatch !== undefined) {
      this.fail('backup-log-differs', `${backup.name}'s record at LSN ${mismatch} is not ${primary.name}'s, which counts its backup as holding up to ${primaryStatus.replicaAckedLsn}`);
    }
    verified.upToLsn = upTo;
  }

  /**
   * A primary saying "in sync" must have a backup behind it: the other node alive, not paused,
   * reachable and its backup in the same epoch. A dead or silent one is noticed only by a
   * closed link or a heartbeat timeout, hence the grace; a paused primary claims nothing.
   */
  private checkInSyncClaim(nowMs: number, primary: CheckedNode, other: CheckedNode | undefined, seen: Map<string, Seen>, reachable: boolean): void {
    const status = seen.get(primary.name)!.status;
    const otherStatus = other === undefined ? undefined : seen.get(other.name)!.status;
    const following = other !== undefined && !other.paused && reachable && otherStatus?.role === 'backup' && otherStatus.epoch === status.epoch;
    if (primary.paused || !status.inSync || following) {
      this.inSyncClaimSinceMs = undefined;
      return;
    }
    this.inSyncClaimSinceMs ??= nowMs;
    if (nowMs - this.inSyncClaimSinceMs > this.inSyncGraceMs) {
      const what = other === undefined ? 'down' : other.paused ? 'paused' : !reachable ? 'cut off' : `${otherStatus!.role} in epoch ${otherStatus!.epoch}`;
      this.fail('primary-in-sync-claim', `${primary.name} has said its backup is in sync for ${Math.round(nowMs - this.inSyncClaimSinceMs)} ms while the other node is ${what}`);
    }
  }

  private checkStaleRelease(stale: CheckedNode, newer: CheckedNode, seen: Map<string, Seen>): void {
    const newerStatus = seen.get(newer.name)!.status;
    if (newer.readyEpoch !== newerStatus.epoch) return;
    const before = this.previous.get(stale.name);
    const released = seen.get(stale.name)!.status.appliedLsn;
    if (before === undefined || before.status.role !== 'primary' || released <= before.status.appliedLsn) return;
    const mismatch = firstDifference(stale.node, newer.node, before.status.appliedLsn + 1, released);
    if (mismatch !== undefined) {
      this.fail('stale-release', `${stale.name} (epoch ${seen.get(stale.name)!.status.epoch}) released LSN ${mismatch}, which ${newer.name}, ready in epoch ${newerStatus.epoch}, does not hold`);
    }
  }

  /** `newer` knows a newer epoch (as primary, or waiting after one): `stale` must learn it and step down. */
  private checkStalePrimaryStays(nowMs: number, stale: CheckedNode, newer: CheckedNode, links: PairLinks): void {
    if (stale.paused || newer.paused) {
      this.superseded = undefined;
      return;
    }
    const superseded = (this.superseded ??= { runningSinceMs: nowMs, reachableSinceMs: undefined });
    superseded.reachableSinceMs = links.reachable ? (superseded.reachableSinceMs ?? nowMs) : undefined;
    const stays = (sinceMs: number | undefined, graceMs: number, how: string): void => {
      const forMs = sinceMs === undefined ? 0 : nowMs - Math.max(sinceMs, superseded.runningSinceMs);
      if (forMs <= graceMs) return;
      this.fail('stale-primary-stays', `${stale.name} is still primary ${Math.round(forMs)} ms after it ${how} ${newer.name}, which knows the newer epoch ${newer.node.status().epoch}`);
    };
    stays(links.connectedSinceMs, this.connectedGraceMs, 'was connected to');
    stays(superseded.reachableSinceMs, this.reachableGraceMs, 'could reach');
  }
}

/** A node as the resource checks see it (its status read once for all the checks of a step). */
export function resourceSample(checked: CheckedNode, status: NodeStatus = checked.node.status()): ResourceSample {
  return { name: checked.name, usage: status.resources, timersPending: checked.timersPending, connectionEndsOpen: checked.connectionEndsOpen, directCalls: 0 };
}

/** Both nodes up, a primary in sync with its backup, and both logs and states at one LSN. */
export function pairSettled(a: TxlogNode | undefined, b: TxlogNode | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  const [sa, sb] = [a.status(), b.status()];
  const primary = sa.role === 'primary' ? sa : sb.role === 'primary' ? sb : undefined;
  const backup = primary === sa ? sb : sa;
  return primary !== undefined && primary.inSync && !primary.alone && backup.appliedLsn === primary.appliedLsn && backup.lastLsn === primary.lastLsn && primary.lastLsn === primary.appliedLsn;
}

function unjoined(seen: Seen): boolean {
  return seen.status.role === 'backup' && !seen.status.joined;
}

/** The first LSN in `fromLsn..toLsn` where `other`'s log lacks `node`'s frame, byte for byte. */
function firstDifference(node: TxlogNode, other: TxlogNode, fromLsn: number, toLsn: number): number | undefined {
  const theirs = replicationHooksOf(other.store).readRecords(fromLsn, toLsn)[Symbol.iterator]();
  for (const record of replicationHooksOf(node.store).readRecords(fromLsn, toLsn)) {
    const their = theirs.next();
    if (their.done === true || their.value.lsn !== record.lsn || !their.value.frame.equals(record.frame)) return record.lsn;
  }
  return undefined;
}
