// `meshfed status` and `meshfed proxy-status`: what an agent serves and who is in sync.
import type { AgentStatus } from '../agent/agent.js';
import type { ProxyStatus } from '../xds/ads-server.js';
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
      `services:    ${s.federation.services} global`,
    ];
    for (const c of s.federation.conflicts) lines.push(`conflict:    ${c}`);
    return lines.join('\n') + '\n';
  });
}

export async function printProxyStatus(o: { agent: string[]; output: string }): Promise<void> {
  const format = parseFormat(o.output);
  const all: (ProxyStatus & { agentCluster: string })[] = [];
  for (const a of o.agent) {
    const r = await request<{ cluster: string; items: ProxyStatus[] }>(a, 'agent', 'GET', 'v1/proxies');
    for (const p of r.items) all.push({ ...p, agentCluster: r.cluster });
  }
  print({ items: all }, format, () =>
    table(
      ['CLUSTER', 'PROXY', 'CONNECTED', 'TYPES'],
      all.map((p) => [p.agentCluster, p.nodeId, age(p.connectedSince), summarizeTypes(p)]),
    ),
  );
}

function summarizeTypes(p: ProxyStatus): string {
  return Object.entries(p.types)
    .map(([url, t]) => {
      const short = url.split('.').pop() ?? url;
      const nacked = t.lastNack !== undefined && (!t.lastAckAt || t.lastNack.at >= t.lastAckAt);
      const state = nacked ? 'NACKED' : t.ackedVersion === t.lastSentVersion ? 'SYNCED' : 'STALE';
      return `${short}:${state}`;
    })
    .join(' ');
}
