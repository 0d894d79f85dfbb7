// The hub <-> agent protocol (proto/meshfed/agent_channel.proto): loading and
// the message shapes both ends use. Agents dial out; the hub only listens.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { protoDir } from '../util/paths.js';

export interface Hello {
  cluster: string;
  network: string;
  region: string;
  zones: string[];
  agentVersion: string;
  viewRevision: string | number;
  importNamespaces?: string[];
  /** The agent reassembles views sent in several messages (View.more). */
  viewChunks?: boolean;
}
export interface Report {
  generation: string | number;
  full: boolean;
  objectsJson?: string;
  upsertsJson?: string;
  deletesJson?: string;
}
export interface ProxyStatusReport {
  proxiesJson: string;
  viewRevision: string | number;
  identitiesJson?: string;
}
export interface ViewAck {
  revision: string | number;
}
export interface Csr {
  csrPem: string;
}
export interface AgentMessage {
  hello?: Hello;
  report?: Report;
  viewAck?: ViewAck;
  proxyStatus?: ProxyStatusReport;
  intermediateCsr?: Csr;
  agentCertCsr?: Csr;
  heartbeat?: Record<string, never>;
}

/** How often a connected agent sends a Heartbeat (the Mesh's suspectAfter is at least two of them). */
export const HEARTBEAT_INTERVAL_MS = 1000;
export interface View {
  revision: string | number;
  full: boolean;
  upsertsJson: string;
  deletesJson: string;
  /** More messages of the same view follow (see agent_channel.proto). */
  more?: boolean;
}
export interface TrustBundle {
  rootsPem: string;
  trustDomain: string;
  signerPem: string;
  intermediateTtlMs: string | number;
  rotationPhase: string;
}
export interface Issued {
  certChainPem: string;
  rootsPem: string;
}
export interface HubMessage {
  welcome?: { hubVersion: string; revision?: string | number };
  view?: View;
  reportAck?: { generation: string | number; revision: string | number };
  rejected?: { code: string; message: string };
  trustBundle?: TrustBundle;
  intermediate?: Issued;
  agentCert?: Issued;
  csrRejected?: { what: string; message: string };
}
export interface JoinRequest {
  tokenId: string;
  tokenSecret: string;
  cluster: string;
  csrPem: string;
}
export interface JoinResponse {
  certChainPem: string;
  rootsPem: string;
  trustDomain: string;
}

/** The hub writes views pre-encoded (one encoding shared by every agent that gets them) and the rest as objects. */
export type AgentStream = grpc.ServerDuplexStream<AgentMessage, HubMessage | Buffer>;
export type HubStream = grpc.ClientDuplexStream<AgentMessage, HubMessage>;

let cached: grpc.ServiceDefinition | undefined;
let serverDef: grpc.ServiceDefinition | undefined;
let clientCtor: grpc.ServiceClientConstructor | undefined;

function load(): void {
  if (cached) return;
  const def = protoLoader.loadSync(join(protoDir(), 'meshfed', 'agent_channel.proto'), {
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: false,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    meshfed: { v1alpha1: { AgentChannel: grpc.ServiceClientConstructor } };
  };
  clientCtor = pkg.meshfed.v1alpha1.AgentChannel;
  cached = clientCtor.service;
}

/** The service definition as generated from the proto (what clients use). */
export function agentChannelService(): grpc.ServiceDefinition {
  load();
  return cached!;
}

/** The hub's service definition: like agentChannelService, but a response that is already a Buffer is written as it is. */
export function agentChannelServerService(): grpc.ServiceDefinition {
  if (serverDef) return serverDef;
  const def = agentChannelService();
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(def)) {
    const serialize = m.responseSerialize as (v: unknown) => Buffer;
    out[name] = { ...m, responseSerialize: (v: unknown) => (Buffer.isBuffer(v) ? v : serialize(v)) };
  }
  serverDef = out as grpc.ServiceDefinition;
  return serverDef;
}

/** Encodes one HubMessage (done once per view message, whatever the number of agents receiving it). */
export function encodeHubMessage(m: HubMessage): Buffer {
  return agentChannelService()['Connect']!.responseSerialize(m) as Buffer;
}

/** Largest message the agent accepts from the hub. Views come in chunks far below it; this is headroom, not a target. */
export const MAX_HUB_MESSAGE_BYTES = 512 * 1024 * 1024;
/** Largest message the hub accepts from an agent (a full report is one message: a whole cluster's Services and Workloads). */
export const MAX_AGENT_MESSAGE_BYTES = 512 * 1024 * 1024;

export interface AgentChannelClient extends grpc.Client {
  connect(options?: grpc.CallOptions): HubStream;
  join(req: JoinRequest, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: JoinResponse) => void): grpc.ClientUnaryCall;
}

/**
 * A client of the agent channel. `credentials` defaults to plaintext (a hub
 * with --insecure-channel). With TLS the target name is fixed: agents check
 * the hub's SPIFFE ID, not a host name, and an IP as TLS server name is not
 * allowed (RFC 6066).
 */
export function agentChannelClient(address: string, credentials?: grpc.ChannelCredentials): AgentChannelClient {
  load();
  return new clientCtor!(address, credentials ?? grpc.credentials.createInsecure(), {
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    // gRPC's own reconnect backoff (1 s growing to 120 s by default) would keep
    // an agent away from a hub that came back long after its own redial: the
    // hub's return must reach every agent within about a second.
    'grpc.initial_reconnect_backoff_ms': 200,
    'grpc.max_reconnect_backoff_ms': 500,
    ...(credentials ? { 'grpc.ssl_target_name_override': HUB_TLS_NAME, 'grpc.default_authority': HUB_TLS_NAME } : {}),
    // gRPC's default is 4 MiB; the hub chunks views (about 1 MiB per message), but a
    // single large object or an older hub must not cut the agent off for good.
    'grpc.max_receive_message_length': MAX_HUB_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_AGENT_MESSAGE_BYTES,
  }) as unknown as AgentChannelClient;
}

/** The TLS server name agents use for the hub (its certificate carries it as a DNS SAN too). */
export const HUB_TLS_NAME = 'hub.meshfed.internal';

// The kinds the hub sends to agents are VIEW_KINDS in src/registry.ts (derived from the kinds and policy plugins).
/** Kinds an agent may report for its own cluster. */
export const REPORT_KINDS = new Set(['Service', 'Workload']);
