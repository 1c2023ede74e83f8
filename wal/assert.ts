/** Programmer errors: a broken invariant inside txlog. Never caught, never shown as an operating error. */
export class AssertionFailed extends Error {
  override readonly name = 'AssertionFailed';
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionFailed(message);
}

/**
 * A broken invariant whose message names values: called only once the check has failed (`if
 * (!ok) assertionFailed(\`...\`)`), so the path where it holds builds no string. An `assert`
 * with a template literal builds its message on every call (about 45 ns in optimized code).
 */
export function assertionFailed(message: string): never {
  throw new AssertionFailed(message);
}

export function assertNever(value: never, what: string): never {
  throw new AssertionFailed(`unexpected ${what}: ${String(value)}`);
}
