// `meshfed plan`: what applying some objects would change, computed from the
// hub's objects without writing anything. Pure: objects before + objects to
// apply in, per cluster xDS diffs, affected services/workloads and the expected
// traffic split per source cluster out. The same federate/translate functions
// the agents run are used, so the plan is what the agents would serve.
import { stringify } from 'yaml';
import { keyOf, refOf, theMesh, type ApiObject, type Cluster, type Mesh, type Service, type Workload } from '../api/index.js';
import { federate, globalKey } from '../federation/federate.js';
import type { FederatedView, GlobalService } from '../federation/types.js';
import { translateService } from '../translate/xds/index.js';
import { policyStatuses, type StatusOptions } from '../policies/resolve.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, type XdsResource } from '../xdsapi/index.js';
import { policySet } from '../registry.js';
import { type PolicyStatusOut, type ProxyFacts } from '../policies/plugin.js';
import { policyIds, policyWarnings } from './warnings.js';
import { lineDiff } from '../util/diff.js';

export interface ResourceChange {
  type: string;
  name: string;
  change: 'added' | 'removed' | 'changed';
  /** Unified-style lines ("+ ", "- ", "  ") of the YAML of the message, changed lines with 2 lines of context. */
  diff?: string[];
}

export interface ExpectedRoute {
  route: string;
  match: string;
  /** "cluster/version" (or cluster/workload) -> percent of the route's calls; "failed (fault)" for injected aborts. */
  shares: Record<string, number>;
}

export interface ServicePlan {
  service: string;
  workloads: string[];
  /** source cluster -> expected split before and after (global name, each route) */
  split: Record<string, { before: ExpectedRoute[]; after: ExpectedRoute[] }>;
}

export interface PlanResult {
  clusters: { cluster: string; changes: ResourceChange[] }[];
  services: ServicePlan[];
  policies: Record<string, PolicyStatusOut>;
  /** What `meshfed apply` of these objects would warn (src/analysis/warnings.ts), the same lines. */
  warnings: string[];
  applied: string[];
}

const SHORT: Record<string, string> = { [LISTENER_TYPE]: 'Listener', [ROUTE_TYPE]: 'RouteConfiguration', [CLUSTER_TYPE]: 'Cluster', [ENDPOINT_TYPE]: 'ClusterLoadAssignment' };

/**
 * The objects as they would be after applying `toApply` (the dry run shared by
 * plan and explain). Age decides precedence: an existing object keeps its age,
 * a new one is the newest.
 */
export function dryRunObjects(current: ApiObject[], toApply: ApiObject[], now = new Date().toISOString()): ApiObject[] {
  const byKey = new Map(current.map((o) => [keyOf(refOf(o)), o]));
  const after = new Map(byKey);
  for (const o of toApply) {
    const k = keyOf(refOf(o));
    const prev = byKey.get(k);
    after.set(k, { ...o, metadata: { ...o.metadata, creationTimestamp: prev?.metadata.creationTimestamp ?? now } });
  }
  return [...after.values()];
}

export function computePlan(current: ApiObject[], toApply: ApiObject[], now = new Date().toISOString(), proxies?: ProxyFacts): PlanResult {
  const before = current;
  const next = dryRunObjects(current, toApply, now);
  const vb = viewOf(before);
  const va = viewOf(next);
  const sb = policySet(before);
  const sa = policySet(next);
  const clusterNames = [...new Set([...vb.clusters, ...va.clusters].map((c) => c.name))].sort();
  const serviceKeys = [...new Set([...vb.services, ...va.services].map((s) => globalKey(s.namespace, s.name)))].sort();
  const find = (v: FederatedView, k: string) => v.services.find((s) => globalKey(s.namespace, s.name) === k);
  const clusters: PlanResult['clusters'] = [];
  const affected = new Map<string, ServicePlan>();
  for (const c of clusterNames) {
    const changes: ResourceChange[] = [];
    const locB = vb.clusters.find((x) => x.name === c);
    const locA = va.clusters.find((x) => x.name === c);
    for (const k of serviceKeys) {
      const gb = locB ? find(vb, k) : undefined;
      const ga = locA ? find(va, k) : undefined;
      const rb = gb ? translateService(gb, { cluster: c, locality: { region: locB!.region, zones: locB!.zones }, policies: sb }).resources : [];
      const ra = ga ? translateService(ga, { cluster: c, locality: { region: locA!.region, zones: locA!.zones }, policies: sa }).resources : [];
      const diff = diffResources(rb, ra);
      if (diff.length === 0) continue;
      changes.push(...diff);
      const g = (ga ?? gb)!;
      let sp = affected.get(k);
      if (!sp) affected.set(k, (sp = { service: `${g.name}.${g.namespace}`, workloads: [], split: {} }));
      const name = `${g.name}.${g.namespace}`;
      sp.split[c] = { before: expectedSplit(rb, name, gb), after: expectedSplit(ra, name, ga) };
    }
    if (changes.length > 0) clusters.push({ cluster: c, changes });
  }
  for (const [k, sp] of affected) {
    const g = find(va, k) ?? find(vb, k)!;
    sp.workloads = g.parts.flatMap((p) => p.endpoints.map((e) => `${e.cluster}/${g.namespace}/${e.workload}`)).sort();
  }
  const statusOpts: StatusOptions = { only: policyIds(toApply) };
  if (proxies) statusOpts.proxies = proxies;
  const statuses = policyStatuses(va, sa, theMesh(next) as Mesh | undefined, statusOpts);
  const policies: Record<string, PolicyStatusOut> = {};
  for (const o of toApply) {
    const id = `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    const st = statuses.get(id);
    if (st) policies[id] = st;
  }
  return { clusters, services: [...affected.values()], policies, warnings: policyWarnings(statuses, toApply), applied: toApply.map((o) => keyOf(refOf(o))) };
}

export function viewOf(objects: ApiObject[]): FederatedView {
  return federate({
    clusters: objects.filter((o) => o.kind === 'Cluster') as Cluster[],
    mesh: theMesh(objects) as Mesh | undefined,
    services: objects.filter((o) => o.kind === 'Service') as Service[],
    workloads: objects.filter((o) => o.kind === 'Workload') as Workload[],
  });
}

export function diffResources(before: XdsResource[], after: XdsResource[]): ResourceChange[] {
  const key = (r: XdsResource) => `${r.typeUrl}\u0000${r.name}`;
  const b = new Map(before.map((r) => [key(r), r]));
  const a = new Map(after.map((r) => [key(r), r]));
  const out: ResourceChange[] = [];
  for (const [k, r] of a) {
    const old = b.get(k);
    if (!old) out.push({ type: SHORT[r.typeUrl] ?? r.typeUrl, name: r.name, change: 'added', diff: lines(r).map((l) => `+ ${l}`) });
    else if (JSON.stringify(old.message) !== JSON.stringify(r.message)) out.push({ type: SHORT[r.typeUrl] ?? r.typeUrl, name: r.name, change: 'changed', diff: lineDiff(lines(old), lines(r)) });
  }
  for (const [k, r] of b) if (!a.has(k)) out.push({ type: SHORT[r.typeUrl] ?? r.typeUrl, name: r.name, change: 'removed' });
  const order = ['Listener', 'RouteConfiguration', 'Cluster', 'ClusterLoadAssignment'];
  return out.sort((x, y) => order.indexOf(x.type) - order.indexOf(y.type) || (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}

function lines(r: XdsResource): string[] {
  return stringify(r.message, { lineWidth: 0 }).trimEnd().split('\n');
}

interface Lb {
  endpoints: {
    locality: { sub_zone: string };
    load_balancing_weight: { value: number };
    priority: number;
    lb_endpoints: { endpoint: { address: { socket_address: { address: string; port_value: number } } }; health_status: string }[];
  }[];
}

/**
 * Expected split of calls on `listener` from the resources of one service: per
 * route, weighted clusters x (first priority with a healthy endpoint: locality
 * weight x equal share per healthy endpoint). Backends are named cluster/version
 * (the workload's `version` label, else its name), as the sample client reports them.
 */
export function expectedSplit(resources: XdsResource[], listener: string, service: GlobalService | undefined): ExpectedRoute[] {
  const rc = resources.find((r) => r.typeUrl === ROUTE_TYPE && r.name === listener);
  if (!rc || !service) return [];
  const cla = new Map(resources.filter((r) => r.typeUrl === ENDPOINT_TYPE).map((r) => [r.name, r.message as unknown as Lb]));
  const who = new Map<string, string>();
  for (const p of service.parts) for (const e of p.endpoints) for (const port of Object.values(e.ports)) who.set(`${e.address}:${port}`, `${e.cluster}/${e.labels.version ?? e.workload}`);
  const routes = (rc.message.virtual_hosts as { routes: Record<string, unknown>[] }[])[0]!.routes;
  return routes.map((r) => {
    const action = r.route as { cluster?: string; weighted_clusters?: { clusters: { name: string; weight: { value: number } }[] } };
    const targets = action.cluster ? [{ name: action.cluster, w: 1 }] : (action.weighted_clusters?.clusters ?? []).map((c) => ({ name: c.name, w: c.weight.value }));
    const total = targets.reduce((s, t) => s + t.w, 0) || 1;
    const shares: Record<string, number> = {};
    const add = (k: string, v: number) => (shares[k] = (shares[k] ?? 0) + v);
    const fault = (r.typed_per_filter_config as Record<string, { abort?: { percentage: { numerator: number } } }> | undefined)?.['envoy.filters.http.fault'];
    const abort = fault?.abort ? fault.abort.percentage.numerator / 1_000_000 : 0;
    if (abort > 0) add('failed (fault)', abort * 100);
    for (const t of targets) {
      const lb = cla.get(t.name);
      const healthy = (lb?.endpoints ?? []).map((l) => ({ ...l, eps: l.lb_endpoints.filter((e) => e.health_status === 'HEALTHY') })).filter((l) => l.eps.length > 0);
      const prio = Math.min(...healthy.map((l) => l.priority));
      const chosen = healthy.filter((l) => l.priority === prio);
      const lw = chosen.reduce((s, l) => s + l.load_balancing_weight.value, 0);
      if (chosen.length === 0) add('failed (no endpoint)', (100 * (1 - abort) * t.w) / total);
      for (const l of chosen) {
        for (const e of l.eps) {
          const sa = e.endpoint.address.socket_address;
          add(
            who.get(`${sa.address}:${sa.port_value}`) ?? `${l.locality.sub_zone}/${sa.address}:${sa.port_value}`,
            (100 * (1 - abort) * (t.w / total) * (l.load_balancing_weight.value / lw)) / l.eps.length,
          );
        }
      }
    }
    for (const k of Object.keys(shares)) shares[k] = Math.round(shares[k]! * 100) / 100;
    return { route: String(r.name), match: describeMatch(r.match as Record<string, unknown>), shares };
  });
}

function describeMatch(m: Record<string, unknown>): string {
  const parts: string[] = [];
  if (typeof m.path === 'string') parts.push(`path ${m.path}`);
  else if (m.prefix) parts.push(`prefix ${String(m.prefix)}`);
  for (const h of (m.headers as { name: string; string_match?: Record<string, string>; present_match?: boolean; invert_match?: boolean }[] | undefined) ?? []) {
    const v = h.string_match
      ? Object.entries(h.string_match)
          .map(([k, x]) => `${k} "${x}"`)
          .join('')
      : h.present_match
        ? 'present'
        : 'absent';
    parts.push(`${h.invert_match ? 'not ' : ''}header ${h.name} ${v}`);
  }
  return parts.join(', ') || 'every call';
}

/**
 * Human-readable plan (what `meshfed plan` prints). Clusters that would get the
 * same changes are printed once, and so are resources with the same diff (a
 * service's name aliases share one RouteConfiguration shape): a plan a person
 * reads, not one line per copy.
 */
export function formatPlan(p: PlanResult): string {
  const out: string[] = [];
  out.push(`plan for ${p.applied.length} object(s); nothing was changed`);
  for (const [id, st] of Object.entries(p.policies)) {
    if (st.destinations) {
      out.push('', `${id}: enforced by ${st.destinations.join(', ') || 'no workload'}; sources ${st.sources?.join(', ') || 'none'}`);
      // Their RBAC lives in the destinations' server listeners, not in the client resources diffed below.
      out.push('  (server-side RBAC: `meshfed explain --with -f FILE` shows the verdict for a caller)');
    } else out.push('', `${id}: selects ${st.services.join(', ') || 'no service'}; in effect for clients in ${st.clusters.join(', ') || 'no cluster'}`);
  }
  // The lines `meshfed apply` would print for these objects, word for word.
  if (p.warnings.length > 0) out.push('', `${p.warnings.length} warning(s); meshfed apply would print them, apply --strict would refuse:`, ...p.warnings.map((w) => `  Warning: ${w}`));
  if (p.clusters.length === 0) out.push('', 'no xDS resource would change in any cluster');
  for (const [changes, clusters] of groupBy(
    p.clusters,
    (c) => c.changes,
    (c) => c.cluster,
  )) {
    const counts = ['added', 'changed', 'removed'].map((k) => `${changes.filter((x) => x.change === k).length} ${k}`).join(', ');
    out.push('', `== ${clusters.length > 1 ? 'clusters' : 'cluster'} ${clusters.join(', ')}: ${counts}`);
    const sign = (c: ResourceChange['change']) => (c === 'added' ? '+' : c === 'removed' ? '-' : '~');
    for (const [ch, names] of groupBy(
      changes,
      (c) => ({ type: c.type, change: c.change, diff: c.change === 'changed' ? c.diff : undefined }),
      (c) => c.name,
    )) {
      if (ch.change !== 'changed') {
        for (const n of names) out.push(`  ${sign(ch.change)} ${ch.type} ${n}`);
        continue;
      }
      out.push(`  ~ ${ch.type} ${names[0]}${names.length > 1 ? ` (same change: ${names.slice(1).join(', ')})` : ''}`);
      for (const l of ch.diff ?? []) out.push(`      ${l}`);
    }
  }
  for (const s of p.services) {
    out.push('', `== service ${s.service}: workloads ${s.workloads.join(', ') || 'none'}`);
    out.push(`  expected split of calls to ${s.service}, per source cluster and route:`);
    const rows: string[][] = [['FROM', 'ROUTE (MATCH)', 'BEFORE', 'AFTER']];
    for (const [sp, sources] of groupBy(
      Object.entries(s.split),
      ([, v]) => v,
      ([k]) => k,
    )) {
      // Routes are matched by what they match, not by name: "every call" before
      // and after is the same traffic even when the route was renamed.
      const matches = [...new Set([...sp.before.map((r) => r.match), ...sp.after.map((r) => r.match)])];
      matches.forEach((m, i) => {
        const b = sp.before.find((x) => x.match === m);
        const a = sp.after.find((x) => x.match === m);
        rows.push([i === 0 ? sources.join(', ') : '', `${(a ?? b)!.route} (${m})`, fmtShares(b?.shares), fmtShares(a?.shares)]);
      });
    }
    out.push(...table(rows).map((l) => `    ${l}`));
  }
  return out.join('\n') + '\n';
}

/** Groups items whose `shape` is equal (as JSON), keeping first-seen order. */
function groupBy<T, S>(items: T[], shape: (t: T) => S, label: (t: T) => string): [S, string[]][] {
  const groups = new Map<string, [S, string[]]>();
  for (const it of items) {
    const s = shape(it);
    const k = JSON.stringify(s);
    const g = groups.get(k);
    if (g) g[1].push(label(it));
    else groups.set(k, [s, [label(it)]]);
  }
  return [...groups.values()];
}

function table(rows: string[][]): string[] {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  '));
}

function fmtShares(s: Record<string, number> | undefined): string {
  if (!s) return '(no such route)';
  const e = Object.entries(s).sort((x, y) => y[1] - x[1]);
  return e.length ? e.map(([k, v]) => `${k} ${v}%`).join(', ') : '(no endpoint)';
}
