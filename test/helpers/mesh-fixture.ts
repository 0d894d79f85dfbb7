// API objects for tests: clusters, services and workloads, built the way agents
// report them, then federated with the real federate().
import { API_VERSION, type Cluster, type Health, type Service, type ServicePort, type Workload } from '../../src/api/index.js';
import { federate } from '../../src/federation/federate.js';
import type { FederatedView } from '../../src/federation/types.js';

export function cluster(name: string, region: string, zones: string[], network = 'default'): Cluster {
  return { apiVersion: API_VERSION, kind: 'Cluster', metadata: { name }, spec: { network, region, zones } };
}

export function service(clusterName: string, name: string, namespace: string, ports: ServicePort[], opts: { exported?: boolean; since?: string } = {}): Service {
  return {
    apiVersion: API_VERSION,
    kind: 'Service',
    metadata: { name, namespace, creationTimestamp: opts.since ?? '2024-01-01T00:00:00Z' },
    spec: { cluster: clusterName, ports, exported: opts.exported ?? true },
  };
}

export function workload(
  clusterName: string,
  name: string,
  namespace: string,
  svc: string,
  address: string,
  ports: Record<string, number>,
  opts: { zone?: string; health?: Health; labels?: Record<string, string> } = {},
): Workload {
  const w: Workload = {
    apiVersion: API_VERSION,
    kind: 'Workload',
    metadata: { name, namespace, labels: opts.labels ?? {} },
    spec: { cluster: clusterName, service: svc, address, ports, serviceAccount: 'default', health: opts.health ?? 'HEALTHY' },
  };
  if (opts.zone) w.spec.zone = opts.zone;
  return w;
}

export const GRPC_PORT: ServicePort = { name: 'grpc', port: 8080, protocol: 'GRPC' };

export interface HelloworldBackend {
  cluster: string;
  version: string;
  address: string;
  port: number;
  zone?: string;
  health?: Health;
}

/**
 * helloworld.sample in cluster1..3 (regions and zones as a real fleet), one
 * workload per backend given (workload name helloworld-<version>-<i>).
 */
export function helloworldView(backends: HelloworldBackend[]): FederatedView {
  const clusters = [cluster('cluster1', 'us-east1', ['us-east1-a', 'us-east1-b']), cluster('cluster2', 'us-west1', ['us-west1-a']), cluster('cluster3', 'eu-west1', ['eu-west1-a'])];
  const services = clusters.map((c) => service(c.metadata.name, 'helloworld', 'sample', [GRPC_PORT]));
  const workloads = backends.map((b, i) => {
    const opts: { zone?: string; health?: Health; labels: Record<string, string> } = { labels: { app: 'helloworld', version: b.version } };
    if (b.zone) opts.zone = b.zone;
    if (b.health) opts.health = b.health;
    return workload(b.cluster, `helloworld-${b.version}-${i}`, 'sample', 'helloworld', b.address, { grpc: b.port }, opts);
  });
  return federate({ clusters, services, workloads });
}
