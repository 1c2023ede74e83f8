/**
 * Seeds that once broke an invariant, with what they found. `npm test` runs every one of them
 * for good; a seed is added here when the bug it found is fixed.
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
];
