// xDS serving: strict encoding, the snapshot cache (cache/), the ADS transport (server/), the AdsServer facade and bootstraps.
export { AdsServer } from './ads-server.js';
export type { AdsServerOptions, AdsEvent, AdsStats, ProxyStatus, ProxyTypeStatus, ResourceChange, XdsProtocol } from './ads-server.js';
export { ResourceCache, contentHash, encodeEntry } from './cache/snapshot.js';
export type { SnapshotEntry, SnapshotView } from './cache/snapshot.js';
export { encodeResource, encodeJsonMessage, decodeResource, checkMessage, typeForUrl, protoRoot, loadBootstrapProtos, xdsIncludeDirs } from './proto.js';
export { grpcBootstrap, envoyBootstrap, encodeEnvoyBootstrap, ENVOY_XDS_CLUSTER, nodeIdFor, parseNodeId } from './bootstrap.js';
export type { GrpcBootstrapOptions, EnvoyBootstrapOptions } from './bootstrap.js';
