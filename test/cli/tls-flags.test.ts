/**
 * Proves that the CLI checks `--tls-cert`, `--tls-key` and `--tls-ca` before it starts or
 * dials anything (the built `txlog`, real processes, certificates made by openssl in the test's
 * temporary directory): one flag without the others, a missing file, a key of another
 * certificate, a certificate of another CA, a client certificate given to a node, and the
 * flags on `backup --dir` are each one `USAGE` line and exit 2, on `serve` and on the client
 * commands alike.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { opensslAvailable, tlsFlags, useCertificates } from '../helpers/certificates.js';
import { useTempDir } from '../helpers/temp.js';
import { runCli, useBuiltCli } from './helpers.js';

const cli = useBuiltCli();
const certificates = useCertificates();
const newDir = useTempDir('txlog-cli-tls-');

describe.skipIf(!opensslAvailable())('--tls-cert, --tls-key, --tls-ca', () => {
  it('refuses every bad combination or file with USAGE and exit 2', async () => {
    const made = certificates();
    const authority = made.authority('cluster-ca');
    const node = authority.issue('node');
    const other = authority.issue('other');
    const client = authority.issue('client', { extendedKeyUsage: 'clientAuth' });
    const rogue = made.authority('rogue-ca').issue('rogue');
    const dir = path.join(newDir(), 'store');
    const serve = ['serve', '--dir', dir, '--listen', '127.0.0.1:0'];
    const exec = ['exec', '--servers', '127.0.0.1:1', 'append'];
    const cases: Array<[string, string[], RegExp]> = [
      ['serve: --tls-cert alone', [...serve, '--tls-cert', node.certFile], /go together: missing --tls-key, --tls-ca/],
      ['serve: a missing key file', [...serve, ...tlsFlags({ ...node, keyFile: path.join(made.dir, 'none.key') })], /cannot read the TLS key file .*ENOENT/],
      ['serve: another certificate\'s key', [...serve, ...tlsFlags({ ...node, keyFile: other.keyFile })], /does not belong to the certificate/],
      ['serve: a client certificate', [...serve, ...tlsFlags(client)], /does not allow serverAuth use/],
      ['exec: a certificate of another CA', [...exec, ...tlsFlags({ ...rogue, caFile: authority.caFile })], /is not signed by a certificate in/],
      ['status: --tls-ca alone', ['status', '--servers', '127.0.0.1:1', '--tls-ca', authority.caFile], /go together/],
      ['backup --dir with --tls-*', ['backup', '--dir', dir, '--out', path.join(made.dir, 'out'), ...tlsFlags(client)], /go with --servers/],
    ];
    for (const [what, args, message] of cases) {
      const result = await runCli(cli(), args);
      expect(result.exitCode, what).toBe(2);
      expect(result.stderr, what).toMatch(/^txlog: USAGE: /);
      expect(result.stderr, what).toMatch(message);
      expect(result.stderr.trim().split('\n'), `${what}: one line`).toHaveLength(1);
    }
  });
});
