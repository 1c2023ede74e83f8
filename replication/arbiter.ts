/**
 * The arbiter: an external consensus service (etcd) that a pair consults to decide who leads,
 * which nodes may lead, and when a primary may go on alone (issue 12). This file holds what a
 * node sees: the `Arbiter` interface, its options, and the `etcd://` URL. The etcd
 * implementation lives in `arbiter-etcd.ts` and is reached only through `openArbiter`, which
 * imports the `etcd3` package on demand, so an embedded store or a plain pair loads nothing more.
 *
 * How a node must use an arbiter is written down in ARCHITECTURE.md, "Arbiter".
 */
import { assert } from '../wal/assert.js';
import { txlogError } from '../wal/errors.js';
import { nodeClock, type Clock } from '../wal/platform.js';

/** What `campaign` asks for. */
export interface CampaignRequest {
  /** This node's id; stored in the leader key and matched against the in-sync set. */
  nodeId: string;
  /**
   * The highest epoch in this node's log. The new epoch is above both it and etcd's, so a
   * cluster that adopts an arbiter late (or an etcd that was wiped) never reuses an epoch.
   */
  epochAbove: number;
  /**
   * May this node lead when etcd has no in-sync set yet (a new cluster)? A node passes true only
   * when it cannot be missing an acknowledged commit: both logs are fresh, or an operator said
   * so. Once a set exists it alone decides.
   */
  bootstrap: boolean;
}

/** What `campaign` found. Only `leader` starts the lease renewals. */
export type CampaignOutcome =
  | { outcome: 'leader'; epoch: number; leaseValidUntilMs: number }
  /** Another holder's lease is alive (possibly this node's own, from before a restart). */
  | { outcome: 'held'; holder: LeaderKey }
  /** The in-sync set exists (or is absent and `bootstrap` was false) and lacks this node. */
  | { outcome: 'not-in-sync'; inSync: InSyncSet };

/** The leader key's content: who holds it and the epoch it took with it. */
export interface LeaderKey {
  nodeId: string;
  epoch: number;
}

/** The nodes that hold every acknowledged commit, and the etcd revision it was read at. */
export interface InSyncSet {
  /** Sorted node ids; empty when the set is absent. */
  members: string[];
  /** The key's modification revision: the compare-and-swap token. 0: the set is absent. */
  revision: number;
}

/** The result of `setInSync`: a lost compare-and-swap is an answer, not an error. */
export type InSyncUpdate =
  | { ok: true; revision: number }
  /** The set moved since `expectedRevision`, or this node no longer holds the leader key. */
  | { ok: false; reason: 'stale-revision' | 'not-leader' };

export interface ArbiterStatus {
  /** Did etcd answer the status queries within `requestTimeoutMs`? */
  reachable: boolean;
  /** Why not, when it did not. */
  error?: string;
  /** The leader key's holder and what is left of its lease by etcd's count; absent: no leader. */
  leader?: LeaderKey & { leaseRemainingMs: number };
  inSync?: InSyncSet;
  /** The epoch etcd holds (0: none yet). */
  epoch?: number;
  /** This arbiter's own view: does it lead, and how long its lease is certainly valid. */
  self: { leading: boolean; epoch?: number; leaseValidForMs: number };
}

/**
 * A node's handle on the arbiter. Every method is bounded by `requestTimeoutMs`; an etcd that
 * cannot be reached rejects with a retryable `TIMEOUT` (`campaign`, `readInSync`, `setInSync`) or
 * shows in `status` (which never rejects). Renewals run in the background and never reject.
 */
export interface Arbiter {
  /**
   * Takes the leader key under a new lease if it is free (absent, or its holder's lease gone)
   * and this node may lead, raising the cluster epoch in the same etcd transaction.
   */
  campaign(request: CampaignRequest): Promise<CampaignOutcome>;
  /**
   * Monotonic time (`Clock.monotonicMs`) until which this node's lease is certainly valid:
   * the send time of the last answered renewal + the TTL etcd granted - `marginMs`.
   * `-Infinity` when not leading. Acknowledge only while `monotonicMs() < leaseValidUntilMs()`.
   */
  leaseValidUntilMs(): number;
  /** The leadership this arbiter holds, until etcd says its lease is gone or it resigns. */
  leadership(): LeaderKey | undefined;
  /** Stops renewing, deletes the leader key if still ours, revokes the lease. Never rejects. */
  resign(): Promise<void>;
  readInSync(): Promise<InSyncSet>;
  /**
   * Replaces the in-sync set if it is still at `expectedRevision` and this node still holds the
   * leader key (both compared in one etcd transaction).
   */
  setInSync(members: readonly string[], expectedRevision: number): Promise<InSyncUpdate>;
  status(): Promise<ArbiterStatus>;
  /** Stops renewing and closes the connection; the lease, if any, expires on its own. */
  close(): void;
}

export interface ArbiterOptions {
  /** etcd client endpoints, `host:port` (plain HTTP/2). */
  endpoints: string[];
  /** Key prefix of this cluster, e.g. `/txlog/bank`; keys are PREFIX/leader, /epoch, /in-sync. */
  prefix: string;
  /**
   * The leader lease's time to live, a whole number of seconds (etcd counts in seconds; it may
   * raise a TTL below its minimum, and the granted TTL is the one used). Longer: fewer
   * renewals and more tolerance of a slow etcd, but a dead primary is replaced later.
   * @default 10000 (ms)
   */
  leaseTtlMs?: number;
  /** How often the leader renews its lease. @default 2000 (ms) */
  renewIntervalMs?: number;
  /**
   * Taken off every validity: covers the pause between checking the lease and a client hearing
   * the answer, and clock rate differences with etcd. Larger: safer, less time leading per
   * renewal. @default 2000 (ms)
   */
  marginMs?: number;
  /** Limit on every etcd request (and on connecting). @default 2000 (ms) */
  requestTimeoutMs?: number;
  /** Called once when etcd says the lease is gone (this node no longer leads). */
  onLeadershipLost?: (reason: string) => void;
  /**
   * Called after each answered renewal with the new `leaseValidUntilMs`: a primary that held
   * releases while its validity had run out releases them again from here.
   */
  onLeaseRenewed?: (leaseValidUntilMs: number) => void;
  clock?: Clock;
}

export interface ResolvedArbiterOptions {
  endpoints: string[];
  prefix: string;
  leaseTtlMs: number;
  renewIntervalMs: number;
  marginMs: number;
  requestTimeoutMs: number;
  onLeadershipLost: (reason: string) => void;
  onLeaseRenewed: (leaseValidUntilMs: number) => void;
  clock: Clock;
}

export const arbiterDefaults = {
  leaseTtlMs: 10_000,
  renewIntervalMs: 2_000,
  marginMs: 2_000,
  requestTimeoutMs: 2_000,
} as const;

/** etcd endpoints in one URL; more is a misconfiguration, not a cluster. */
export const arbiterEndpointsMax = 16;
/** Longest key prefix. */
export const arbiterPrefixBytesMax = 256;
/** Members of the in-sync set (a pair has two; room for more nodes later). */
export const inSyncMembersMax = 16;

/**
 * The relations that keep a leader leading: one renewal may take its full timeout and still
 * land before the validity of the previous one ends.
 */
function checkTimingRelations(options: Pick<ResolvedArbiterOptions, 'leaseTtlMs' | 'renewIntervalMs' | 'marginMs' | 'requestTimeoutMs'>): string | undefined {
  const { leaseTtlMs, renewIntervalMs, marginMs, requestTimeoutMs } = options;
  if (leaseTtlMs % 1000 !== 0 || leaseTtlMs < 2000) return 'leaseTtlMs must be a whole number of seconds, at least 2000';
  if (marginMs >= leaseTtlMs) return 'marginMs must be shorter than leaseTtlMs';
  if (renewIntervalMs + requestTimeoutMs >= leaseTtlMs - marginMs) {
    return 'renewIntervalMs + requestTimeoutMs must be shorter than leaseTtlMs - marginMs (a renewal must land before the previous validity ends)';
  }
  return undefined;
}

assert(checkTimingRelations(arbiterDefaults) === undefined, 'the arbiter defaults break their own relations');

export function resolveArbiterOptions(options: ArbiterOptions): ResolvedArbiterOptions {
  if (!Array.isArray(options.endpoints) || options.endpoints.length === 0 || options.endpoints.length > arbiterEndpointsMax) {
    throw txlogError('BAD_REQUEST', `the arbiter needs 1 to ${arbiterEndpointsMax} etcd endpoints`);
  }
  for (const endpoint of options.endpoints) parseEndpoint(endpoint, (message) => txlogError('BAD_REQUEST', message));
  checkPrefix(options.prefix, (message) => txlogError('BAD_REQUEST', message));
  const resolved: ResolvedArbiterOptions = {
    endpoints: [...options.endpoints],
    prefix: options.prefix,
    leaseTtlMs: options.leaseTtlMs ?? arbiterDefaults.leaseTtlMs,
    renewIntervalMs: options.renewIntervalMs ?? arbiterDefaults.renewIntervalMs,
    marginMs: options.marginMs ?? arbiterDefaults.marginMs,
    requestTimeoutMs: options.requestTimeoutMs ?? arbiterDefaults.requestTimeoutMs,
    onLeadershipLost: options.onLeadershipLost ?? (() => {}),
    onLeaseRenewed: options.onLeaseRenewed ?? (() => {}),
    clock: options.clock ?? nodeClock,
  };
  for (const key of ['leaseTtlMs', 'renewIntervalMs', 'marginMs', 'requestTimeoutMs'] as const) {
    const value = resolved[key];
    if (!Number.isSafeInteger(value) || value < 1) throw txlogError('BAD_REQUEST', `${key} must be a positive integer`);
  }
  const broken = checkTimingRelations(resolved);
  if (broken !== undefined) throw txlogError('BAD_REQUEST', broken);
  return resolved;
}

/** What an `etcd://` URL names. */
export interface ArbiterUrl {
  endpoints: string[];
  prefix: string;
}

/**
 * Parses `etcd://HOST:PORT[,HOST:PORT]/PREFIX` (an IPv6 host in brackets). Anything else, or a
 * prefix that is not path segments of `[A-Za-z0-9._-]`, is a `USAGE` error: the operator typed
 * it (`txlog serve --arbiter`), and the fix is a different command line.
 */
export function parseArbiterUrl(url: string): ArbiterUrl {
  const usage = (message: string) => txlogError('USAGE', `--arbiter ${JSON.stringify(url)}: ${message}; expected etcd://HOST:PORT[,HOST:PORT]/PREFIX`);
  const scheme = 'etcd://';
  if (typeof url !== 'string' || !url.startsWith(scheme)) throw usage('not an etcd:// URL');
  const rest = url.slice(scheme.length);
  const slash = rest.indexOf('/');
  if (slash === -1) throw usage('no /PREFIX');
  const hosts = rest.slice(0, slash);
  const prefix = rest.slice(slash);
  if (hosts === '') throw usage('no HOST:PORT');
  const endpoints = hosts.split(',');
  if (endpoints.length > arbiterEndpointsMax) throw usage(`more than ${arbiterEndpointsMax} endpoints`);
  for (const endpoint of endpoints) parseEndpoint(endpoint, usage);
  checkPrefix(prefix, usage);
  return { endpoints, prefix };
}

function parseEndpoint(endpoint: string, fail: (message: string) => Error): { host: string; port: number } {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)):([0-9]{1,5})$/.exec(endpoint);
  const port = Number(match?.[3]);
  if (match === null || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw fail(`${JSON.stringify(endpoint)} is not HOST:PORT`);
  }
  return { host: (match[1] ?? match[2])!, port };
}

function checkPrefix(prefix: string, fail: (message: string) => Error): void {
  if (typeof prefix !== 'string' || Buffer.byteLength(prefix) > arbiterPrefixBytesMax) {
    throw fail(`the prefix must be a string of at most ${arbiterPrefixBytesMax} bytes`);
  }
  // Segments rule out `..`, empty ones (`//`) and a trailing slash, so one cluster's keys can
  // never be a prefix of another's written differently.
  if (!/^(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$/.test(prefix)) {
    throw fail(`the prefix ${JSON.stringify(prefix)} must be /SEGMENT[/SEGMENT...] of letters, digits, '.', '_', '-'`);
  }
}

/**
 * Connects to etcd through the `etcd3` package, imported here and nowhere else. Resolves at
 * once: connecting happens on the first request, bounded like every other.
 */
export async function openArbiter(options: ArbiterOptions): Promise<Arbiter> {
  const resolved = resolveArbiterOptions(options);
  const { EtcdArbiter } = await import('./arbiter-etcd.js');
  return EtcdArbiter.open(resolved);
}
