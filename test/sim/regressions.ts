/**
 * Seeds that once broke an invariant, with what they found. `npm test` runs every one of them
 * for good; a seed is added here when the bug it found is fixed. A seed drifts to another run
 * when the code changes how much randomness a run draws or in what order things happen (pair
 * seeds 1 and 1074 no longer take the path they found, measured by putting each bug back), so
 * each fix also has a test of its own where one could be written, and these seeds stay as
 * extra coverage.
 */
export interface RegressionSeed {
  world: 'embedded' | 'pair';
  seed: number;
  found: string;
}

export const regressionSeeds: RegressionSeed[] = [
  {
    world: 'pair',
    seed: 1,
    found:
      'two epoch-3 primaries: a backup promoted itself alone on a client request while its restarted peer, ' +
      'reading the backup\'s "not primary" state, began epoch 3 too; the promoted one acknowledged commits ' +
      'that were cut when it rejoined the other (replication/node.ts onPeerState: only two waiting nodes decide)',
  },
  {
    world: 'embedded',
    seed: 5001,
    found:
      'a hole in the log after a process crash then a machine crash: the new process took the dead one\'s ' +
      'unsynced tail as durable and wrote on in a new segment; the machine crash dropped the tail but kept ' +
      'the new segment, and no open got past the gap (wal/segments.ts recover: fdatasync the tail at open)',
  },
  {
    world: 'pair',
    seed: 1074,
    found:
      'a backup counted itself in sync on reaching the live marker while its primary, promoted alone, still ' +
      'released commits without it; cut off then, the backup promoted and the alone primary\'s acknowledged ' +
      'commits were lost (protocol 2: the backup is in sync only once the primary says `synced`)',
  },
  {
    world: 'pair',
    seed: 3120,
    found:
      'a primary that stepped down opened its release gate while its unreleased tail was still being ' +
      'dropped (after the WAL settled): a commit its backup never had was applied and answered, then cut ' +
      '(replication/sender.ts releaseLimit: a waiting node releases nothing)',
  },
  {
    world: 'pair',
    seed: 1261,
    found:
      'a backup that went waiting (its peer came back as not primary) held the replicated records it had ' +
      'not applied yet; following the primary again did not reopen its release gate, its join never went ' +
      'out and the pair never formed again (replication/context.ts changeRole: the gate is looked at again)',
  },
  {
    world: 'pair',
    seed: 1336,
    found:
      'once role changes re-evaluated the release gate, a stepped-down primary that followed the new ' +
      'primary before its unreleased tail was dropped released that tail: a handler saw a journaled result ' +
      'the new primary never had (replication/node.ts: nothing is released while the tail is dropped)',
  },
  {
    world: 'pair',
    seed: 1325966663,
    found:
      'a restarted backup followed the primary and sent its join on a link that was then cut; it moved to ' +
      'its other link without joining again, while the primary, taking it for its old backup on a spare ' +
      'link, resent records it dropped as unjoined: the pair never formed again (replication/receiver.ts ' +
      'onLinkClosed: an unanswered join is sent again on the link left)',
  },
  {
    world: 'pair',
    seed: 125208643,
    found:
      'the primary lost its only link to the backup, then resumed on a spare link with nothing left to ' +
      'resend; the backup had acknowledged everything already, and with no commit after the faults no ' +
      'acknowledgement came: the primary never counted it in sync again and the pair never settled ' +
      '(replication/sender.ts pump: a resumed replica is checked for sync when it goes live)',
  },
];
