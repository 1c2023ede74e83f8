/** What a node reports about itself (`status`, over the network and in `txlog status`). */
import type { Divergence } from '../engine/replay.js';
import type { ResourceUsage } from '../engine/resources.js';
import type { NodeContext } from './context.js';
import type { DeterminismCheck } from './determinism.js';
import type { ArbiterNodeStatus } from './leadership.js';
import type { ReplicatedStore } from './engine-port.js';
import type { PeerLinks } from './links.js';
import type { Role } from './protocol.js';
import type { BackupReceiver } from './receiver.js';
import type { ClientRequests } from './requests.js';
import { nodeResourceUsage } from './resources.js';
import type { PrimarySender } from './sender.js';

export interface NodeStatus {
  nodeId: string;
  role: Role;
  epoch: number;
  lastLsn: number;
  appliedLsn: number;
  /** Primary: no backup in sync (serving alone, or holding/failing writes per policy). */
  alone: boolean;
  /** Primary: a backup is in sync and acknowledging. Backup: caught up with its primary. */
  inSync: boolean;
  /** Backup: its primary answered its join (the two logs agree where they meet); it takes no records before. */
  joined: boolean;
  /** Primary: records its backup has not acknowledged yet. */
  backupLagRecords: number;
  replicaAckedLsn: number;
  replicaDurableLsn: number;
  /** Primary whose backup is gone past replicaTimeoutMs under onReplicaLost 'fail'. */
  replicaUnavailable: boolean;
  peerLinks: number;
  clients: number;
  /** Client sessions the store keeps (their reply windows), live in memory. */
  clientSessions: number;
  checkedCommits: number;
  skippedChecks: number;
  determinismViolations: number;
  lastViolation: Divergence | undefined;
  addresses: string[];
  /**
   * What the node holds in memory, structure by structure, against the limit that bounds each
   * (`replication/resources.ts`, `engine/resources.ts`; README "Errors and limits").
   */
  resources: ResourceUsage;
  /**
   * Only with an arbiter: etcd's view (reachable, the leader key's holder and its lease, the
   * in-sync set, refreshed every `renewIntervalMs`), this node's lease, and why it does not lead.
   */
  arbiter?: ArbiterNodeStatus;
}

/** The parts of a node its status is read from. */
export interface StatusSources {
  /** Id, role, epoch and options. */
  state: NodeContext;
  store: ReplicatedStore;
  sender: PrimarySender;
  receiver: BackupReceiver;
  determinism: DeterminismCheck;
  peers: PeerLinks;
  clients: ClientRequests;
  clientSessions: number;
  arbiter: ArbiterNodeStatus | undefined;
}

export function statusOf(sources: StatusSources): NodeStatus {
  const { state, store, sender, receiver, determinism, peers, clients } = sources;
  const isPrimary = state.role === 'primary';
  const status: NodeStatus = {
    nodeId: state.nodeId,
    role: state.role,
    epoch: state.epoch,
    lastLsn: store.lastLsn,
    appliedLsn: store.appliedLsn,
    alone: isPrimary && (sender.alone || !sender.inSync),
    inSync: isPrimary ? sender.inSync : receiver.inSync,
    joined: state.role === 'backup' && receiver.joined,
    backupLagRecords: isPrimary ? Math.max(0, store.lastLsn - sender.ackedLsn) : 0,
    replicaAckedLsn: sender.ackedLsn,
    replicaDurableLsn: sender.durableLsn,
    replicaUnavailable: sender.replicaUnavailable,
    peerLinks: peers.links.size,
    clients: clients.count,
    clientSessions: sources.clientSessions,
    checkedCommits: determinism.checkedCommits,
    skippedChecks: determinism.skippedChecks,
    determinismViolations: determinism.determinismViolations,
    lastViolation: determinism.lastViolation,
    addresses: peers.addresses,
    resources: nodeResourceUsage({ options: state.options, store: store.resourceUsage(), peers, clients, receiver, determinism }),
  };
  if (sources.arbiter !== undefined) status.arbiter = sources.arbiter;
  return status;
}
