/**
 * Proves the metrics sink (replication/prometheus.ts) and the hook points behind it, in one process:
 * - an embedded store given `createPrometheusMetrics()` counts transactions (ok and by error
 *   code), commits, events, WAL records and bytes, and fills the phase histograms (wal_write,
 *   fdatasync under `always`, apply) and the batch-size histogram;
 * - with metrics off (the null sink) the store never reads the monotonic clock for them, however
 *   many records it writes: the hook points cost a property read;
 * - importing the package entry and running an embedded store loads no prom-client; creating the
 *   sink does (so the check can see it).
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../engine/index.js';
import { createPrometheusMetrics } from '../../replication/metrics.js';
import { nodePlatform, type Platform } from '../../wal/platform.js';
import { useTempDir } from '../helpers/temp.js';
import { lightOptions } from '../helpers/store.js';
import { packagesLoaded } from '../helpers/loaded-modules.js';

const newDir = useTempDir('txlog-metrics-');

/** The value of a sample in Prometheus text, or undefined. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe('Prometheus metrics of an embedded store', () => {
  it('counts what the store does and fills the phase histograms', async () => {
    const metrics = await createPrometheusMetrics({ processMetrics: false });
    const store = await openStore({ ...lightOptions(newDir(), { fsync: 'always' }), metrics, log: () => undefined });
    await Promise.all(Array.from({ length: 20 }, (_, index) => store.append(`stream-${index % 4}`, [{ type: 'Placed', data: { index } }, { type: 'Paid', data: {} }])));
    await store.append('stream-0', [{ type: 'Placed', data: {} }], { expectedVersion: 0 }).catch(() => undefined);
    await store.close();
    const text = await metrics.registry.metrics();
    expect(sample(text, 'txlog_transactions_total{outcome="ok"}')).toBe(20);
    expect(sample(text, 'txlog_transactions_total{outcome="error"}')).toBe(1);
    expect(sample(text, 'txlog_transaction_errors_total{code="WRONG_EXPECTED_VERSION"}')).toBe(1);
    expect(sample(text, 'txlog_commits_total')).toBe(21);
    expect(sample(text, 'txlog_events_appended_total')).toBe(40);
    expect(sample(text, 'txlog_wal_records_appended_total')).toBe(21);
    expect(sample(text, 'txlog_wal_appended_bytes_total')).toBeGreaterThan(21 * 24);
    expect(sample(text, 'txlog_transaction_seconds_count')).toBe(21);
    for (const phase of ['wal_write', 'fdatasync', 'apply']) {
      expect(sample(text, `txlog_commit_phase_seconds_count{phase="${phase}"}`), phase).toBeGreaterThan(0);
    }
    expect(sample(text, 'txlog_wal_fdatasync_seconds_count')).toBeGreaterThan(0);
    expect(sample(text, 'txlog_wal_batch_records_sum')).toBe(21);
    expect(sample(text, 'txlog_wal_batch_records_count')!).toBeLessThan(21);
  });

  it('reads no clock for metrics when they are off', async () => {
    let clockReads = 0;
    const platform: Platform = {
      ...nodePlatform,
      clock: {
        ...nodePlatform.clock,
        monotonicMs: () => {
          clockReads += 1;
          return nodePlatform.clock.monotonicMs();
        },
      },
    };
    const store = await openStore({ ...lightOptions(newDir(), { fsync: 'always' }), platform, log: () => undefined });
    await Promise.all(Array.from({ length: 500 }, (_, index) => store.append(`stream-${index % 8}`, [{ type: 'Placed', data: {} }])));
    await store.close();
    expect(clockReads).toBe(0);
  });

  it('importing the package entry and running a store loads no prom-client', () => {
    const entry = fileURLToPath(new URL('../../index.ts', import.meta.url));
    const setup = `
      const txlog = await import(${JSON.stringify(entry)});
      const store = await txlog.openStore({ dir: ${JSON.stringify(newDir())}, fsync: 'never', preallocate: false, log: () => {} });
      await store.append('orders', [{ type: 'Placed', data: {} }]);
      await store.close();
    `;
    // `after` proves the check can see prom-client when it is loaded.
    expect(packagesLoaded('prom-client', setup, 'await txlog.createPrometheusMetrics();')).toEqual({ before: false, after: true });
  });
});
