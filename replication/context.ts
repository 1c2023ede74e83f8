/**
 * Who a node is and what it knows, shared by its parts (links, sender, receiver, determinism
 * check, request handling): its id, role and epoch, its store's replication port, its clock and
 * its open peer links. The parts see the read-only `NodeContext`; only the node's role state
 * machine (`node.ts`) holds the `NodeState` behind it and changes the role and the epoch.
 */
import { assertionFailed } from '../wal/assert.js';
import type { Clock, Random } from '../wal/platform.js';
import type { Connection } from './connection.js';
import type { ReplicatedStore } from './engine-port.js';
import type { ResolvedNodeOptions } from './options.js';
import type { PeerState, Role } from './protocol.js';

/** One open connection to a peer node (`links.ts` opens and closes them). */
export interface PeerLink {
  connection: Connection;
  /** Set when the peer told us its state. */
  state: PeerState | undefined;
  lastHeardMs: number;
  dialed: boolean;
}

export interface NodeContext {
  readonly options: ResolvedNodeOptions;
  readonly store: ReplicatedStore;
  readonly clock: Clock;
  readonly random: Random;
  /** Open peer links (`PeerLinks` adds and removes them). */
  readonly links: ReadonlySet<PeerLink>;
  /** `options.nodeId`, or the first address actually bound. */
  readonly nodeId: string;
  readonly role: Role;
  /** Highest epoch this node has seen anywhere (fencing). */
  readonly epoch: number;
  /** The node is closing: loops stop, late connections are dropped. */
  readonly closed: boolean;
  /** Raises the epoch this node knows of (never lowers it). */
  observeEpoch(epoch: number): void;
  log(message: string): void;
}

/** The role changes a node may make; anything else is a bug. */
const allowedRoleChanges: Readonly<Record<Role, readonly Role[]>> = {
  // Winning the decision (or forced), or following a primary.
  waiting: ['primary', 'backup'],
  // Following a new primary, promoting (through waiting), or winning once the primary is gone.
  backup: ['backup', 'waiting', 'primary'],
  // Only a higher epoch displaces a primary.
  primary: ['waiting'],
};

/** Who leads between two waiting nodes, the same on both sides: higher epoch, more log, configured primary, lower id. */
export function winsAgainst(mine: PeerState, peer: PeerState): boolean {
  if (mine.lastEpoch !== peer.lastEpoch) return mine.lastEpoch > peer.lastEpoch;
  if (mine.lastLsn !== peer.lastLsn) return mine.lastLsn > peer.lastLsn;
  if (mine.configuredRole !== peer.configuredRole) return mine.configuredRole === 'primary';
  return mine.nodeId < peer.nodeId;
}

export class NodeState implements NodeContext {
  readonly links = new Set<PeerLink>();
  nodeId: string;
  epoch: number;
  closed = false;
  private roleValue: Role = 'waiting';

  constructor(
    readonly options: ResolvedNodeOptions,
    readonly store: ReplicatedStore,
    readonly clock: Clock,
    readonly random: Random,
    private readonly write: (line: string) => void,
  ) {
    this.nodeId = options.nodeId;
    this.epoch = store.epoch;
  }

  get role(): Role {
    return this.roleValue;
  }

  changeRole(next: Role): void {
    if (!(allowedRoleChanges[this.roleValue].includes(next))) assertionFailed(`role change ${this.roleValue} → ${next} is not allowed`);
    this.roleValue = next;
    // The release gate depends on the role (a waiting node releases nothing new, a backup all it
    // wrote): look again, or records held while waiting stay held after the node follows a
    // primary (found by the simulator: a backup's join never went out, and the pair never
    // formed again).
    this.store.releaseMore();
  }

  observeEpoch(epoch: number): void {
    this.epoch = Math.max(this.epoch, epoch);
  }

  log(message: string): void {
    this.write(`[${this.nodeId}] ${message}`);
  }
}
