/**
 * TLS 1.3 under every link of a cluster that has a secret or certificates: `tlsNetwork` adapts
 * `node:tls` sockets to `Transport` and `Network`, as `nodeNetwork` does for plain TCP, so
 * nothing above the seam changes. By default both ends hold a pre-shared key derived from the
 * cluster secret (HKDF-SHA256, a key of its own for this purpose and cluster), so a cluster that
 * had a secret is encrypted with no new configuration; certificates signed by one CA, checked
 * both ways on every link, are the alternative (`tls-certificates.ts` reads them). A handshake
 * that fails (wrong key, untrusted or missing certificate, a peer that does not speak TLS)
 * reaches the dialer as `UNAUTHORIZED`: retrying cannot fix it.
 */
import { hkdfSync } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { txlogError } from '../wal/errors.js';
import { encodeMessage } from './protocol.js';
import type { TlsCertificates } from './tls-certificates.js';
import { listenOn, nodeNetwork, socketTransport, type Network, type Transport } from './transport.js';

/**
 * The one suite offered. TLS 1.3 suites carry their own hash, and an external PSK is bound to
 * one: a 32-byte key goes with SHA-256. PSK suites are off by default in Node, so it is named.
 */
export const tlsPskCipher = 'TLS_AES_128_GCM_SHA256';
/** HKDF-SHA256 output for the PSK: the suite's hash length. */
export const tlsPskKeyBytes = 32;
/**
 * Sent in the clear in the ClientHello; it names the derivation, not the cluster (the cluster
 * id is in the key, so a node of another cluster fails the handshake instead of being named).
 */
export const tlsPskIdentity = 'txlog-psk-v1';
/** HKDF `info` of the PSK; another purpose of the secret must use another one. */
const pskInfo = 'txlog tls psk v1';

/**
 * How the TLS layer authenticates both ends. With certificates, `identity` is what this end
 * presents: a listener must have one, and every txlog dialer has one (nodes ask every dialer
 * for a certificate); a dialer without one exists for tests of that refusal.
 */
export type TlsCredentials =
  | { kind: 'psk'; key: Buffer }
  | { kind: 'certificates'; ca: Buffer; identity: { cert: Buffer; key: Buffer } | undefined };

export function certificateCredentials(certificates: TlsCertificates): TlsCredentials {
  return { kind: 'certificates', ca: certificates.ca, identity: { cert: certificates.cert, key: certificates.key } };
}

/** The TLS pre-shared key of `clusterId` for `secret`: HKDF-SHA256, info bound to the cluster. */
export function tlsPskKey(secret: string, clusterId: string): Buffer {
  if (secret.length === 0) throw new TypeError('a TLS pre-shared key needs a secret');
  return Buffer.from(hkdfSync('sha256', secret, 'txlog', `${pskInfo}\u0000${clusterId}`, tlsPskKeyBytes));
}

export function pskCredentials(secret: string, clusterId: string): TlsCredentials {
  return { kind: 'psk', key: tlsPskKey(secret, clusterId) };
}

export interface TlsNetworkOptions {
  /**
   * A server-side TLS handshake not finished in this long is dropped, so a dialer that never
   * speaks (a plaintext client waiting for `hello`) holds a socket no longer than this.
   */
  handshakeTimeoutMs: number;
}

/** Options both ends share: TLS 1.3 only, and how each end proves itself. */
function commonOptions(credentials: TlsCredentials): tls.CommonConnectionOptions & tls.SecureContextOptions {
  switch (credentials.kind) {
    case 'psk':
      return { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: tlsPskCipher };
    case 'certificates':
      return { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ...credentials.identity, ca: credentials.ca, rejectUnauthorized: true };
    default:
      return assertNever(credentials);
  }
}

function assertNever(value: never): never {
  throw new Error(`unexpected ${String(value)}`);
}

function serverOptions(credentials: TlsCredentials, options: TlsNetworkOptions): tls.TlsOptions {
  const common = { ...commonOptions(credentials), handshakeTimeout: options.handshakeTimeoutMs };
  if (credentials.kind === 'certificates') {
    if (credentials.identity === undefined) throw new TypeError('a TLS listener needs a certificate and key');
    // Every dialer (peer or client) must present a certificate signed by the CA, but the check
    // is ours (`acceptVerified`): Node would drop an untrusted dialer without a word (it sends
    // no alert), and the dialer would retry until its deadline instead of hearing why.
    return { ...common, requestCert: true, rejectUnauthorized: false };
  }
  const key = credentials.key;
  // Null for an unknown identity: OpenSSL then answers with an alert and the socket is dropped.
  return { ...common, pskCallback: (_socket, identity) => (identity === tlsPskIdentity ? key : null) };
}

function clientOptions(credentials: TlsCredentials, host: string, port: number): tls.ConnectionOptions {
  const common = { ...commonOptions(credentials), host, port };
  // Node's own check of the server's name stays on: its certificate must name the host dialed.
  if (credentials.kind === 'certificates') return common;
  const key = credentials.key;
  return {
    ...common,
    pskCallback: () => ({ psk: key, identity: tlsPskIdentity }),
    // The pre-shared key authenticates the server; there is no certificate to check a name on.
    checkServerIdentity: () => undefined,
  };
}

/**
 * A dialed TLS socket as a `Transport`. Errors before the handshake finished are the
 * handshake's: a TLS error becomes `UNAUTHORIZED` (retrying with the same key or certificate
 * cannot succeed); a refused or reset dial is passed on as it is, so the dialer retries it. A
 * node that refuses our certificate says so after the TLS handshake, in an `error` frame.
 */
function dialedTransport(socket: tls.TLSSocket, address: string): Transport {
  let secured = false;
  socket.once('secureConnect', () => {
    secured = true;
  });
  return socketTransport(socket, (error) => (secured ? error : handshakeError(error, address)));
}

/**
 * Certificate checks that failed on our side (OpenSSL's verify codes, and Node's name check).
 * Other TLS errors without an alert (bytes that are not TLS) are not mapped: they are what a
 * plaintext node sends, or a probe refusal that beat a stalled dialer, and the dialer retries.
 */
const certificateErrorCodes: ReadonlySet<string> = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The peer refused our key or certificate (a TLS alert), or we refused its certificate. */
function isAuthenticationFailure(code: string): boolean {
  return /^ERR_SSL_(SSLV3|TLSV1|TLSV13)_ALERT_/.test(code) || certificateErrorCodes.has(code);
}

function handshakeError(error: Error, address: string): Error {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (!isAuthenticationFailure(code)) return error;
  return txlogError('UNAUTHORIZED', `TLS handshake with ${address} failed (wrong key or certificate, or it does not speak TLS): ${code}`, {}, error);
}

/** The first byte of every TLS record that opens a handshake (a ClientHello). */
const tlsHandshakeRecordType = 0x16;

/**
 * A plaintext txlog dialer says nothing until it hears `hello`, and a TLS dialer speaks first:
 * silence this long after accepting, or a first byte that does not open a TLS handshake, is a
 * dialer without the secret, which gets a plaintext `UNAUTHORIZED` error frame instead of
 * waiting for its own timeout (so this is well below the client's 1000 ms connect timeout).
 * Node writes the ClientHello in the turn the connect completes; a TLS dialer stalled past this
 * gets the refusal as bytes that are not TLS, which it treats as a failed dial and retries.
 */
export const tlsPlaintextProbeMs = 500;

/**
 * Tells a dialer why it is refused, in the one format it reads (a txlog `error` frame, in the
 * clear or inside TLS), and closes.
 */
function refuse(socket: net.Socket, message: string): void {
  socket.on('error', () => socket.destroy());
  socket.end(encodeMessage({ t: 'error', error: txlogError('UNAUTHORIZED', message).toJSON() }));
  socket.setTimeout(tlsPlaintextProbeMs, () => socket.destroy());
}

function refusePlaintext(socket: net.Socket): void {
  refuse(socket, 'this node takes TLS only: configure the cluster\'s secret, or its certificates (--tls-cert, --tls-key, --tls-ca)');
}

/**
 * Hands on a TLS socket whose dialer proved itself: with certificates, only one whose
 * certificate the CA signed; any other is told so (inside TLS: it has checked our certificate,
 * so it can believe us) and closed, and never reaches `onTransport`.
 */
function acceptVerified(credentials: TlsCredentials, socket: tls.TLSSocket, onTransport: (transport: Transport) => void): void {
  if (credentials.kind === 'certificates' && !socket.authorized) {
    const reason = socket.authorizationError === undefined ? 'none' : String(socket.authorizationError);
    refuse(socket, `this node takes only dialers with a certificate signed by its CA (${reason})`);
    return;
  }
  onTransport(socketTransport(socket));
}

/**
 * Reads the first bytes a dialer sends: a TLS handshake goes to `tlsServer` with the bytes put
 * back; anything else, or silence, is refused as a plaintext dialer.
 */
function sniff(socket: net.Socket, tlsServer: tls.Server): void {
  socket.on('error', () => socket.destroy());
  const probe = setTimeout(() => {
    socket.removeAllListeners('data');
    refusePlaintext(socket);
  }, tlsPlaintextProbeMs);
  socket.once('data', (chunk: Buffer) => {
    clearTimeout(probe);
    socket.pause();
    if (chunk[0] !== tlsHandshakeRecordType) {
      refusePlaintext(socket);
      return;
    }
    socket.removeAllListeners('error');
    socket.unshift(chunk);
    tlsServer.emit('connection', socket);
  });
}

/** `Network` over TLS 1.3: every accepted and dialed transport is past its TLS handshake or failing it. */
export function tlsNetwork(credentials: TlsCredentials, options: TlsNetworkOptions): Network {
  return {
    listen(host, port, onTransport) {
      // Never listens itself: the plain server below hands it the sockets that speak TLS.
      const tlsServer = tls.createServer(serverOptions(credentials, options), (socket) => acceptVerified(credentials, socket, onTransport));
      // A failed handshake (a wrong key, garbage) only drops that socket: Node has destroyed
      // it already, and the dialer hears the alert or the close.
      tlsServer.on('tlsClientError', () => undefined);
      return listenOn(net.createServer({ noDelay: true }, (socket) => sniff(socket, tlsServer)), host, port);
    },
    connect(host, port) {
      const socket = tls.connect(clientOptions(credentials, host, port));
      socket.setNoDelay(true);
      return dialedTransport(socket, `${host}:${port}`);
    },
  };
}

/**
 * The network of a node or client: TLS with certificates when it has them, else TLS with a key
 * derived from the secret when there is one, plaintext TCP only with neither.
 */
export function defaultNetwork(secret: string, clusterId: string, handshakeTimeoutMs: number, certificates: TlsCertificates | undefined): Network {
  if (certificates !== undefined) return tlsNetwork(certificateCredentials(certificates), { handshakeTimeoutMs });
  if (secret === '') return nodeNetwork;
  return tlsNetwork(pskCredentials(secret, clusterId), { handshakeTimeoutMs });
}
