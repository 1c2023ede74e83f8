/**
 * Node options: the store's, plus the network, roles, timeouts and the policy when the backup is
 * lost. Each documented once with default, unit and trade-off; merged with defaults here only.
 */
import { txlogError } from '../wal/errors.js';
import { nodePlatform } from '../wal/platform.js';
import type { StoreOptions } from '../engine/options.js';
import type { AnyEvent } from '../engine/service.js';
import { parseArbiterUrl, resolveArbiterOptions, type ArbiterOptions } from './arbiter.js';
import { frameBytesMaxDefault } from './limits.js';
import { isLoopbackHost, parseAddress } from './protocol.js';
import { defaultNetwork } from './tls.js';
import { checkTlsFiles, loadTlsCertificates, type TlsFiles } from './tls-certificates.js';
import type { Network } from './transport.js';

export interface NodeOptions<Events extends AnyEvent = AnyEvent> extends StoreOptions<Events> {
  /** Addresses to listen on (`host:port`; port 0 picks a free one). Clients and the peer use them. */
  listen: string | string[];
  /** The peer's addresses; several are several replication links to the same peer. */
  peers: string[];
  /**
   * The role this node takes when both nodes start fresh. Afterwards the log decides: the node
   * with the higher (epoch, last LSN) becomes primary, and a running primary is never displaced
   * except by a higher epoch.
   */
  role: 'primary' | 'backup';
  /**
   * Shared secret of the cluster. With one, every link (client and peer) runs TLS 1.3 with a
   * pre-shared key derived from it (unless `tls` gives certificates), and the handshake proves
   * it again (HMAC) on top. Without a secret and without `tls`, links are plaintext TCP and only
   * loopback addresses may be used.
   */
  secret?: string;
  /**
   * Certificates instead of the pre-shared key: every link runs TLS 1.3 with mutual
   * authentication. This node presents `certFile` when it listens and when it dials its peer,
   * and refuses any peer or client whose certificate is missing or not signed by `caFile`; when
   * it dials, the peer's certificate must also name the host dialed. With a `secret` as well,
   * the handshake proves the secret inside the TLS channel, so a certificate alone or the
   * secret alone lets no one in (README "Encryption"). The files are read
   * and checked here: unreadable, not PEM, a key of another certificate, expired, without
   * `serverAuth`/`clientAuth` use, or not signed by the CA is `BAD_REQUEST`. @default none
   */
  tls?: TlsFiles;
  /** Name of the cluster; a node or client of another cluster is refused. @default 'txlog' */
  clusterId?: string;
  /** Names this node in logs and epoch records. @default the first listen address */
  nodeId?: string;
  /** How often each side sends a heartbeat on every peer link. @default 100 (ms) */
  heartbeatIntervalMs?: number;
  /** A peer link silent this long is closed as failed. @default 1000 (ms) */
  heartbeatTimeoutMs?: number;
  /**
   * How long a primary holds commits while it has no backup in sync before `onReplicaLost`
   * applies. @default 2000 (ms)
   */
  replicaTimeoutMs?: number;
  /**
   * What a primary does once its backup has been gone for `replicaTimeoutMs`:
   * - `fail` (default, safe): held and new writes fail with `REPLICA_UNAVAILABLE` (outcome
   *   unknown; the client resends the same id) until a backup is back in sync.
   * - `continue`: commit alone, saying so in logs and `status`. Unsafe under a network partition:
   *   a backup that promoted itself meanwhile makes two histories, and the one it discards held
   *   acknowledged commits. With an `arbiter` it is safe: the primary goes on alone only after
   *   etcd has taken the backup out of the in-sync set, and a node out of it never leads.
   */
  onReplicaLost?: 'fail' | 'continue';
  /**
   * Become primary at once without waiting for the peer (an operator's decision after losing a
   * node for good). With an `arbiter` it only lets this node start a fresh cluster (campaign with
   * `bootstrap`); it still leads only if its campaign wins. @default false
   */
  forcePrimary?: boolean;
  /** Largest wire frame. @default 16 MiB */
  frameBytesMax?: number;
  /** Client connections at once; past it a new one is refused with `BUSY`. @default 1024 */
  clientConnectionsMax?: number;
  /** Requests one client connection may have running; past it `BUSY`. @default 4096 */
  requestsPerConnectionMax?: number;
  /** Handshake and dial time limit. @default 2000 (ms) */
  connectTimeoutMs?: number;
  /**
   * Where byte pipes come from. @default TLS 1.3 with a key derived from `secret` when there is
   * one (`tlsNetwork`), else plaintext TCP (`nodeNetwork`); a simulator passes its own.
   */
  network?: Network;
  /**
   * An external arbiter (etcd) that decides who leads, which nodes may lead, and when a primary
   * may go on alone (ARCHITECTURE.md, "Arbiter"). Without one (the default) the two nodes decide
   * between themselves, as described above. With one, a node leads only while it holds etcd's
   * leader lease, `onReplicaLost: 'continue'` is safe under partitions, and a node that lost its
   * peer for good restarts alone without `forcePrimary`; but a primary that cannot renew its
   * lease (etcd down or cut off) stops acknowledging within `leaseTtlMs - marginMs`. Needs
   * `nodeId` (the in-sync set in etcd names nodes by id across restarts).
   * @default none
   */
  arbiter?: NodeArbiterOptions;
}

/**
 * Where the arbiter is (an `etcd://HOST:PORT[,HOST:PORT]/PREFIX` URL, or `endpoints` and
 * `prefix`) and its lease timing; every timing option is documented with its default and
 * trade-off on `ArbiterOptions` (`replication/arbiter.ts`): `leaseTtlMs` 10000 (longer: fewer
 * renewals, more tolerance of a slow etcd, but a dead primary is replaced later),
 * `renewIntervalMs` 2000 (also how often a node that does not lead campaigns), `marginMs` 2000
 * (taken off every validity: safer when larger, less time acknowledging per renewal),
 * `requestTimeoutMs` 2000 (every etcd request).
 */
export type NodeArbiterOptions = { url: string } & Partial<ArbiterTiming>
  | Pick<ArbiterOptions, 'endpoints' | 'prefix'> & Partial<ArbiterTiming>;

type ArbiterTiming = Required<Pick<ArbiterOptions, 'leaseTtlMs' | 'renewIntervalMs' | 'marginMs' | 'requestTimeoutMs'>>;

/** The arbiter's place and timing as a node opens it (its callbacks and clock are the node's). */
export type NodeArbiterConfig = Pick<ArbiterOptions, 'endpoints' | 'prefix'> & ArbiterTiming;

export interface ResolvedNodeOptions {
  listen: string[];
  peers: string[];
  role: 'primary' | 'backup';
  secret: string;
  clusterId: string;
  nodeId: string;
  nodeIdGiven: boolean;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  replicaTimeoutMs: number;
  onReplicaLost: 'fail' | 'continue';
  forcePrimary: boolean;
  frameBytesMax: number;
  clientConnectionsMax: number;
  requestsPerConnectionMax: number;
  connectTimeoutMs: number;
  network: Network;
  arbiter: NodeArbiterConfig | undefined;
}

export function resolveNodeOptions(options: NodeOptions): ResolvedNodeOptions {
  const listen = typeof options.listen === 'string' ? [options.listen] : options.listen;
  if (!Array.isArray(listen) || listen.length === 0) throw txlogError('BAD_REQUEST', 'startNode needs listen addresses');
  if (!Array.isArray(options.peers)) throw txlogError('BAD_REQUEST', 'startNode needs peers (may be empty)');
  if (options.role !== 'primary' && options.role !== 'backup') throw txlogError('BAD_REQUEST', 'role must be primary or backup');
  const secret = options.secret ?? '';
  const certificates = options.tls === undefined ? undefined : loadTlsCertificates(checkTlsFiles(options.tls, 'tls'), 'node', (options.platform ?? nodePlatform).clock.nowMs());
  for (const address of [...listen, ...options.peers]) {
    const { host } = parseAddress(address);
    if (secret === '' && certificates === undefined && !isLoopbackHost(host)) {
      throw txlogError('BAD_REQUEST', `refusing ${address} without a secret or certificates: without them txlog stays on loopback`);
    }
  }
  const resolved: ResolvedNodeOptions = {
    listen,
    peers: options.peers,
    role: options.role,
    secret,
    clusterId: options.clusterId ?? 'txlog',
    nodeId: options.nodeId ?? listen[0]!,
    nodeIdGiven: options.nodeId !== undefined,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 100,
    heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 1000,
    replicaTimeoutMs: options.replicaTimeoutMs ?? 2000,
    onReplicaLost: options.onReplicaLost ?? 'fail',
    forcePrimary: options.forcePrimary ?? false,
    frameBytesMax: options.frameBytesMax ?? frameBytesMaxDefault,
    clientConnectionsMax: options.clientConnectionsMax ?? 1024,
    requestsPerConnectionMax: options.requestsPerConnectionMax ?? 4096,
    connectTimeoutMs: options.connectTimeoutMs ?? 2000,
    network: options.network ?? defaultNetwork(secret, options.clusterId ?? 'txlog', options.connectTimeoutMs ?? 2000, certificates),
    arbiter: options.arbiter === undefined ? undefined : resolveNodeArbiter(options.arbiter),
  };
  if (resolved.onReplicaLost !== 'fail' && resolved.onReplicaLost !== 'continue') {
    throw txlogError('BAD_REQUEST', 'onReplicaLost must be fail or continue');
  }
  for (const key of ['heartbeatIntervalMs', 'heartbeatTimeoutMs', 'replicaTimeoutMs', 'frameBytesMax', 'clientConnectionsMax', 'requestsPerConnectionMax', 'connectTimeoutMs'] as const) {
    const value = resolved[key];
    if (!Number.isSafeInteger(value) || value < 1) throw txlogError('BAD_REQUEST', `${key} must be a positive integer`);
  }
  if (resolved.heartbeatTimeoutMs <= resolved.heartbeatIntervalMs) {
    throw txlogError('BAD_REQUEST', 'heartbeatTimeoutMs must be longer than heartbeatIntervalMs');
  }
  if (resolved.arbiter !== undefined && !resolved.nodeIdGiven && parseAddress(resolved.nodeId).port === 0) {
    throw txlogError('BAD_REQUEST', 'a node with an arbiter needs a nodeId (or a fixed first listen port): the in-sync set names nodes across restarts');
  }
  return resolved;
}

/** Checks the arbiter options now (bad ones are BAD_REQUEST, a bad URL USAGE), before any store opens. */
function resolveNodeArbiter(options: NodeArbiterOptions): NodeArbiterConfig {
  const place = 'url' in options ? parseArbiterUrl(options.url) : { endpoints: options.endpoints, prefix: options.prefix };
  const { endpoints, prefix, leaseTtlMs, renewIntervalMs, marginMs, requestTimeoutMs } = resolveArbiterOptions({ ...options, ...place });
  return { endpoints, prefix, leaseTtlMs, renewIntervalMs, marginMs, requestTimeoutMs };
}
