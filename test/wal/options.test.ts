/**
 * Proves that WAL options are merged with their defaults in one place and that invalid values
 * or impossible relations between them fail with BAD_REQUEST before anything touches the disk.
 */
import { describe, expect, it } from 'vitest';
import { resolveWalOptions, walDefaults } from '../../wal/options.js';
import { thrownError } from '../helpers/wal.js';

describe('resolveWalOptions', () => {
  it('fills in the documented defaults', () => {
    const resolved = resolveWalOptions({ dir: '/nowhere' });
    expect(resolved).toMatchObject(walDefaults);
  });

  it('lowers the default record limit so that any record fits a small segment', () => {
    const resolved = resolveWalOptions({ dir: '/nowhere', segmentBytes: 4096 });
    expect(resolved.recordBytesMax).toBe(4096 - 64 - 24);
  });

  it.each([
    [{ dir: '' }],
    [{ dir: '/x', fsync: 'sometimes' as never }],
    [{ dir: '/x', segmentBytes: 4095 }],
    [{ dir: '/x', segmentBytes: 1.5 }],
    [{ dir: '/x', fsyncIntervalMs: 0 }],
    [{ dir: '/x', batchRecordsMax: 1025 }],
    [{ dir: '/x', queueRecordsMax: 0 }],
    [{ dir: '/x', segmentBytes: 4096, recordBytesMax: 4096 - 64 - 24 + 1 }],
  ])('refuses %j with BAD_REQUEST', (options) => {
    expect(thrownError(() => resolveWalOptions(options)).code).toBe('BAD_REQUEST');
  });
});
