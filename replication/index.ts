export { startNode, TxlogNode, type NodeStatus } from './node.js';
export { connect, Client, type ClientOptions } from './client.js';
export { type ClientReadAllOptions } from './client-reads.js';
export { type NodeOptions, type NodeArbiterOptions } from './options.js';
export { type ArbiterNodeStatus } from './leadership.js';
export { protocolVersion, parseAddress } from './protocol.js';
export { nodeNetwork, type Network, type Transport } from './transport.js';
export { type TlsFiles } from './tls-certificates.js';
export {
  openArbiter,
  parseArbiterUrl,
  arbiterDefaults,
  type Arbiter,
  type ArbiterOptions,
  type ArbiterStatus,
  type ArbiterUrl,
  type CampaignOutcome,
  type CampaignRequest,
  type InSyncSet,
  type InSyncUpdate,
  type LeaderKey,
} from './arbiter.js';
