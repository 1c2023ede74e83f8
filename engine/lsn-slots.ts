/**
 * Values by LSN for the commit path's short-lived bookkeeping (records not yet applied, callers
 * waiting for a release), in a ring of slots indexed by LSN rather than in a `Map`.
 *
 * Why not a `Map`: one that takes a new key and drops an old one per transaction makes V8 rehash
 * its table every few hundred operations, and each obsolete table keeps a pointer to the next one
 * and to every value it held (V8 keeps them for iterators that were running). Once one of those
 * tables has been promoted to the old generation, every later table and every record they held
 * survive each young-generation collection until the next full one: a store under load promoted
 * about a third of what its transactions allocated (README, "Measured": `--trace-gc-nvp`, and a
 * scratch loop that churns a `Map` of 256 values against a ring of them). Here a slot is cleared
 * when its value goes, and nothing but the live values is referenced.
 *
 * The LSNs held at once lie in a window (the oldest to the newest held) that the ring grows to
 * cover, to a power of two: as wide as what is in flight. A value held much longer than those
 * after it (a client's call that waits while thousands after it are answered) would stretch the
 * window without bound, so past `windowSlotsMin` and eight slots per value held, the oldest
 * values move to a `Map` of stragglers, where they are few and stay until they go. Also for any
 * other id that grows by one (a client's call ids).
 */
import { assertionFailed } from '../wal/assert.js';

/** A window at least this wide never sends values to the stragglers. */
const windowSlotsMin = 1024;

export class LsnSlots<T> {
  private slots: Array<T | undefined>;
  /** Values kept out of the window (see above), below it when they left it; undefined when none. */
  private stragglers: Map<number, T> | undefined;
  /** `slots.length - 1` (a power of two less one): an LSN's slot is `lsn & mask`. */
  private mask: number;
  private count = 0;
  /** The lowest and highest LSN held (meaningless when `count` is 0). */
  private low = 0;
  private high = -1;

  constructor(initialSlots = 64) {
    let length = 1;
    while (length < initialSlots) length *= 2;
    this.slots = new Array<T | undefined>(length).fill(undefined);
    this.mask = length - 1;
  }

  get size(): number {
    return this.count + (this.stragglers?.size ?? 0);
  }

  /** Slots the ring has (its memory, which the stragglers keep from growing without bound). */
  get ringSlots(): number {
    return this.slots.length;
  }

  get(lsn: number): T | undefined {
    const held = this.count === 0 || lsn < this.low || lsn > this.high ? undefined : this.slots[lsn & this.mask];
    return held ?? this.stragglers?.get(lsn);
  }

  /** The lowest LSN held and its value, if any. */
  first(): [number, T] | undefined {
    let lowest: [number, T] | undefined = this.count === 0 ? undefined : [this.low, this.slots[this.low & this.mask]!];
    if (this.stragglers !== undefined) for (const entry of this.stragglers) if (lowest === undefined || entry[0] < lowest[0]) lowest = entry;
    return lowest;
  }

  has(lsn: number): boolean {
    return this.get(lsn) !== undefined;
  }

  /** Holds `value` (never undefined) under `lsn`, replacing what it held. */
  set(lsn: number, value: T): void {
    if (!Number.isSafeInteger(lsn) || lsn < 0) assertionFailed(`an LSN slot for ${lsn}`);
    if (this.stragglers?.has(lsn) === true) {
      this.stragglers.set(lsn, value);
      return;
    }
    if (this.count === 0) {
      this.low = lsn;
      this.high = lsn;
    } else if (lsn > this.high) {
      // The oldest values make way when the window would get too wide.
      while (this.count > 0 && lsn - this.low + 1 > this.windowSlotsMax()) this.moveOldestToStragglers();
      if (this.count === 0) this.low = lsn;
      if (lsn - this.low + 1 > this.slots.length) this.grow(lsn - this.low + 1);
      this.high = lsn;
    } else if (lsn < this.low) {
      if (this.high - lsn + 1 > this.windowSlotsMax()) {
        // Far below the window (someone waits for an old LSN): a straggler from the start.
        (this.stragglers ??= new Map()).set(lsn, value);
        return;
      }
      if (this.high - lsn + 1 > this.slots.length) this.grow(this.high - lsn + 1);
      this.low = lsn;
    }
    // `&` works on the LSN modulo 2^32, whose low bits are the LSN's: right for any safe integer.
    const slot = lsn & this.mask;
    if (this.slots[slot] === undefined) this.count += 1;
    this.slots[slot] = value;
  }

  /** Drops `lsn`'s value; returns whether there was one. */
  delete(lsn: number): boolean {
    if (this.count === 0 || lsn < this.low || lsn > this.high || this.slots[lsn & this.mask] === undefined) {
      if (this.stragglers === undefined || !this.stragglers.delete(lsn)) return false;
      if (this.stragglers.size === 0) this.stragglers = undefined;
      return true;
    }
    this.slots[lsn & this.mask] = undefined;
    this.count -= 1;
    if (this.count === 0) return true;
    // Keep the window tight: past the slots now empty at either end.
    if (lsn === this.low) while (this.slots[this.low & this.mask] === undefined) this.low += 1;
    if (lsn === this.high) while (this.slots[this.high & this.mask] === undefined) this.high -= 1;
    return true;
  }

  clear(): void {
    if (this.count > 0) for (let lsn = this.low; lsn <= this.high; lsn++) this.slots[lsn & this.mask] = undefined;
    this.count = 0;
    this.stragglers = undefined;
  }

  /** The values held, in LSN order. */
  *values(): Generator<T> {
    const held: Array<[number, T]> = [];
    if (this.stragglers !== undefined) held.push(...this.stragglers);
    for (let lsn = this.low; this.count > 0 && lsn <= this.high; lsn++) {
      const value = this.slots[lsn & this.mask];
      if (value !== undefined) held.push([lsn, value]);
    }
    if (this.stragglers !== undefined) held.sort((a, b) => a[0] - b[0]);
    for (const [, value] of held) yield value;
  }

  /** The widest the window may get before its oldest values move to the stragglers. */
  private windowSlotsMax(): number {
    return Math.max(windowSlotsMin, 8 * this.count);
  }

  /** Moves the oldest value in the window to the stragglers (the window then starts at the next). */
  private moveOldestToStragglers(): void {
    const slot = this.low & this.mask;
    (this.stragglers ??= new Map()).set(this.low, this.slots[slot]!);
    this.slots[slot] = undefined;
    this.count -= 1;
    if (this.count === 0) return;
    while (this.slots[this.low & this.mask] === undefined) this.low += 1;
  }

  /** A ring of at least `width` slots, with the values held moved to their new slots. */
  private grow(width: number): void {
    let length = this.slots.length;
    while (length < width) length *= 2;
    const slots = new Array<T | undefined>(length).fill(undefined);
    const mask = length - 1;
    for (let lsn = this.low; lsn <= this.high; lsn++) {
      const value = this.slots[lsn & this.mask];
      if (value !== undefined) slots[lsn & mask] = value;
    }
    this.slots = slots;
    this.mask = mask;
  }
}
