// `meshfed describe KIND NAME`: one object for people. Its metadata, its spec
// (YAML), what the hub computes about it (a policy: the services, clusters and
// workloads it selects, conflicts it lost and problems; a Cluster: its agent;
// a globalservice: every cluster's part, its endpoints and their health) and
// its recent changes (the last writes to it in the audit log; a caller who may
// not read the audit log is told so, the rest still prints). The hub computes
// policy selection at read time (src/hub/api-status.ts): describe only prints it.
import { stringify } from 'yaml';
import type { ApiObject } from '../api/index.js';
import type { ChainedAuditRecord } from '../audit/chain.js';
import type { GlobalService } from '../federation/types.js';
import type { PolicyStatusOut } from '../policies/plugin.js';
import { errorMessage, MeshfedError } from '../util/errors.js';
import { isGlobalServices, kindOrUsage } from './get.js';
import { request } from './http.js';
import { age, table } from './output.js';
import { POLICY_KINDS } from '../registry.js';

export interface DescribeFlags {
  namespace?: string;
  cluster?: string;
  hub: string;
}

/** Recent changes shown, newest first. */
const RECENT = 5;

export async function describeCommand(kind: string, name: string, o: DescribeFlags): Promise<void> {
  if (isGlobalServices(kind)) return void process.stdout.write(await describeGlobalService(name, o));
  const def = kindOrUsage(kind);
  if (def.namespaced && !o.namespace) throw new MeshfedError('usage', `${def.kind} is namespaced: pass -n NAMESPACE`);
  if (def.discovered && !o.cluster) throw new MeshfedError('usage', `${def.kind} belongs to a cluster: pass --cluster NAME`);
  const qs = new URLSearchParams();
  if (def.namespaced) qs.set('namespace', o.namespace!);
  if (o.cluster) qs.set('cluster', o.cluster);
  const obj = await request<ApiObject>(o.hub, 'hub', 'GET', `api/v1alpha1/${def.plural}/${encodeURIComponent(name)}?${qs}`);
  let out = metadata(obj);
  out += section('Spec', stringify(obj.spec ?? {}));
  if (POLICY_KINDS.has(obj.kind)) out += policyStatus(obj.status as PolicyStatusOut | undefined);
  else if (obj.kind === 'Cluster') out += clusterStatus(obj.status as ClusterStatusOut | undefined);
  else if (obj.status !== undefined) out += section('Status', stringify(obj.status));
  out += await recentChanges(obj, o.hub);
  process.stdout.write(out);
}

function field(label: string, value: string): string {
  return `${(label + ':').padEnd(14)}${value}\n`;
}

function section(title: string, body: string): string {
  const lines = body.trimEnd().split('\n');
  return `${title}:\n${lines.map((l) => (l ? `  ${l}` : l)).join('\n')}\n`;
}

function pairs(m: Record<string, string> | undefined): string {
  const e = Object.entries(m ?? {});
  return e.length ? e.map(([k, v]) => `${k}=${v}`).join(', ') : '<none>';
}

function metadata(obj: ApiObject): string {
  const m = obj.metadata;
  let out = field('Name', m.name);
  if (m.namespace) out += field('Namespace', m.namespace);
  out += field('Kind', obj.kind);
  out += field('Labels', pairs(m.labels));
  out += field('Annotations', pairs(m.annotations));
  if (m.creationTimestamp) out += field('Created', `${m.creationTimestamp} (${age(m.creationTimestamp)} ago)`);
  out += field('Version', `${m.resourceVersion ?? '-'} (generation ${m.generation ?? '-'})`);
  return out;
}

function list(items: string[] | undefined): string {
  return items && items.length ? items.join(', ') : '<none>';
}

function policyStatus(st: PolicyStatusOut | undefined): string {
  if (!st) return 'Selects:      <not computed>\n';
  let out = 'Selects:\n';
  out += `  Services:     ${list(st.services)}\n`;
  out += `  Clusters:     ${list(st.clusters)}\n`;
  if (st.destinations) out += `  Workloads:    ${list(st.destinations)}\n`;
  if (st.sources) out += `  Sources:      ${list(st.sources)}\n`;
  if (st.services.length === 0) out += '  (it selects no service: check spec.destinations against `meshfed get globalservices`)\n';
  out += st.conflicts.length ? `Conflicts:\n${st.conflicts.map((c) => `  ${c.message}`).join('\n')}\n` : 'Conflicts:    <none>\n';
  out += st.problems.length ? `Problems:\n${st.problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}\n` : 'Problems:     <none>\n';
  return out;
}

interface ClusterStatusOut {
  agent?: { connected: boolean; since?: string; lastSeen?: string; version?: string; viewVersion?: string; message?: string };
  liveness?: { state: string; since: string; lastHeartbeat?: string };
  services?: number;
  workloads?: number;
}

function clusterStatus(st: ClusterStatusOut | undefined): string {
  const a = st?.agent;
  let out = 'Agent:\n';
  if (!a) out += '  State:        Never connected (make a join token: meshfed cluster add NAME)\n';
  else {
    out += `  State:        ${a.connected ? 'Connected' : 'Disconnected'}${a.since ? ` since ${a.since}` : ''}\n`;
    if (a.lastSeen) out += `  Last seen:    ${a.lastSeen} (${age(a.lastSeen)} ago)\n`;
    if (a.version) out += `  Version:      ${a.version}\n`;
    if (a.viewVersion) out += `  View:         ${a.viewVersion}\n`;
    if (a.message) out += `  Message:      ${a.message}\n`;
  }
  const lv = st?.liveness;
  if (lv) {
    out += `Liveness:     ${lv.state} since ${lv.since} (${age(lv.since)} ago)\n`;
    if (lv.lastHeartbeat && lv.state !== 'Live') {
      out += `  Last heard:   ${lv.lastHeartbeat} (${age(lv.lastHeartbeat)} ago); ${
        lv.state === 'Withdrawn' ? 'its endpoints are served at the last priority elsewhere' : "its endpoints stay where they are, marked stale, until the Mesh's liveness.holdDown"
      }\n`;
    }
  }
  out += field('Services', String(st?.services ?? 0));
  out += field('Workloads', String(st?.workloads ?? 0));
  return out;
}

/** The last writes to the object, from the audit log (read Audit permission). */
async function recentChanges(obj: ApiObject, hub: string): Promise<string> {
  const q = new URLSearchParams({ kind: obj.kind, object: obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name, limit: String(RECENT) });
  try {
    const r = await request<{ items: ChainedAuditRecord[] }>(hub, 'hub', 'GET', `api/v1alpha1/audit?${q}`);
    if (r.items.length === 0) return 'Recent changes: <none in the audit log>\n';
    const rows = r.items.map((x) => [x.time, x.who, x.verb, x.outcome, x.revision === undefined ? '-' : String(x.revision), x.reason ?? '']);
    return section('Recent changes', table(['TIME', 'WHO', 'VERB', 'OUTCOME', 'REVISION', 'REASON'], rows));
  } catch (err) {
    return `Recent changes: unavailable (${errorMessage(err)})\n`;
  }
}

async function describeGlobalService(name: string, o: DescribeFlags): Promise<string> {
  const r = await request<{ items: GlobalService[] }>(o.hub, 'hub', 'GET', 'api/v1alpha1/globalservices');
  const matches = r.items.filter((s) => (s.name === name || s.hostnames.includes(name)) && (!o.namespace || s.namespace === o.namespace));
  if (matches.length === 0) throw new MeshfedError('not-found', `no global service named ${name}${o.namespace ? ` in ${o.namespace}` : ''}`);
  if (matches.length > 1) throw new MeshfedError('usage', `${matches.length} global services are named ${name} (${matches.map((s) => s.namespace).join(', ')}): pass -n NAMESPACE`);
  const s = matches[0]!;
  let out = field('Name', s.name) + field('Namespace', s.namespace) + field('Kind', 'GlobalService');
  out += field('Hostnames', s.hostnames.join(', '));
  out += field('Ports', s.ports.map((p) => `${p.name}:${p.port}`).join(', '));
  out += field('Reference', `${s.referenceCluster} (its definition wins a conflict)`);
  out += 'Clusters:\n';
  for (const p of s.parts) {
    const healthy = p.endpoints.filter((e) => e.health === 'HEALTHY').length;
    const state = p.inGlobal ? 'in the global service' : p.exported ? 'exported, not in the global service (conflict)' : 'not exported';
    out += `  ${p.cluster}: ${p.hostname}, ${state}, ${healthy}/${p.endpoints.length} endpoints healthy, labels ${pairs(p.labels)}\n`;
    const stale = p.endpoints.find((e) => e.staleSince);
    if (stale) {
      out += `    stale since ${stale.staleSince} (${age(stale.staleSince!)} ago): the hub has not heard ${p.cluster}'s agent; ${
        stale.withdrawn ? 'Withdrawn: served at the last priority, only when nothing else is left' : 'Suspect: still served where it was'
      }\n`;
    }
    if (p.endpoints.length) {
      const rows = p.endpoints.map((e) => [
        e.workload,
        e.address,
        e.zone,
        e.health,
        Object.entries(e.ports)
          .map(([k, v]) => `${k}:${v}`)
          .join(','),
      ]);
      out += table(['WORKLOAD', 'ADDRESS', 'ZONE', 'HEALTH', 'PORTS'], rows)
        .split('\n')
        .map((l) => (l ? `    ${l}` : l))
        .join('\n');
    }
  }
  out += s.conflicts.length ? `Conflicts:\n${s.conflicts.map((c) => `  ${c.cluster} ${c.field}: ${c.message}`).join('\n')}\n` : 'Conflicts:    <none>\n';
  return out;
}
