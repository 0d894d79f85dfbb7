// `meshfed get`: API objects, the federated view (globalservices), and the hub
// replicas (hubs, src/cli/hubs.ts).
// Several objects print as one `kind: List` (json, yaml), so `get -o yaml |
// apply -f -` round-trips; `-o name` prints kind/name lines; `-o jsonpath=`
// applies a template (src/cli/jsonpath.ts). -n is ignored for cluster-scoped
// kinds (as kubectl does): it neither filters nor fails. Without -n a
// namespaced kind is listed in every namespace (meshfed contexts have no
// namespace of their own), as with -A, which states it and refuses -n.
// -l filters at the hub (?labelSelector=, src/api/selector.ts; checked here
// first so a bad selector is a usage error). -w lists, then prints each change
// from the hub's watch; when the hub ends the watch (a final ERROR line, or a
// restart) it lists and watches again; Ctrl-C exits 0.
import { stringify } from 'yaml';
import { type ApiObject, type KindDef } from '../api/index.js';
import { labelsMatch, parseSelector, type LabelSelector } from '../api/selector.js';
import type { GlobalService } from '../federation/types.js';
import { request, streamLines } from './http.js';
import { executeJsonPath, parseJsonPath, type JsonPathTemplate } from './jsonpath.js';
import { errorMessage, MeshfedError } from '../util/errors.js';
import { age, listOf, parseFormat, print, table, type OutputFormat } from './output.js';
import { findKind } from '../registry.js';
import { getHubs, isHubs } from './hubs.js';

export interface GetOptions {
  namespace?: string;
  allNamespaces?: boolean;
  selector?: string;
  watch?: boolean;
  watchOnly?: boolean;
  cluster?: string;
  hub: string;
  output: string;
}

/** `-o` of get: a format, or jsonpath=TEMPLATE. */
export interface GetOutput {
  format: OutputFormat | 'jsonpath';
  jsonpath?: JsonPathTemplate;
}

interface WatchLine {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object?: ApiObject;
  revision?: number;
  reason?: string;
  message?: string;
}

const GLOBAL = new Set(['globalservices', 'globalservice', 'gsvc']);

export function isGlobalServices(kind: string): boolean {
  return GLOBAL.has(kind.toLowerCase());
}

export function parseGetOutput(v: string): GetOutput {
  const m = /^jsonpath=(.*)$/s.exec(v);
  if (m) return { format: 'jsonpath', jsonpath: parseJsonPath(m[1]!) };
  return { format: parseFormat(v, true) };
}

/** A kind get, describe and delete take, or a usage error listing some. */
export function kindOrUsage(kind: string): KindDef {
  const def = findKind(kind);
  if (!def) throw new MeshfedError('usage', `unknown kind "${kind}"; try clusters, meshes, services, workloads, globalservices`);
  return def;
}

/** `-l`, checked here (a usage error naming it) before the hub filters with it. */
export function selectorFlag(v: string | undefined): LabelSelector | undefined {
  if (v === undefined) return undefined;
  try {
    return parseSelector(v);
  } catch (err) {
    throw new MeshfedError('usage', `-l: ${errorMessage(err)}`);
  }
}

/** -A with -n is a contradiction, as kubectl says. */
export function checkNamespaceFlags(o: { namespace?: string; allNamespaces?: boolean }): void {
  if (o.allNamespaces && o.namespace !== undefined) throw new MeshfedError('usage', '-A/--all-namespaces and -n/--namespace together: pass one');
}

/** The list query of a kind: namespace (namespaced kinds, not with -A), cluster, labelSelector. */
export function listQuery(def: KindDef, o: { namespace?: string; allNamespaces?: boolean; cluster?: string; selector?: string }): URLSearchParams {
  const qs = new URLSearchParams();
  if (o.namespace && def.namespaced && !o.allNamespaces) qs.set('namespace', o.namespace);
  if (o.cluster) qs.set('cluster', o.cluster);
  if (o.selector) qs.set('labelSelector', o.selector);
  return qs;
}

export async function getCommand(kind: string, name: string | undefined, o: GetOptions): Promise<void> {
  const out = parseGetOutput(o.output);
  checkNamespaceFlags(o);
  const selector = selectorFlag(o.selector);
  if (name && o.allNamespaces) throw new MeshfedError('usage', 'an object cannot be got by name across all namespaces: pass -n NAMESPACE, not -A');
  if (name && selector) throw new MeshfedError('usage', 'a name and -l together: pass one');
  if (isHubs(kind)) {
    if (o.watch || o.watchOnly || out.jsonpath) throw new MeshfedError('usage', 'hubs: no -w, no jsonpath (table, wide, json or yaml)');
    return getHubs(o.hub, out.format as OutputFormat, name);
  }
  if (isGlobalServices(kind)) {
    if (o.watch || o.watchOnly) throw new MeshfedError('usage', 'globalservices are computed by the hub and cannot be watched; watch services or workloads');
    return getGlobalServices(name, o, out, selector);
  }
  const def = kindOrUsage(kind);
  const qs = listQuery(def, o);
  if (name) {
    if (def.namespaced && !o.namespace) throw new MeshfedError('usage', `${def.kind} is namespaced: pass -n NAMESPACE`);
    if (def.discovered && !o.cluster) throw new MeshfedError('usage', `${def.kind} belongs to a cluster: pass --cluster NAME`);
  }
  if (o.watch || o.watchOnly) return watchKind(def, name, qs, o, out);
  if (name) {
    const obj = await request<ApiObject>(o.hub, 'hub', 'GET', `api/v1alpha1/${def.plural}/${encodeURIComponent(name)}?${qs}`);
    return show(obj, [obj], def, out);
  }
  const list = await request<{ items: ApiObject[] }>(o.hub, 'hub', 'GET', `api/v1alpha1/${def.plural}?${qs}`);
  if (list.items.length === 0 && (out.format === 'table' || out.format === 'wide')) {
    process.stderr.write(`no ${def.plural} found${qs.has('namespace') ? ` in namespace ${o.namespace}` : ''}${selector ? ` matching ${o.selector}` : ''}\n`);
    return;
  }
  show(listOf(list.items), list.items, def, out);
}

function kindName(def: KindDef, o: ApiObject): string {
  return `${def.kind.toLowerCase()}/${o.metadata.name}`;
}

/** One object or a List (`data`), whose objects are `items`, in the format asked for. */
function show(data: unknown, items: ApiObject[], def: KindDef, out: GetOutput): void {
  if (out.jsonpath) return void process.stdout.write(executeJsonPath(out.jsonpath, data));
  if (out.format === 'name') return void process.stdout.write(items.map((x) => kindName(def, x) + '\n').join(''));
  print(data, out.format as OutputFormat, () => objectTable(def, items, out.format === 'wide'));
}

function objectTable(def: KindDef, items: ApiObject[], wide: boolean): string {
  const headers = ['NAME', ...(def.namespaced ? ['NAMESPACE'] : []), ...def.columns.map((c) => c.header), 'AGE'];
  if (wide) headers.push('VERSION');
  const rows = items.map((o) => {
    const row = [o.metadata.name, ...(def.namespaced ? [o.metadata.namespace ?? ''] : [])];
    // Columns are typed per kind; items of this list are that kind.
    for (const c of def.columns) row.push((c.value as (x: ApiObject) => string)(o));
    row.push(age(o.metadata.creationTimestamp));
    if (wide) row.push(o.metadata.resourceVersion ?? '');
    return row;
  });
  return table(headers, rows);
}

/** One watch event as -w prints it: a table row (the header with the first), or one JSON line, YAML document, name or template. */
function printEvent(def: KindDef, type: string, obj: ApiObject, out: GetOutput, withHeader: boolean): void {
  let text: string;
  if (out.jsonpath) text = executeJsonPath(out.jsonpath, obj);
  else if (out.format === 'name') text = kindName(def, obj) + '\n';
  else if (out.format === 'json') text = JSON.stringify({ type, object: obj }) + '\n';
  else if (out.format === 'yaml') text = '---\n' + stringify({ type, object: obj });
  else {
    const lines = objectTable(def, [obj], out.format === 'wide').split('\n');
    text = (withHeader ? lines[0] + '\n' : '') + lines[1] + '\n';
  }
  process.stdout.write(text);
}

async function watchKind(def: KindDef, name: string | undefined, qs: URLSearchParams, o: GetOptions, out: GetOutput): Promise<void> {
  // Ctrl-C is how a watch ends: as kubectl, that is success.
  process.once('SIGINT', () => process.exit(0));
  const mine = (x: ApiObject) => name === undefined || x.metadata.name === name;
  let header = true;
  let first = true;
  for (;;) {
    const list = await request<{ items: ApiObject[]; revision: number }>(o.hub, 'hub', 'GET', `api/v1alpha1/${def.plural}?${qs}`);
    if (!(first && o.watchOnly)) {
      for (const x of list.items.filter(mine)) {
        printEvent(def, 'ADDED', x, out, header);
        header = false;
      }
    }
    first = false;
    const wq = new URLSearchParams(qs);
    wq.set('watch', '1');
    wq.set('revision', String(list.revision));
    let ended: WatchLine | undefined;
    try {
      await streamLines(o.hub, 'hub', `api/v1alpha1/${def.plural}?${wq}`, (line) => {
        const e = line as WatchLine;
        if (e.type === 'ERROR') ended = e;
        else if (e.object && e.type !== 'BOOKMARK' && mine(e.object)) {
          printEvent(def, e.type, e.object, out, header);
          header = false;
        }
      });
    } catch (err) {
      // The history since the list was compacted (410): list again.
      if (!(err instanceof MeshfedError && err.code === 'gone')) throw err;
    }
    // The hub ended the watch: after an ERROR line (a slow watcher dropped) list again at once, else shortly.
    if (ended) process.stderr.write(`watch ended: ${ended.message ?? ended.reason ?? 'no reason'}; listing again\n`);
    else await new Promise((r) => setTimeout(r, 500));
  }
}

async function getGlobalServices(name: string | undefined, o: GetOptions, out: GetOutput, selector: LabelSelector | undefined): Promise<void> {
  const r = await request<{ items: GlobalService[] }>(o.hub, 'hub', 'GET', 'api/v1alpha1/globalservices');
  let items = r.items;
  if (o.namespace && !o.allNamespaces) items = items.filter((s) => s.namespace === o.namespace);
  // A global service has no labels of its own: it matches when one of its parts (one cluster's Service) does.
  if (selector) items = items.filter((s) => s.parts.some((p) => labelsMatch(selector, p.labels)));
  if (name) {
    items = items.filter((s) => s.name === name);
    if (items.length === 0) throw new MeshfedError('not-found', `no global service named ${name}${o.namespace ? ` in ${o.namespace}` : ''}`);
  }
  if (out.jsonpath) return void process.stdout.write(executeJsonPath(out.jsonpath, name ? items[0] : listOf(items)));
  if (out.format === 'name') return void process.stdout.write(items.map((s) => `globalservice/${s.hostnames[0]}\n`).join(''));
  const format = out.format as OutputFormat;
  print(listOf(items), format, () => {
    const rows = items.map((s) => {
      const inGlobal = s.parts.filter((p) => p.inGlobal);
      const endpoints = inGlobal.reduce((n, p) => n + p.endpoints.filter((e) => e.health === 'HEALTHY').length, 0);
      const total = inGlobal.reduce((n, p) => n + p.endpoints.length, 0);
      const row = [
        s.hostnames[0]!,
        s.ports.map((p) => `${p.name}:${p.port}`).join(','),
        inGlobal.map((p) => p.cluster).join(',') || '-',
        `${endpoints}/${total}`,
        s.conflicts.length ? `${s.conflicts.length} (${s.conflicts.map((c) => c.cluster).join(',')})` : '-',
        staleColumn(inGlobal),
      ];
      if (format === 'wide') row.push(s.parts.map((p) => p.hostname).join(','));
      return row;
    });
    const headers = ['SERVICE', 'PORTS', 'CLUSTERS', 'HEALTHY', 'CONFLICTS', 'STALE'];
    if (format === 'wide') headers.push('PER-CLUSTER NAMES');
    let text = table(headers, rows);
    const conflicts = items.flatMap((s) => s.conflicts.map((c) => `  ${s.hostnames[0]}: ${c.message}`));
    if (conflicts.length) text += `\nconflicts:\n${conflicts.join('\n')}\n`;
    return text;
  });
}

/** Endpoints of clusters whose agent the hub has not heard (Suspect; "withdrawn": served last): "2 (cluster2 withdrawn)". */
function staleColumn(parts: GlobalService['parts']): string {
  const stale = parts.filter((p) => p.endpoints.some((e) => e.staleSince));
  if (stale.length === 0) return '-';
  const n = stale.reduce((k, p) => k + p.endpoints.filter((e) => e.staleSince).length, 0);
  return `${n} (${stale.map((p) => (p.endpoints.some((e) => e.withdrawn) ? `${p.cluster} withdrawn` : p.cluster)).join(',')})`;
}
