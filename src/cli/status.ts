// `meshfed status` and `meshfed proxy-status`: what an agent serves and who is in sync.
import type { AgentStatus } from '../agent/agent.js';
import type { ProxySummary } from '../agent/proxy-status.js';
import { request } from './http.js';
import { age, parseFormat, print, table } from './output.js';

export async function printAgentStatus(o: { agent: string; output: string }): Promise<void> {
  const format = parseFormat(o.output);
  const s = await request<AgentStatus>(o.agent, 'agent', 'GET', 'v1/status');
  print(s, format, () => {
    const lines = [
      `cluster:     ${s.cluster}`,
      `ready:       ${s.ready ? 'yes' : `no (${s.notReadyReason ?? 'unknown'})`}`,
      `hub:         ${s.hub.address} ${s.hub.connected ? `connected ${age(s.hub.since)}` : `DISCONNECTED${s.hub.lastError ? `: ${s.hub.lastError}` : ''}`}`,
      `view:        revision ${s.viewRevision} (from ${s.viewSource})`,
      `xds:         ${s.xds} (${s.resources.listeners} listeners, ${s.resources.routes} routes, ${s.resources.clusters} clusters, ${s.resources.endpoints} endpoint sets)`,
      `push:        debounce ${s.push.debounceMs} ms, max delay ${s.push.maxDelayMs} ms; last recompute ${s.recompute.lastServices} service(s) in ${s.recompute.lastMs} ms`,
      `services:    ${s.federation.services} global`,
      ...trustLines(s),
    ];
    for (const c of s.federation.conflicts) lines.push(`conflict:    ${c}`);
    lines.push(...kubernetesLines(s));
    return lines.join('\n') + '\n';
  });
}

interface ClusterProxies {
  cluster: string;
  viewRevision: number;
  at?: string;
  /** From the hub: whether the agent is connected now, and its cluster's liveness (a lost agent's last report stays). */
  connected?: boolean;
  liveness?: string;
  items: ProxySummary[];
}

/** From the hub (every cluster) by default, or straight from agents with --agent. */
export async function printProxyStatus(o: { agent: string[]; hub: string; output: string }): Promise<void> {
  const format = parseFormat(o.output);
  let hubRevision: number | undefined;
  const clusters: ClusterProxies[] = [];
  if (o.agent.length > 0) {
    for (const a of o.agent) clusters.push(await request<ClusterProxies>(a, 'agent', 'GET', 'v1/proxies'));
  } else {
    const r = await request<{ revision: number; clusters: ClusterProxies[] }>(o.hub, 'hub', 'GET', 'api/v1alpha1/proxies');
    hubRevision = r.revision;
    clusters.push(...r.clusters);
  }
  const rows = clusters.flatMap((c) =>
    c.items.map((p) => ({
      agentCluster: c.cluster,
      ...(c.liveness && c.liveness !== 'Live' ? { clusterLiveness: c.liveness, reportedAt: c.at } : {}),
      ...p,
      // How far the agent's view (and so what this proxy was sent) lags the hub's latest state.
      behindRevisions: hubRevision === undefined ? undefined : Math.max(0, hubRevision - c.viewRevision),
    })),
  );
  rows.sort((a, b) => a.agentCluster.localeCompare(b.agentCluster) || a.nodeId.localeCompare(b.nodeId));
  print({ ...(hubRevision !== undefined ? { hubRevision } : {}), items: rows }, format, () => {
    const types = ['LDS', 'RDS', 'CDS', 'EDS'];
    const out = table(
      ['CLUSTER', 'PROXY', ...types, 'LAST-ACK', ...(hubRevision !== undefined ? ['BEHIND'] : []), 'CONNECTED'],
      rows.map((p) => {
        const ackAges = Object.values(p.types)
          .map((t) => t.sinceAckMs)
          .filter((x): x is number => x !== undefined);
        return [
          // A lost agent's proxies as it last reported them: they keep serving what they had.
          'clusterLiveness' in p ? `${p.agentCluster} (${p.clusterLiveness}, as reported ${p.reportedAt ? age(p.reportedAt) : '?'} ago)` : p.agentCluster,
          p.nodeId,
          ...types.map((t) => (p.types[t] ? `${p.types[t]!.state}${p.types[t]!.ackedVersion ? ` (${p.types[t]!.ackedVersion})` : ''}` : '-')),
          ackAges.length ? `${(Math.min(...ackAges) / 1000).toFixed(1)}s ago` : '-',
          ...(hubRevision !== undefined ? [p.behindRevisions ? `${p.behindRevisions} rev` : '0'] : []),
          age(p.connectedSince),
        ];
      }),
    );
    const nacks = rows.flatMap((p) =>
      Object.entries(p.types)
        .filter(([, t]) => t.nack)
        .map(([t, s]) => `  ${p.nodeId} ${t}: ${s.nack}${s.hint ? `\n    hint: ${s.hint}` : ''}`),
    );
    return out + (nacks.length ? `\nNACKs:\n${nacks.join('\n')}\n` : '');
  });
}

function trustLines(s: AgentStatus): string[] {
  const t = s.trust;
  if (!t) return [];
  const until = (iso: string) => {
    const sec = Math.round((Date.parse(iso) - Date.now()) / 1000);
    return sec >= 0 ? `in ${sec < 7200 ? `${sec}s` : `${Math.round(sec / 3600)}h`}` : `EXPIRED ${-sec}s ago`;
  };
  const lines = [
    `trust:       ${t.trustDomain ?? '(trust domain not known yet)'}; channel ${t.channel === 'mtls' ? 'mTLS' : 'INSECURE'}; bundle ${t.bundle.map((b) => b.fingerprint.slice(0, 16)).join(', ') || 'none'}${t.rotationPhase && t.rotationPhase !== 'none' ? ` (root rotation: ${t.rotationPhase})` : ''}`,
  ];
  if (t.agentCert) lines.push(`agent cert:  ${t.agentCert.spiffeId} serial ${t.agentCert.serial.slice(0, 16)}, expires ${until(t.agentCert.notAfter)}, renews ${until(t.agentCert.nextRenewal)}`);
  if (t.intermediate) {
    lines.push(
      `intermediate: ${t.intermediate.spiffeId} serial ${t.intermediate.serial.slice(0, 16)}, expires ${until(t.intermediate.notAfter)}, renews ${until(t.intermediate.nextRenewal)}, issuer ${t.intermediate.issuer?.slice(0, 16) ?? '?'}`,
    );
  } else lines.push('intermediate: none yet');
  if (t.intermediateError) lines.push(`intermediate error: ${t.intermediateError}`);
  if (t.lastError) lines.push(`trust error: ${t.lastError}`);
  return lines;
}

/** The Kubernetes source's lines: sync, connection (since when), refused permissions, problems. */
function kubernetesLines(s: AgentStatus): string[] {
  const k = s.discovery?.kubernetes;
  if (!k) return [];
  const conn = k.connected ? 'connected' : `DISCONNECTED since ${k.since ?? '?'} (serving the last state)${k.lastError ? `: ${k.lastError}` : ''}`;
  const lines = [
    `kubernetes:  ${k.server} (context ${k.context || '-'}); ${k.synced ? 'synced' : 'NOT SYNCED'}; ${conn}; ${k.counts.services} services (${k.counts.exported} exported), ${k.counts.workloads} workloads`,
  ];
  for (const f of k.forbidden) lines.push(`forbidden:   ${f.message}`);
  for (const p of k.problems.items) lines.push(`problem:     ${p.message}`);
  if (k.problems.total > k.problems.items.length) lines.push(`problem:     ... ${k.problems.total - k.problems.items.length} more`);
  const m = s.mcsImport;
  if (m) {
    const o = m.objects;
    const state = m.waiting ?? (m.lastError ? `FAILING since ${m.failingSince ?? '?'}: ${m.lastError}` : `last reconcile ${m.lastReconcile?.at ?? 'none yet'}`);
    lines.push(`mcs import:  ${o.serviceImports} ServiceImports, ${o.endpointSlices} EndpointSlices, ${o.serviceExports} ServiceExport statuses; ${state}`);
    for (const x of m.skipped) lines.push(`not imported: ${x.namespace}/${x.name}: ${x.reason}`);
    if (m.skippedTotal > m.skipped.length) lines.push(`not imported: ... ${m.skippedTotal - m.skipped.length} more`);
  }
  return lines;
}
