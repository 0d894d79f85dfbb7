// Loading the Kubernetes client configuration the agent (discovery, the MCS
// writer) talks to its cluster with. One rule for every user of it: an explicit
// kubeconfig file (with an optional context) wins; otherwise client-node's
// default chain (KUBECONFIG, ~/.kube/config, then the in-cluster service
// account). A configuration that names no cluster is refused here, with the
// file and context in the message, instead of failing later on the first call.
// A plain-HTTP server (kubectl proxy, the test stand-in) is marked as needing no
// TLS verification: there is no TLS to verify, and client-node otherwise
// refuses a plain-HTTP server outright.
import { KubeConfig } from '@kubernetes/client-node';
import { MeshfedError, errorMessage } from '../util/errors.js';

export interface KubeConfigOptions {
  /** A kubeconfig file; unset: KUBECONFIG, ~/.kube/config, then in-cluster. */
  kubeconfig?: string;
  /** A context of that configuration; unset: its current-context. */
  context?: string;
}

export function loadKubeConfig(opts: KubeConfigOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  const where = opts.kubeconfig ? `kubeconfig ${opts.kubeconfig}` : 'the default kubeconfig (KUBECONFIG, ~/.kube/config or in-cluster)';
  try {
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new MeshfedError('invalid', `cannot load ${where}: ${errorMessage(err)}`, { cause: err });
  }
  if (opts.context) {
    if (!kc.getContextObject(opts.context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new MeshfedError('invalid', `${where} has no context "${opts.context}"${known.length ? ` (contexts: ${known.join(', ')})` : ''}`);
    }
    kc.setCurrentContext(opts.context);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new MeshfedError('invalid', `${where} names no cluster for context "${kc.getCurrentContext() || '(none)'}"`);
  return cluster.server.startsWith('http:') && !cluster.skipTLSVerify ? withoutTlsVerification(kc) : kc;
}

/** A copy of kc whose current cluster skips TLS verification (KubeConfig's clusters are read-only). */
export function withoutTlsVerification(kc: KubeConfig): KubeConfig {
  const copy = new KubeConfig();
  const current = kc.getCurrentCluster()?.name;
  copy.loadFromOptions({
    clusters: kc.getClusters().map((c) => (c.name === current ? { ...c, skipTLSVerify: true } : c)),
    users: kc.getUsers(),
    contexts: kc.getContexts(),
    currentContext: kc.getCurrentContext(),
  });
  return copy;
}

/** Where a KubeConfig points (for logs and status): server URL and context. */
export function describeKubeConfig(kc: KubeConfig): { server: string; context: string } {
  return { server: kc.getCurrentCluster()?.server ?? '', context: kc.getCurrentContext() };
}
