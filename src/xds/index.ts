// xDS serving: strict encoding, snapshots, the ADS server and gRPC bootstrap.
export { AdsServer } from './ads-server.js';
export type { AdsServerOptions, AdsEvent, ProxyStatus, ProxyTypeStatus } from './ads-server.js';
export { Snapshot, ResourceEncoder, contentHash } from './snapshot.js';
export type { SnapshotEntry } from './snapshot.js';
export { encodeResource, decodeResource, checkMessage, typeForUrl, protoRoot, xdsIncludeDirs } from './proto.js';
export { grpcBootstrap, nodeIdFor, parseNodeId } from './bootstrap.js';
export type { GrpcBootstrapOptions } from './bootstrap.js';
