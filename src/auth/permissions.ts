// The Permission a write of one object asks (src/auth/types.ts), built the same
// way for every route that writes (apply, delete, plan): verb, kind,
// namespace, cluster (a discovered object's cluster, or a Cluster's own name),
// name, the finer actions the object uses (from its policy plugin's actionsOf)
// and the object itself (for selector-scoped rules). Pure.
// Invariant: an update asks for the object before and after, so a principal
// can neither write an action it lacks nor rewrite (or delete) one it lacks.
import { clusterOf, type ApiObject } from '../api/index.js';
import { canonicalVerb } from '../api/kinds/role.js';
import { pluginOf } from '../registry.js';
import type { Permission } from './types.js';

/** The finer actions an object uses ([] for kinds without them). */
export function actionsOf(object: ApiObject): string[] {
  const plugin = pluginOf(object.kind);
  // The plugin's own object type is erased in the plugin list; the object is of its kind.
  return plugin?.actionsOf ? plugin.actionsOf(object) : [];
}

/** The Permission writing (or reading) one object asks. */
export function permissionFor(verb: string, object: ApiObject): Permission {
  const perm: Permission = { verb: canonicalVerb(verb), kind: object.kind, name: object.metadata.name, object };
  if (object.metadata.namespace !== undefined) perm.namespace = object.metadata.namespace;
  const cluster = clusterOf(object) ?? (object.kind === 'Cluster' ? object.metadata.name : undefined);
  if (cluster !== undefined) perm.cluster = cluster;
  const actions = actionsOf(object);
  if (actions.length) perm.actions = actions;
  return perm;
}

/**
 * Every Permission a write asks: `create` or `delete` the object; `update`
 * the new object and, when given, the stored one it replaces (skipped when
 * it asks nothing more).
 */
export function permissionsFor(verb: string, object: ApiObject, previous?: ApiObject): Permission[] {
  const perm = permissionFor(verb, object);
  if (!previous || canonicalVerb(verb) !== 'update') return [perm];
  const before = permissionFor(verb, previous);
  const more = (before.actions ?? []).some((a) => !(perm.actions ?? []).includes(a));
  return more || JSON.stringify(objectScope(previous)) !== JSON.stringify(objectScope(object)) ? [perm, before] : [perm];
}

// What selector-scoped rules look at: when it is unchanged, the stored object asks nothing the new one does not.
function objectScope(o: ApiObject): unknown {
  const spec = o.spec as { destinations?: unknown; sources?: unknown } | undefined;
  return [spec?.destinations, spec?.sources];
}
