/**
 * Seeded randomness for randomised tests: every test prints its seed, and `TXLOG_SEED=<seed>`
 * replays it exactly.
 */

export interface SeededRandom {
  readonly seed: number;
  /** A float in [0, 1). */
  float(): number;
  /** An integer in [min, max] (both included). */
  integer(min: number, max: number): number;
  bytes(count: number): Buffer;
  pick<T>(items: readonly T[]): T;
}

/** mulberry32: small, fast, and good enough to drive tests. */
export function seededRandom(seed: number): SeededRandom {
  let state = seed >>> 0;
  const float = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const integer = (min: number, max: number): number => min + Math.floor(float() * (max - min + 1));
  return {
    seed,
    float,
    integer,
    bytes(count) {
      const bytes = Buffer.alloc(count);
      for (let i = 0; i < count; i++) bytes[i] = integer(0, 255);
      return bytes;
    },
    pick(items) {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[integer(0, items.length - 1)]!;
    },
  };
}

/**
 * The seed for a randomised test: `TXLOG_SEED` when set, otherwise a fresh one. Printed either
 * way, with the command line that replays it.
 */
export function testSeed(testName: string): number {
  const fromEnvironment = process.env['TXLOG_SEED'];
  const seed =
    fromEnvironment !== undefined && fromEnvironment !== ''
      ? Number(fromEnvironment) >>> 0
      : Math.floor(Math.random() * 2 ** 32) >>> 0;
  console.log(`[${testName}] seed ${seed} (replay: TXLOG_SEED=${seed})`);
  return seed;
}
