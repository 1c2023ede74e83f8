/**
 * Certificates as the alternative to the pre-shared key: the three PEM files a node or client
 * names (`tls: {certFile, keyFile, caFile}`), read and checked when its options are resolved,
 * so that a wrong path, a key of another certificate or a certificate the CA did not sign is
 * one clear `BAD_REQUEST` before anything listens or dials, not a handshake failure later on
 * another machine.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import { TxlogError, txlogError } from '../wal/errors.js';

/** Where a node's or a client's TLS identity and trust come from (PEM files). */
export interface TlsFiles {
  /**
   * This node's or client's certificate, optionally followed by the intermediates that lead to
   * the CA. A node's must allow both TLS server and client use (it listens and dials: no
   * extended key usage, or both `serverAuth` and `clientAuth`) and name the host its peers and
   * clients dial (a subjectAltName DNS or IP entry); a client's must allow `clientAuth`.
   */
  certFile: string;
  /** The certificate's private key, unencrypted PEM (PKCS#8, PKCS#1 or SEC1). */
  keyFile: string;
  /**
   * The certificate authority (one or more PEM certificates) that every node and client of the
   * cluster is checked against: a peer's or client's certificate not signed by it is refused.
   */
  caFile: string;
}

/** The files' contents, checked, as `node:tls` takes them. */
export interface TlsCertificates {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/** A node's certificate serves both ends of its links; a client's only dials. */
export type CertificateHolder = 'node' | 'client';

/** Larger than any sane PEM chain; a larger file is a wrong path (a log, a WAL segment). */
export const tlsFileBytesMax = 1024 * 1024;

const extendedKeyUsages = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2' } as const;
const pemCertificate = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function badTls(message: string, cause?: unknown): TxlogError {
  return txlogError('BAD_REQUEST', message, {}, cause);
}

/** Checks the option's shape: an object with the three file names, nothing else. */
export function checkTlsFiles(value: unknown, option: string): TlsFiles {
  if (typeof value !== 'object' || value === null) throw badTls(`${option} must be {certFile, keyFile, caFile}`);
  const fields = value as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (key !== 'certFile' && key !== 'keyFile' && key !== 'caFile') throw badTls(`${option}.${key} is not an option (certFile, keyFile, caFile)`);
  }
  for (const key of ['certFile', 'keyFile', 'caFile'] as const) {
    if (typeof fields[key] !== 'string' || fields[key] === '') throw badTls(`${option}.${key} must name a PEM file`);
  }
  return { certFile: fields['certFile'] as string, keyFile: fields['keyFile'] as string, caFile: fields['caFile'] as string };
}

function readPemFile(file: string, what: string): Buffer {
  let bytes: Buffer;
  try {
    const size = fs.statSync(file).size;
    if (size > tlsFileBytesMax) throw badTls(`the TLS ${what} file ${file} is ${size} bytes: larger than any PEM file (${tlsFileBytesMax}); is it the right path?`);
    bytes = fs.readFileSync(file);
  } catch (error) {
    if (error instanceof TxlogError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw badTls(`cannot read the TLS ${what} file ${file}: ${code}`, error);
  }
  if (bytes.length === 0) throw badTls(`the TLS ${what} file ${file} is empty`);
  return bytes;
}

function certificatesIn(pem: Buffer, file: string, what: string): X509Certificate[] {
  const blocks = pem.toString('latin1').match(pemCertificate) ?? [];
  if (blocks.length === 0) throw badTls(`the TLS ${what} file ${file} holds no PEM certificate`);
  return blocks.map((block) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw badTls(`the TLS ${what} file ${file} holds a certificate that cannot be read: ${String(error)}`, error);
    }
  });
}

function privateKeyIn(pem: Buffer, file: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (error) {
    throw badTls(`the TLS key file ${file} holds no usable private key (it must be unencrypted PEM): ${String(error)}`, error);
  }
}

/** The extended key usages the holder's certificate needs, when it lists any. */
function checkPurpose(leaf: X509Certificate, holder: CertificateHolder, file: string): void {
  // Node types `keyUsage` as string[], but it is undefined when the extension is absent.
  const usages = leaf.keyUsage as string[] | undefined;
  if (usages === undefined || usages.length === 0) return;
  const needed = holder === 'node' ? (['serverAuth', 'clientAuth'] as const) : (['clientAuth'] as const);
  const missing = needed.filter((usage) => !usages.includes(extendedKeyUsages[usage]));
  if (missing.length > 0) {
    const why = holder === 'node' ? 'a node both listens and dials its peer' : 'a client presents it to the node';
    throw badTls(`the certificate in ${file} does not allow ${missing.join(' and ')} use (extendedKeyUsage), which ${why} needs`);
  }
}

/**
 * Reads the three files and checks what can be checked alone: each is readable PEM, the key
 * belongs to the certificate, the certificate is valid at `nowMs`, allows the holder's use, and
 * was signed by a certificate of the CA file (or, for a chain, by the next certificate in its
 * own file: the chain's upper links are left to the handshake).
 */
export function loadTlsCertificates(files: TlsFiles, holder: CertificateHolder, nowMs: number): TlsCertificates {
  const cert = readPemFile(files.certFile, 'certificate');
  const key = readPemFile(files.keyFile, 'key');
  const ca = readPemFile(files.caFile, 'CA');
  const [leaf, ...chain] = certificatesIn(cert, files.certFile, 'certificate');
  const authorities = certificatesIn(ca, files.caFile, 'CA');
  if (!leaf!.checkPrivateKey(privateKeyIn(key, files.keyFile))) {
    throw badTls(`the key in ${files.keyFile} does not belong to the certificate in ${files.certFile}`);
  }
  if (Date.parse(leaf!.validFrom) > nowMs) throw badTls(`the certificate in ${files.certFile} is not valid before ${leaf!.validFrom}`);
  if (Date.parse(leaf!.validTo) < nowMs) throw badTls(`the certificate in ${files.certFile} expired on ${leaf!.validTo}`);
  checkPurpose(leaf!, holder, files.certFile);
  const issuers = chain.length > 0 ? chain.slice(0, 1) : authorities;
  if (!issuers.some((issuer) => leaf!.checkIssued(issuer) && leaf!.verify(issuer.publicKey))) {
    const by = chain.length > 0 ? 'the next certificate in its file' : `a certificate in ${files.caFile}`;
    throw badTls(`the certificate in ${files.certFile} is not signed by ${by}: nodes that trust that CA would refuse it`);
  }
  return { cert, key, ca };
}
