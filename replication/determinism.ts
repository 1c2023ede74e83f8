/**
 * The determinism check of a backup: every commit it applies is re-executed through the same
 * service with the journaled call results, the recorded clock and random values, and reads as of
 * the commit's read set. A different outcome is a determinism violation: logged, counted and
 * shown in `status`; the primary's outcome stays. Checks run one at a time behind the apply
 * path, never in its way: past `verifyQueueMax` waiting commits, checks are skipped and counted.
 *
 * A commit names its calls' journal records by LSN. They are collected as records are applied
 * here; one applied before this node started or rejoined is read back from the WAL.
 */
import type { StoreLimits } from '../engine/options.js';
import { JournalCollector, reexecute, type Divergence } from '../engine/replay.js';
import { recordTypes, type CommitPayload, type JournalPayload } from '../engine/records.js';
import type { Service } from '../engine/service.js';
import type { ApplicableRecord, JournalEntry } from '../engine/state.js';
import { verifyQueueMax, violationsKeptMax } from './limits.js';
import type { NodeContext } from './context.js';

export class DeterminismCheck {
  /** Journal entries for re-execution: those applied here, and any earlier one read from the WAL. */
  private readonly journal: JournalCollector;
  private chain: Promise<void> = Promise.resolve();
  private queued = 0;
  private checked = 0;
  private skipped = 0;
  /** The last `violationsKeptMax` violations. */
  private readonly violations: Divergence[] = [];
  /** Every determinism violation seen, not only the ones kept in `violations`. */
  private violationCount = 0;

  constructor(
    private readonly context: NodeContext,
    private readonly service: Service | undefined,
    private readonly limits: StoreLimits,
  ) {
    this.journal = new JournalCollector((lsn) => context.store.journalEntryAt(lsn));
    context.store.onApplied((records) => this.verifyApplied(records));
  }

  /** Commits waiting for re-execution (at most `verifyQueueMax`). */
  get queuedChecks(): number {
    return this.queued;
  }

  /** Journal entries held for commits not yet checked, and their limit. */
  get journalEntries(): { size: number; limit: number } {
    return { size: this.journal.size, limit: this.journal.entriesMax };
  }

  /** Violations kept for `status` (at most `violationsKeptMax`). */
  get violationsKept(): number {
    return this.violations.length;
  }

  get checkedCommits(): number {
    return this.checked;
  }

  get skippedChecks(): number {
    return this.skipped;
  }

  get determinismViolations(): number {
    return this.violationCount;
  }

  get lastViolation(): Divergence | undefined {
    return this.violations[this.violations.length - 1];
  }

  /** Resolves when every check queued so far has finished. */
  whenDone(): Promise<void> {
    return this.chain;
  }

  /** Backup: queue each applied commit for re-execution. */
  private verifyApplied(records: readonly ApplicableRecord[]): void {
    if (this.context.closed || this.context.role !== 'backup' || this.service === undefined) return;
    for (const record of records) {
      if (record.type === recordTypes.journal) this.journal.add(record.lsn, record.payload as JournalPayload);
      if (record.type !== recordTypes.commit) continue;
      const commit = record.payload as CommitPayload;
      const journal = this.journal.take(commit);
      if (journal === undefined) {
        // Its calls were journaled before the oldest record this node still has: nothing to check against.
        this.skipped += 1;
        continue;
      }
      if (this.queued >= verifyQueueMax) {
        this.skipped += 1;
        continue;
      }
      this.queued += 1;
      this.chain = this.chain.then(() => this.check(record.lsn, commit, journal));
    }
  }

  private async check(lsn: number, commit: CommitPayload, journal: JournalEntry[]): Promise<void> {
    const store = this.context.store;
    try {
      if (store.isClosed) return;
      const divergence = await reexecute(
        this.service,
        lsn,
        commit,
        journal,
        (stream, fromVersion, maxCount, version) => store.readStreamAsOf(stream, fromVersion, maxCount, version),
        this.limits,
      );
      // A node closing under a re-execution proves nothing either way.
      if (this.context.closed) return;
      this.checked += 1;
      if (divergence !== undefined) this.recordViolation(divergence);
    } catch (error) {
      this.skipped += 1;
      this.context.log(`could not re-execute LSN ${lsn}: ${String(error)}`);
    } finally {
      this.queued -= 1;
    }
  }

  private recordViolation(divergence: Divergence): void {
    this.violationCount += 1;
    this.violations.push(divergence);
    if (this.violations.length > violationsKeptMax) this.violations.shift();
    this.context.log(
      `DETERMINISM VIOLATION at LSN ${divergence.lsn} (${divergence.command}): ${divergence.detail}; keeping the primary's outcome`,
    );
  }
}
