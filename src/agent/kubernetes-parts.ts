// The agent's Kubernetes parts: the discovery source and the MCS importer over
// one KubeConfig. Its own module so that the agent loads @kubernetes/client-node
// (about a second of start-up CPU) only in Kubernetes mode: agent.ts imports
// this file dynamically, and only its types statically.
import type { KubeConfig } from '@kubernetes/client-node';
import { KubernetesSource } from '../discovery/kubernetes/source.js';
import type { FederatedView } from '../federation/types.js';
import { loadKubeConfig } from '../kube/config.js';
import { McsImporter } from '../kube/mcs-importer.js';

export interface KubernetesOptions {
  /** kubeconfig file and context (default: in-cluster, KUBECONFIG, ~/.kube/config). */
  kubeconfig?: string;
  context?: string;
  /** Namespaces to discover (default all but kube-system, kube-public, kube-node-lease). */
  namespaces?: string[];
  syncTimeoutMs?: number;
  /** false: write no ServiceImports (default true). */
  mcsImport?: boolean;
}

export interface KubernetesParts {
  kubeConfig?: KubeConfig;
  source?: KubernetesSource;
  importer?: McsImporter;
}

export function kubernetesParts(o: {
  cluster: string;
  kubernetes?: KubernetesOptions;
  /** An importer over this KubeConfig even without Kubernetes discovery (tests). */
  mcsKubeConfig?: KubeConfig;
  importNamespaces?: string[];
  /** The view the importer writes from; undefined until the agent serves a complete one. */
  view: () => FederatedView | undefined;
}): KubernetesParts {
  const parts: KubernetesParts = {};
  const k = o.kubernetes;
  if (k) {
    parts.kubeConfig = loadKubeConfig({ ...(k.kubeconfig ? { kubeconfig: k.kubeconfig } : {}), ...(k.context ? { context: k.context } : {}) });
    parts.source = new KubernetesSource({
      cluster: o.cluster,
      kubeConfig: parts.kubeConfig,
      ...(k.namespaces?.length ? { namespaces: k.namespaces } : {}),
      ...(k.syncTimeoutMs !== undefined ? { syncTimeoutMs: k.syncTimeoutMs } : {}),
    });
  }
  // In Kubernetes mode the MCS consumer side is on by default, through the source's KubeConfig.
  const mcsKubeConfig = o.mcsKubeConfig ?? (k?.mcsImport !== false ? parts.kubeConfig : undefined);
  if (mcsKubeConfig) {
    parts.importer = new McsImporter({ kubeConfig: mcsKubeConfig, cluster: o.cluster, view: o.view, ...(o.importNamespaces?.length ? { importNamespaces: o.importNamespaces } : {}) });
  }
  return parts;
}
