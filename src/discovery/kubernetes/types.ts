// The shapes of the Kubernetes objects discovery reads: only the fields it
// uses, all optional, as they arrive (a list through client-node's typed
// clients, where timestamps are Dates, or a watch event's plain JSON, where
// they are strings). Nothing here is trusted: the mapping checks every value.

export interface KubeMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: unknown;
  deletionTimestamp?: unknown;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: KubeMeta;
}

export interface KubeService extends KubeObject {
  spec?: {
    type?: string;
    clusterIP?: string;
    ports?: { name?: string; port: number; protocol?: string; appProtocol?: string }[];
  };
}

export interface KubeEndpointSlice extends KubeObject {
  addressType?: string;
  endpoints?: {
    addresses?: string[];
    conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null };
    nodeName?: string | null;
    zone?: string | null;
    targetRef?: { kind?: string; name?: string; namespace?: string };
  }[];
  ports?: { name?: string | null; port?: number | null; protocol?: string | null; appProtocol?: string }[] | null;
}

export interface KubePod extends KubeObject {
  spec?: { nodeName?: string; serviceAccountName?: string };
}

export type KubeNode = KubeObject;
export type KubeNamespace = KubeObject;
