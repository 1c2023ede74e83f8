/** Programmer errors: a broken invariant inside txlog. Never caught, never shown as an operating error. */
export class AssertionFailed extends Error {
  override readonly name = 'AssertionFailed';
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionFailed(message);
}

export function assertNever(value: never, what: string): never {
  throw new AssertionFailed(`unexpected ${what}: ${String(value)}`);
}
