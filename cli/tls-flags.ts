/**
 * `--tls-cert`, `--tls-key`, `--tls-ca`: certificates instead of the secret's pre-shared key, on
 * `txlog serve` and on every command that connects to a node. The three go together, and the
 * files are checked here (readable PEM, the key of the certificate, signed by the CA, the use
 * the command needs), so that a mistake is one USAGE line and exit 2 before anything starts.
 */
import { TxlogError } from '../wal/errors.js';
import { loadTlsCertificates, type CertificateHolder, type TlsFiles } from '../replication/tls-certificates.js';
import { usageError } from './common.js';

export const tlsFlagOptions = {
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
} as const;

export const tlsFlagsHelp = `  --tls-cert F            TLS with certificates instead of the secret's key: this end's
  --tls-key F             certificate (PEM; a node's must allow serverAuth and clientAuth and
  --tls-ca F              name its host), its unencrypted key, and the CA every node and
                          client is checked against; the three go together (README "Encryption")`;

/** The three flags as `TlsFiles`, checked; undefined when none is given. */
export function tlsFilesFromFlags(command: string, values: Record<string, unknown>, holder: CertificateHolder): TlsFiles | undefined {
  const flags = ['tls-cert', 'tls-key', 'tls-ca'] as const;
  const given = flags.filter((flag) => typeof values[flag] === 'string');
  if (given.length === 0) return undefined;
  const missing = flags.filter((flag) => !given.includes(flag));
  if (missing.length > 0) throw usageError(`--tls-cert, --tls-key and --tls-ca go together: missing ${missing.map((flag) => `--${flag}`).join(', ')}`, command);
  const files: TlsFiles = { certFile: values['tls-cert'] as string, keyFile: values['tls-key'] as string, caFile: values['tls-ca'] as string };
  try {
    loadTlsCertificates(files, holder, Date.now());
  } catch (error) {
    if (error instanceof TxlogError) throw usageError(error.message, command);
    throw error;
  }
  return files;
}
