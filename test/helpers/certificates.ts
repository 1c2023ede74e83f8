/**
 * Test certificates made with the `openssl` command (Node cannot issue X.509 certificates by
 * itself): a CA, certificates it signs, and a second, untrusted CA with certificates of its own.
 * Everything is written into a fresh temporary directory that is removed after the test.
 * P-256 keys, valid for two days, so that making them costs milliseconds.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { TlsFiles } from '../../replication/tls-certificates.js';
import { useTempDir } from './temp.js';

export const opensslPath = '/usr/bin/openssl';

/** Whether the tests that need certificates can run here. */
export function opensslAvailable(): boolean {
  if (!existsSync(opensslPath)) return false;
  try {
    execFileSync(opensslPath, ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface CertificateOptions {
  /** subjectAltName entries. @default IP:127.0.0.1, DNS:localhost */
  altNames?: string[];
  /** extendedKeyUsage. @default serverAuth,clientAuth */
  extendedKeyUsage?: string;
}

export interface CertificateAuthority {
  /** The CA's certificate file: what `caFile` names. */
  caFile: string;
  /** A certificate and key signed by this CA, as TLS options (with this CA as `caFile`). */
  issue(name: string, options?: CertificateOptions): TlsFiles;
}

export interface TestCertificates {
  /** A new CA in this test's directory. */
  authority(name: string): CertificateAuthority;
  /** This test's directory, for files of its own. */
  dir: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync(opensslPath, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

const keyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function makeAuthority(dir: string, name: string): CertificateAuthority {
  const caFile = path.join(dir, `${name}.pem`);
  const caKey = path.join(dir, `${name}.key`);
  openssl(['req', '-x509', ...keyArgs, '-keyout', caKey, '-out', caFile, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  let serial = 1;
  return {
    caFile,
    issue(leafName, options = {}) {
      const base = path.join(dir, `${name}-${leafName}`);
      const extensions = [
        'basicConstraints=CA:FALSE',
        `subjectAltName=${(options.altNames ?? ['IP:127.0.0.1', 'DNS:localhost']).join(',')}`,
        `extendedKeyUsage=${options.extendedKeyUsage ?? 'serverAuth,clientAuth'}`,
      ];
      writeFileSync(`${base}.ext`, `${extensions.join('\n')}\n`);
      openssl(['req', ...keyArgs, '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${leafName}`], dir);
      openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', caFile, '-CAkey', caKey, '-set_serial', String(serial++),
        '-days', '2', '-extfile', `${base}.ext`, '-out', `${base}.pem`], dir);
      return { certFile: `${base}.pem`, keyFile: `${base}.key`, caFile };
    },
  };
}

/** Call at the top level of a test file; the directory is made per test and removed after it. */
export function useCertificates(): () => TestCertificates {
  const newDir = useTempDir('txlog-certificates-');
  return () => {
    const dir = newDir();
    return { dir, authority: (name) => makeAuthority(dir, name) };
  };
}

/** The flags of `txlog serve` and the client commands for `files`. */
export function tlsFlags(files: TlsFiles): string[] {
  return ['--tls-cert', files.certFile, '--tls-key', files.keyFile, '--tls-ca', files.caFile];
}
