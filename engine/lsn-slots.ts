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
 * cover, to a power of two; a window as wide as what the store holds in flight, which its limits
 * bound.
 */
import { assertionFailed } from '../wal/assert.js';

export class LsnSlots<T> {
  private slots: Array<T | undefined>;
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
    return this.count;
  }

  get(lsn: number): T | undefined {
    if (this.count === 0 || lsn < this.low || lsn > this.high) return undefined;
    return this.slots[lsn & this.mask];
  }

  has(lsn: number): boolean {
    return this.get(lsn) !== undefined;
  }

  /** Holds `value` (never undefined) under `lsn`, replacing what it held. */
  set(lsn: number, value: T): void {
    if (!Number.isSafeInteger(lsn) || lsn < 0) assertionFailed(`an LSN slot for ${lsn}`);
    if (this.count === 0) {
      this.low = lsn;
      this.high = lsn;
    } else if (lsn < this.low || lsn > this.high) {
      const low = Math.min(this.low, lsn);
      const high = Math.max(this.high, lsn);
      if (high - low + 1 > this.slots.length) this.grow(high - low + 1);
      this.low = low;
      this.high = high;
    }
    // `&` works on the LSN modulo 2^32, whose low bits are the LSN's: right for any safe integer.
    const slot = lsn & this.mask;
    if (this.slots[slot] === undefined) this.count += 1;
    this.slots[slot] = value;
  }

  /** Drops `lsn`'s value; returns whether there was one. */
  delete(lsn: number): boolean {
    if (this.get(lsn) === undefined) return false;
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
  }

  /** The values held, in LSN order. */
  *values(): Generator<T> {
    if (this.count === 0) return;
    for (let lsn = this.low; lsn <= this.high; lsn++) {
      const value = this.slots[lsn & this.mask];
      if (value !== undefined) yield value;
    }
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
