// The hub API's dry runs, apart from HTTP: `meshfed plan` (per-cluster xDS diff
// and traffic split of objects not yet applied), the warnings of an apply
// (computed before it commits; the same lines plan shows) and `meshfed
// explain` (route, endpoints and access verdict of one call). All are computed
// from the store's current objects and never write. Refusals are MeshfedErrors
// the router answers.
import { theMesh, type ApiObject, type Mesh } from '../api/index.js';
import { computePlan, dryRunObjects, viewOf, type PlanResult } from '../analysis/plan.js';
import { applyWarnings, policyIds, proxyFacts, type ProxyReport } from '../analysis/warnings.js';
import type { FederatedViewCache } from './federated-view.js';
import { explain, type ExplainRequest, type ExplainResult } from '../analysis/explain.js';
import type { Store } from '../store/store.js';
import { MeshfedError } from '../util/errors.js';
import { parseJsonObject } from '../util/http-body.js';
import { findKind, parseAndValidate, POLICY_KINDS } from '../registry.js';

/** The objects plan and explain compute from: the mesh's own and every policy. */
async function currentObjects(store: Store): Promise<ApiObject[]> {
  const current: ApiObject[] = [];
  for (const kind of ['Cluster', 'Mesh', 'Service', 'Workload', ...POLICY_KINDS]) current.push(...(await store.list({ kind })));
  return current;
}

/** `meshfed plan`: what applying `objects` (user kinds only) would change. `proxies`: the agents' proxy-status reports. */
export async function planAnswer(store: Store, objects: ApiObject[], proxies: readonly ProxyReport[] = []): Promise<PlanResult & { revision: number }> {
  for (const o of objects) {
    if (findKind(o.kind)?.discovered) throw new MeshfedError('invalid', `${o.kind} objects are reported by agents; plan applies user objects only`, { reason: 'ReadOnlyKind' });
  }
  const current = await currentObjects(store);
  return { ...computePlan(current, objects, undefined, proxyFacts(proxies)), revision: store.revision() };
}

/** Kinds whose objects shape the federated view: an apply with one of them needs the view dry-run too. */
const VIEW_SHAPING = new Set(['Cluster', 'Mesh', 'Service', 'Workload']);

/**
 * What applying `objects` would warn (plan's policy checks, for the applied
 * policies only). An apply of policies alone is checked against the cached
 * view (policies do not change it); one that changes Clusters or the Mesh
 * against the dry-run view.
 */
export async function applyWarningsAnswer(store: Store, views: FederatedViewCache, objects: ApiObject[], proxies: readonly ProxyReport[]): Promise<string[]> {
  if (policyIds(objects).size === 0) return [];
  const facts = proxyFacts(proxies);
  const policies: ApiObject[] = [];
  for (const kind of POLICY_KINDS) policies.push(...(await store.list({ kind })));
  const policiesAfter = dryRunObjects(
    policies,
    objects.filter((o) => POLICY_KINDS.has(o.kind)),
  );
  if (!objects.some((o) => VIEW_SHAPING.has(o.kind))) {
    const { view, mesh } = await views.viewAndMesh();
    return applyWarnings(view, mesh, policiesAfter, objects, facts);
  }
  const after = dryRunObjects(await currentObjects(store), objects);
  return applyWarnings(viewOf(after), theMesh(after) as Mesh | undefined, policiesAfter, objects, facts);
}

/** `meshfed explain` at the hub: computed from the store's current objects (and the dry-run objects in `with`). */
export async function explainAnswer(store: Store, body: string): Promise<ExplainResult & { revision: number }> {
  return { ...(await explainRequest(store, body)), revision: store.revision() };
}

async function explainRequest(store: Store, body: string): Promise<ExplainResult> {
  // A JSON object, or a 400 naming what it is (null, an array, too deep).
  const req = parseJsonObject(body) as Partial<ExplainRequest> & { with?: unknown };
  const from = req.from;
  if (!from || typeof from !== 'object' || typeof from.cluster !== 'string' || typeof from.namespace !== 'string' || typeof from.workload !== 'string') {
    throw new MeshfedError('invalid', 'from: {cluster, namespace, workload[, serviceAccount]} is required');
  }
  if (typeof req.to !== 'string' || !req.to) throw new MeshfedError('invalid', 'to: the service to call is required (name[.namespace])');
  const r: ExplainRequest = { from, to: req.to };
  if (req.method !== undefined) r.method = String(req.method);
  if (req.with !== undefined) {
    // An InvalidInputError is a MeshfedError (400, the problems as details).
    r.with = parseAndValidate(JSON.stringify(req.with), 'with');
    for (const o of r.with) if (findKind(o.kind)?.discovered) throw new MeshfedError('invalid', `with: ${o.kind} objects are reported by agents`, { reason: 'ReadOnlyKind' });
  }
  const current = await currentObjects(store);
  // ExplainError is a MeshfedError: an unknown caller or service answers 404, a malformed request 400 (both reason Invalid).
  return explain(current, r);
}
