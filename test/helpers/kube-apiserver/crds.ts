// Stand-in Kubernetes API server (test infrastructure): serving the kinds of
// CustomResourceDefinitions, as the real apiextensions-apiserver does. A
// CustomResourceDefinition (apiextensions.k8s.io/v1, itself served from
// RESOURCES) that is created or changed makes every served version of its
// group/plural a resource of this server (discovery, OpenAPI paths, REST,
// watch; namespaced or cluster scope; the status subresource when the version
// declares it); its status gets the Established and NamesAccepted conditions.
// Deleting it stops serving: its objects are deleted (DELETED events) and
// watches on it end.
// Invariants: one ResourceType object per (group, version, plural) for the life
// of the server (the store delivers watch events by type identity, so a CRD
// update must not orphan open watches); the served table is rebuilt from the
// stored CRDs on every CRD event, so it is level-triggered; writes this module
// makes (status, removals) are deferred to a microtask, never made inside
// another write's event delivery.
// Not modelled: schema validation, pruning and defaulting of custom resources,
// conversion between versions (every version reads the same stored object),
// additionalPrinterColumns (tables show Name and Created At), and refusal of
// a CRD whose names clash with another.
import { type JsonObject, isObject } from './patch.js';
import { type ResourceType, RESOURCES, findResource } from './resources.js';
import { type ObjectStore, metaOf, nameOf, namespaceOf } from './store.js';

export const CRD_TYPE = findResource('apiextensions.k8s.io', 'v1', 'customresourcedefinitions')!;

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/** The resource types one CRD object serves (none when it is malformed). */
function typesOf(crd: JsonObject): ResourceType[] {
  const spec = crd['spec'];
  if (!isObject(spec) || !isObject(spec['names']) || typeof spec['group'] !== 'string' || !Array.isArray(spec['versions'])) return [];
  const names = spec['names'];
  if (typeof names['plural'] !== 'string' || typeof names['kind'] !== 'string') return [];
  const out: ResourceType[] = [];
  for (const v of spec['versions']) {
    if (!isObject(v) || typeof v['name'] !== 'string' || v['served'] === false) continue;
    const hasStatus = isObject(v['subresources']) && v['subresources']['status'] !== undefined;
    out.push({
      group: spec['group'],
      version: v['name'],
      kind: names['kind'],
      plural: names['plural'],
      singular: typeof names['singular'] === 'string' ? names['singular'] : names['kind'].toLowerCase(),
      namespaced: spec['scope'] !== 'Cluster',
      shortNames: strings(names['shortNames']),
      categories: strings(names['categories']),
      hasStatus,
      statusOnCreate: 'empty',
      custom: true,
      mergeKeys: { 'metadata.ownerReferences': 'uid' },
    });
  }
  return out;
}

const keyOf = (t: ResourceType): string => `${t.group}/${t.version}/${t.plural}`;

export class CustomResources {
  /** every custom type ever served, by key: stable identities (see the header) */
  private readonly known = new Map<string, ResourceType>();
  private served: ResourceType[] = [];
  private all: readonly ResourceType[] = RESOURCES;

  /** `ended(type)`: the server ends the watches of a type no longer served */
  constructor(
    private readonly store: ObjectStore,
    private readonly ended: (type: ResourceType) => void,
  ) {
    store.watch({ resource: CRD_TYPE, namespace: undefined, matches: () => true, send: () => this.sync() }, undefined);
  }

  /** what the server serves now: the built-in table and the custom kinds */
  types(): readonly ResourceType[] {
    return this.all;
  }

  private sync(): void {
    const next: ResourceType[] = [];
    const crds = this.store.list(CRD_TYPE, undefined, () => true);
    for (const crd of crds) {
      if (metaOf(crd)['deletionTimestamp'] !== undefined) continue;
      for (const t of typesOf(crd)) {
        const k = keyOf(t);
        if (next.some((x) => keyOf(x) === k) || RESOURCES.some((x) => keyOf(x) === k)) continue;
        const existing = this.known.get(k);
        if (existing) Object.assign(existing, t);
        else this.known.set(k, t);
        next.push(existing ?? t);
      }
    }
    const gone = this.served.filter((t) => !next.includes(t));
    this.served = next;
    this.all = [...RESOURCES, ...next];
    queueMicrotask(() => {
      for (const t of gone) this.stopServing(t);
      for (const crd of crds) this.establish(crd);
    });
  }

  /** a type no longer served: its objects go (once no served version shares them) and its watches end */
  private stopServing(t: ResourceType): void {
    if (!this.served.some((x) => x.group === t.group && x.plural === t.plural)) {
      for (const o of this.store.list(t, undefined, () => true)) this.store.remove(t, namespaceOf(o), nameOf(o));
    }
    this.ended(t);
  }

  /** status as the real server reports a served CRD: accepted names, Established and NamesAccepted */
  private establish(crd: JsonObject): void {
    const current = this.store.get(CRD_TYPE, '', nameOf(crd));
    if (!current || !isObject(current['spec']) || metaOf(current)['deletionTimestamp'] !== undefined) return;
    const st = isObject(current['status']) ? current['status'] : {};
    const names = current['spec']['names'];
    const conds = Array.isArray(st['conditions']) ? st['conditions'] : [];
    if (JSON.stringify(st['acceptedNames']) === JSON.stringify(names) && conds.length === 2) return;
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const cond = (type: string, reason: string, message: string): JsonObject => ({ type, status: 'True', lastTransitionTime: now, reason, message });
    current['status'] = {
      ...st,
      acceptedNames: isObject(names) ? names : {},
      conditions: [cond('NamesAccepted', 'NoConflicts', 'no conflicts found'), cond('Established', 'InitialNamesAccepted', 'the initial names have been accepted')],
      storedVersions: (Array.isArray(current['spec']['versions']) ? current['spec']['versions'] : []).flatMap((v) =>
        isObject(v) && v['storage'] === true && typeof v['name'] === 'string' ? [v['name']] : [],
      ),
    };
    this.store.put(CRD_TYPE, current);
  }
}
