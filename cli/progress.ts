/**
 * A one-line progress bar on stderr, drawn only for a person watching: when stderr is a
 * terminal and `CI` is not set. Scripts, pipes and CI logs get nothing, so they never have to
 * strip carriage returns out of what they capture.
 */

export interface Progress {
  /** Counts `amount` more units done. */
  advance(amount: number): void;
  /** Erases the bar. */
  done(): void;
}

const barCharacters = 30;
const redrawEveryMs = 100;

export function progressWanted(): boolean {
  const ci = process.env['CI'];
  return process.stderr.isTTY === true && (ci === undefined || ci === '');
}

export function startProgress(label: string, total: number): Progress {
  if (!progressWanted() || total <= 0) return { advance: () => undefined, done: () => undefined };
  let completed = 0;
  let drawnAtMs = 0;
  const draw = (): void => {
    const fraction = Math.min(completed / total, 1);
    const filled = Math.round(fraction * barCharacters);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(barCharacters - filled)}`;
    process.stderr.write(`\r${label} [${bar}] ${Math.floor(fraction * 100)}%`);
    drawnAtMs = performance.now();
  };
  draw();
  return {
    advance(amount) {
      completed += amount;
      if (performance.now() - drawnAtMs >= redrawEveryMs || completed >= total) draw();
    },
    done() {
      process.stderr.write('\r\x1b[K');
    },
  };
}
