// The FailoverPolicy plugin: precedence (the oldest policy that selects a
// service for a source cluster wins, whole), status (unknown clusters in its
// order), and the xDS hook: locality priorities of the global names'
// assignments. Pure.
import { applicable, clientPolicyStatus, policyId } from '../common.js';
import type { PolicyPlugin, PolicyStatusOut, Winner } from '../plugin.js';
import { FailoverPolicyKind, type FailoverPolicy, type FailoverPolicySpec } from './kind.js';
import { priorities } from './xds.js';

export type FailoverResolved = Winner<Pick<FailoverPolicySpec, 'affinity' | 'order' | 'clusters'>>;

export const FailoverPolicyPlugin: PolicyPlugin<FailoverPolicy, FailoverResolved> = {
  kind: FailoverPolicyKind,
  enforcedBy: 'client',

  resolve(policies, service, sourceCluster, lose) {
    let won: FailoverResolved | undefined;
    for (const p of applicable(policies, service, sourceCluster)) {
      if (won) {
        lose(p, 'spec', won.from);
        continue;
      }
      const value: FailoverResolved['value'] = { affinity: p.spec.affinity, order: p.spec.order };
      if (p.spec.clusters) value.clusters = p.spec.clusters;
      won = { value, from: policyId(p) };
    }
    return won;
  },

  status(view, policies) {
    const out = new Map<string, PolicyStatusOut>();
    const clusters = view.clusters.map((c) => c.name);
    for (const p of policies) {
      const { status } = clientPolicyStatus(view, p);
      p.spec.clusters?.forEach((c, i) => {
        if (!clusters.includes(c)) status.problems.push({ path: `/spec/clusters/${i}`, message: `no member cluster "${c}"` });
      });
      out.set(policyId(p), status);
    }
    return out;
  },

  // Every FailoverPolicy reorders where calls go: one action.
  actionsOf: () => ['failover'],

  xds: {
    // Failover applies to what the global names reach; a per-cluster name is pinned to its cluster.
    // No FailoverPolicy: the affinity of the Service in the client's own cluster (Cilium's
    // service.cilium.io/affinity), with the default locality tiers; an explicit policy wins.
    priorities: (ctx, backend, r, localities) => {
      if (!backend.global) return undefined;
      if (r) return priorities(ctx, r.value, localities);
      const own = backend.service.parts.find((p) => p.cluster === ctx.cluster)?.affinity;
      return own ? priorities(ctx, { affinity: own, order: ['zone', 'region'] }, localities) : undefined;
    },
  },
};
