/**
 * What `connect` takes (see `client.ts`): the servers, the client's identity for exactly-once,
 * how links are secured (a secret's pre-shared key, or certificates), and its limits.
 */
import type { Platform } from '../wal/platform.js';
import type { TlsFiles } from './tls-certificates.js';
import type { Network } from './transport.js';

export interface ClientOptions {
  /** Every node's address; the client finds the primary among them. */
  servers: string[];
  /** This client's identity for exactly-once. @default a random UUID (a new session) */
  clientId?: string;
  /**
   * The first request id to use. @default one above the highest the primary knows for this
   * client id, committed or in flight (asked before the first `execute`), so a restarted client
   * continues its ids.
   */
  firstRequestId?: number;
  /**
   * Shared secret of the cluster: with one, links run TLS 1.3 with a key derived from it and the
   * handshake proves it (`NodeOptions.secret`). Without one (and without `tls`), plaintext on
   * loopback only.
   */
  secret?: string;
  /**
   * Certificates, for a cluster whose nodes run with them (`NodeOptions.tls`): TLS 1.3 where
   * this client presents `certFile` (nodes refuse a client without a certificate signed by
   * their CA) and checks each node's certificate against `caFile` and the host dialed. With a
   * `secret` too, the handshake proves it inside TLS. Unreadable or mismatched files are
   * `BAD_REQUEST` here, before any dial. @default none
   */
  tls?: TlsFiles;
  /** @default 'txlog' */
  clusterId?: string;
  /**
   * Per-call deadline. Past it the call fails with `TIMEOUT`: outcome unknown, the error carries
   * the request id, and resending that id later is safe. From 1 to 2^31 - 1 ms (Node's longest
   * timer); anything else is `BAD_REQUEST`, here and in `execute`'s and `backup`'s own. @default 10000 (ms)
   */
  deadlineMs?: number;
  /** Dial and handshake limit per attempt. @default 1000 (ms) */
  connectTimeoutMs?: number;
  /** Requests waiting for an answer at once; past it calls fail with `BUSY`. @default 16384 */
  inFlightMax?: number;
  /** @default TLS 1.3 with a key derived from `secret` when there is one, else plaintext TCP */
  network?: Network;
  platform?: Platform;
}
