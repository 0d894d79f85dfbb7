// `meshfed delete`: by KIND NAME (or KIND/NAME, as `get -o name` prints), the
// objects in files (-f), or every object of a kind that matches a label selector
// (-l) or all of them (--all), within -n or across namespaces with -A. A
// namespaced kind needs -n or -A for -l/--all: nothing is deleted in every
// namespace by accident. The selector is checked before anything is asked and
// the hub lists with it (an invalid one deletes nothing). Each deleted object
// is printed; --ignore-not-found makes an object already gone no error.
import type { ApiObject } from '../api/index.js';
import { clusterOf } from '../api/index.js';
import { MeshfedError } from '../util/errors.js';
import { checkNamespaceFlags, kindOrUsage, listQuery, selectorFlag } from './get.js';
import { request } from './http.js';
import { findKind } from '../registry.js';

export interface DeleteFlags {
  namespace?: string;
  allNamespaces?: boolean;
  selector?: string;
  all?: boolean;
  filename: string[];
  hub: string;
  ignoreNotFound?: boolean;
}

interface Outcomes {
  results: { object: string; outcome: string }[];
}

interface DeleteTarget {
  plural: string;
  name: string;
  namespace?: string;
  cluster?: string;
}

/** The action of `delete`; `readObjects` reads and validates -f files (commands/objects.ts). */
export function deleteAction(readObjects: (files: string[]) => Promise<ApiObject[]>) {
  return async (kind: string | undefined, name: string | undefined, o: DeleteFlags): Promise<void> => {
    checkNamespaceFlags(o);
    const targets = o.filename.length > 0 ? await fileTargets(await readObjects(o.filename), kind, o) : await namedTargets(kind, name, o);
    for (const t of targets) {
      const qs = new URLSearchParams();
      if (t.namespace) qs.set('namespace', t.namespace);
      if (t.cluster) qs.set('cluster', t.cluster);
      let r: Outcomes;
      try {
        r = await request<Outcomes>(o.hub, 'hub', 'DELETE', `api/v1alpha1/${t.plural}/${encodeURIComponent(t.name)}?${qs}`);
      } catch (err) {
        // As kubectl: nothing printed for an object already gone.
        if (o.ignoreNotFound && err instanceof MeshfedError && err.code === 'not-found') continue;
        throw err;
      }
      for (const x of r.results) process.stdout.write(`${x.object} ${x.outcome}\n`);
    }
  };
}

function fileTargets(objects: ApiObject[], kind: string | undefined, o: DeleteFlags): DeleteTarget[] {
  if (kind !== undefined || o.selector !== undefined || o.all) throw new MeshfedError('usage', '-f takes no KIND, -l or --all');
  // readObjects validated every object, so its kind is known.
  return objects.map((obj) => targetOf(findKind(obj.kind)!.plural, obj));
}

function targetOf(plural: string, obj: ApiObject): DeleteTarget {
  const t: DeleteTarget = { plural, name: obj.metadata.name };
  if (obj.metadata.namespace) t.namespace = obj.metadata.namespace;
  const cluster = clusterOf(obj);
  if (cluster) t.cluster = cluster;
  return t;
}

async function namedTargets(kind: string | undefined, name: string | undefined, o: DeleteFlags): Promise<DeleteTarget[]> {
  if (kind?.includes('/') && name === undefined) [kind, name] = kind.split('/', 2) as [string, string];
  const many = o.selector !== undefined || o.all === true;
  if (!kind || (!name && !many)) throw new MeshfedError('usage', 'delete needs KIND NAME, KIND/NAME, KIND -l SELECTOR, KIND --all or -f FILE');
  if (name && many) throw new MeshfedError('usage', `a name and ${o.all ? '--all' : '-l'} together: pass one`);
  if (o.selector !== undefined && o.all) throw new MeshfedError('usage', '-l and --all together: pass one');
  selectorFlag(o.selector);
  const def = kindOrUsage(kind);
  if (name) {
    const t: DeleteTarget = { plural: def.plural, name };
    if (o.namespace && def.namespaced) t.namespace = o.namespace;
    return [t];
  }
  if (def.namespaced && !o.namespace && !o.allNamespaces) throw new MeshfedError('usage', `${def.kind} is namespaced: pass -n NAMESPACE, or -A for every namespace`);
  const list = await request<{ items: ApiObject[] }>(o.hub, 'hub', 'GET', `api/v1alpha1/${def.plural}?${listQuery(def, o)}`);
  if (list.items.length === 0) process.stderr.write(`no ${def.plural} found${o.namespace && def.namespaced ? ` in namespace ${o.namespace}` : ''}${o.selector ? ` matching ${o.selector}` : ''}\n`);
  return list.items.map((x) => targetOf(def.plural, x));
}
