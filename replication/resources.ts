/**
 * What a node holds in memory against each limit: its store's structures (`engine/resources.ts`)
 * and its own (connections, handshakes, requests, replication and the determinism check). It is
 * `status().resources`, so `txlog status --json` shows it and the simulator checks it after
 * every step. Asking costs a pass over the open connections (at most `clientConnectionsMax` and
 * the peer links) and changes nothing.
 */
import type { ResourceUsage } from '../engine/resources.js';
import type { DeterminismCheck } from './determinism.js';
import { acceptedPeerLinksMax, deferredMessagesMax, sendBufferBytesMax, verifyQueueMax, violationsKeptMax } from './limits.js';
import type { PeerLinks } from './links.js';
import type { ResolvedNodeOptions } from './options.js';
import type { BackupReceiver } from './receiver.js';
import type { ClientRequests } from './requests.js';

/** The parts of a node its usage is read from. */
export interface NodeResourceParts {
  options: ResolvedNodeOptions;
  /** The store's usage (`Store.resourceUsage`). */
  store: ResourceUsage;
  peers: PeerLinks;
  clients: ClientRequests;
  receiver: BackupReceiver;
  determinism: DeterminismCheck;
}

export function nodeResourceUsage(parts: NodeResourceParts): ResourceUsage {
  const { options, peers, clients, receiver, determinism } = parts;
  let busiest = 0;
  let bufferedBytes = 0;
  for (const [connection, client] of clients.connections()) {
    busiest = Math.max(busiest, client.running);
    bufferedBytes = Math.max(bufferedBytes, connection.bufferedBytes);
  }
  for (const link of peers.links) bufferedBytes = Math.max(bufferedBytes, link.connection.bufferedBytes);
  // Added to the store's (a fresh object each call), not copied: status runs this every time.
  return Object.assign(parts.store, {
    clientConnections: { size: clients.count, limit: options.clientConnectionsMax },
    handshakes: { size: peers.handshaking, limit: options.clientConnectionsMax },
    clientRequests: { size: clients.requestsRunning, limit: options.clientConnectionsMax * options.requestsPerConnectionMax },
    requestsOnOneConnection: { size: busiest, limit: options.requestsPerConnectionMax },
    // Its own dials hold one link per peer address; it accepts up to `acceptedPeerLinksMax` more.
    peerLinks: { size: peers.links.size, limit: acceptedPeerLinksMax + options.peers.length },
    // A send is refused once the queue is past `sendBufferBytesMax`: it holds one frame more at most.
    sendBufferBytes: { size: bufferedBytes, limit: sendBufferBytesMax + options.frameBytesMax },
    replicationMessagesDeferred: { size: receiver.deferredMessageCount, limit: deferredMessagesMax },
    determinismChecksQueued: { size: determinism.queuedChecks, limit: verifyQueueMax },
    determinismJournalEntries: determinism.journalEntries,
    determinismViolationsKept: { size: determinism.violationsKept, limit: violationsKeptMax },
  });
}
