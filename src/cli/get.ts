// `meshfed get`: API objects, and the federated view (globalservices).
// Several objects print as one `kind: List` (json, yaml), so `get -o yaml |
// apply -f -` round-trips; `-o name` prints kind/name lines. -n is ignored for
// cluster-scoped kinds (as kubectl does): it neither filters nor fails.
import { type ApiObject, type KindDef } from '../api/index.js';
import type { GlobalService } from '../federation/types.js';
import { request } from './http.js';
import { MeshfedError } from '../util/errors.js';
import { age, listOf, parseFormat, print, table } from './output.js';
import { findKind } from '../registry.js';

interface GetOptions {
  namespace?: string;
  cluster?: string;
  hub: string;
  output: string;
}

const GLOBAL = new Set(['globalservices', 'globalservice', 'gsvc']);

export async function getCommand(kind: string, name: string | undefined, o: GetOptions): Promise<void> {
  const format = parseFormat(o.output, true);
  if (GLOBAL.has(kind.toLowerCase())) return getGlobalServices(name, o, format);
  const def = findKind(kind);
  if (!def) {
    throw new MeshfedError('usage', `unknown kind "${kind}"; try clusters, meshes, services, workloads, globalservices`);
  }
  const qs = new URLSearchParams();
  if (o.namespace && def.namespaced) qs.set('namespace', o.namespace);
  if (o.cluster) qs.set('cluster', o.cluster);
  const names = (items: ApiObject[]) => items.map((x) => `${def.kind.toLowerCase()}/${x.metadata.name}\n`).join('');
  if (name) {
    if (def.namespaced && !o.namespace) throw new MeshfedError('usage', `${def.kind} is namespaced: pass -n NAMESPACE`);
    if (def.discovered && !o.cluster) throw new MeshfedError('usage', `${def.kind} belongs to a cluster: pass --cluster NAME`);
    const obj = await request<ApiObject>(o.hub, 'hub', 'GET', `api/v1alpha1/${def.plural}/${encodeURIComponent(name)}?${qs}`);
    if (format === 'name') return void process.stdout.write(names([obj]));
    return print(obj, format, () => objectTable(def, [obj], format === 'wide'));
  }
  const list = await request<{ items: ApiObject[] }>(o.hub, 'hub', 'GET', `api/v1alpha1/${def.plural}?${qs}`);
  if (format === 'name') return void process.stdout.write(names(list.items));
  if (list.items.length === 0 && format !== 'json' && format !== 'yaml') {
    process.stderr.write(`no ${def.plural} found${qs.has('namespace') ? ` in namespace ${o.namespace}` : ''}\n`);
    return;
  }
  print(listOf(list.items), format, () => objectTable(def, list.items, format === 'wide'));
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

async function getGlobalServices(name: string | undefined, o: GetOptions, format: ReturnType<typeof parseFormat>): Promise<void> {
  const r = await request<{ items: GlobalService[] }>(o.hub, 'hub', 'GET', 'api/v1alpha1/globalservices');
  let items = r.items;
  if (o.namespace) items = items.filter((s) => s.namespace === o.namespace);
  if (name) {
    items = items.filter((s) => s.name === name);
    if (items.length === 0) throw new MeshfedError('not-found', `no global service named ${name}${o.namespace ? ` in ${o.namespace}` : ''}`);
  }
  if (format === 'name') return void process.stdout.write(items.map((s) => `globalservice/${s.hostnames[0]}\n`).join(''));
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
      ];
      if (format === 'wide') row.push(s.parts.map((p) => p.hostname).join(','));
      return row;
    });
    const headers = ['SERVICE', 'PORTS', 'CLUSTERS', 'HEALTHY', 'CONFLICTS'];
    if (format === 'wide') headers.push('PER-CLUSTER NAMES');
    let out = table(headers, rows);
    const conflicts = items.flatMap((s) => s.conflicts.map((c) => `  ${s.hostnames[0]}: ${c.message}`));
    if (conflicts.length) out += `\nconflicts:\n${conflicts.join('\n')}\n`;
    return out;
  });
}
