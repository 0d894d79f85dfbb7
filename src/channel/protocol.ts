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
}
export interface ViewAck {
  revision: string | number;
}
export interface AgentMessage {
  hello?: Hello;
  report?: Report;
  viewAck?: ViewAck;
  proxyStatus?: ProxyStatusReport;
}
export interface View {
  revision: string | number;
  full: boolean;
  upsertsJson: string;
  deletesJson: string;
}
export interface HubMessage {
  welcome?: { hubVersion: string };
  view?: View;
  reportAck?: { generation: string | number; revision: string | number };
  rejected?: { code: string; message: string };
}

export type AgentStream = grpc.ServerDuplexStream<AgentMessage, HubMessage>;
export type HubStream = grpc.ClientDuplexStream<AgentMessage, HubMessage>;

let cached: grpc.ServiceDefinition | undefined;
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

export function agentChannelService(): grpc.ServiceDefinition {
  load();
  return cached!;
}

export interface AgentChannelClient extends grpc.Client {
  connect(options?: grpc.CallOptions): HubStream;
}

export function agentChannelClient(address: string): AgentChannelClient {
  load();
  return new clientCtor!(address, grpc.credentials.createInsecure(), {
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
  }) as unknown as AgentChannelClient;
}

/** Kinds the hub sends to agents. */
export const VIEW_KINDS = new Set(['Cluster', 'Mesh', 'Service', 'Workload', 'TrafficPolicy', 'FailoverPolicy', 'AccessPolicy']);
/** Kinds an agent may report for its own cluster. */
export const REPORT_KINDS = new Set(['Service', 'Workload']);
