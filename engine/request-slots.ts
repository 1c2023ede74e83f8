/**
 * Values by request (client id and request id) for the commit path's short-lived bookkeeping
 * (requests running; commits decided and calls journaled, not yet applied), held per client
 * rather than in a `Map` keyed by request.
 *
 * A `Map` keyed by request takes a new key and drops one per transaction, and V8's obsolete hash
 * tables then keep the values of whole runs of transactions alive until a full collection (see
 * `lsn-slots.ts`). Here the map's keys are the clients, which stay: each client's slot is kept
 * while it is empty, and a request's value is cleared from its slot when it goes. Empty slots
 * are dropped all at once when they are many (`emptySlotsMin`, and half the clients held), so
 * clients that come and go do not pile up.
 */
const emptySlotsMin = 1024;

interface ClientSlot<T> {
  /** The client's requests held, in no particular order, and their values (same index). */
  requestIds: number[];
  values: T[];
}

export class RequestSlots<T> {
  private readonly clients = new Map<string, ClientSlot<T>>();
  private count = 0;
  private emptySlots = 0;

  /** Requests held. */
  get size(): number {
    return this.count;
  }

  /** Clients with a slot (some may be empty). */
  get clientSlots(): number {
    return this.clients.size;
  }

  get(clientId: string, requestId: number): T | undefined {
    const slot = this.clients.get(clientId);
    if (slot === undefined) return undefined;
    const index = slot.requestIds.indexOf(requestId);
    return index < 0 ? undefined : slot.values[index];
  }

  set(clientId: string, requestId: number, value: T): void {
    let slot = this.clients.get(clientId);
    if (slot === undefined) {
      this.dropEmptySlotsIfMany();
      slot = { requestIds: [], values: [] };
      this.clients.set(clientId, slot);
    } else if (slot.requestIds.length === 0) {
      this.emptySlots -= 1;
    }
    const index = slot.requestIds.indexOf(requestId);
    if (index >= 0) {
      slot.values[index] = value;
      return;
    }
    slot.requestIds.push(requestId);
    slot.values.push(value);
    this.count += 1;
  }

  /** Drops the request's value; returns whether there was one. */
  delete(clientId: string, requestId: number): boolean {
    const slot = this.clients.get(clientId);
    if (slot === undefined) return false;
    const index = slot.requestIds.indexOf(requestId);
    if (index < 0) return false;
    // The last entry moves into the hole; `pop` clears the slot it leaves.
    const last = slot.requestIds.length - 1;
    slot.requestIds[index] = slot.requestIds[last]!;
    slot.values[index] = slot.values[last]!;
    slot.requestIds.pop();
    slot.values.pop();
    this.count -= 1;
    if (last === 0) this.emptySlots += 1;
    return true;
  }

  /** The client's highest request id held (0: none). */
  highestRequestId(clientId: string): number {
    const requestIds = this.clients.get(clientId)?.requestIds;
    let highest = 0;
    if (requestIds !== undefined) for (const requestId of requestIds) highest = Math.max(highest, requestId);
    return highest;
  }

  clear(): void {
    this.clients.clear();
    this.count = 0;
    this.emptySlots = 0;
  }

  private dropEmptySlotsIfMany(): void {
    if (this.emptySlots < emptySlotsMin || this.emptySlots * 2 < this.clients.size) return;
    for (const [clientId, slot] of this.clients) if (slot.requestIds.length === 0) this.clients.delete(clientId);
    this.emptySlots = 0;
  }
}
