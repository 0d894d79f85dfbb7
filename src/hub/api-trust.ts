// The hub API's trust answers, apart from HTTP: `meshfed cluster add` (the
// Cluster and a one-time join token), `trust status` and `trust rotate-root`.
// Inputs are parsed request bodies; refusals are MeshfedErrors the router
// answers. An existing Cluster is never changed here.
import { API_VERSION, type ApiObject, type Cluster } from '../api/index.js';
import { DURATION, durationMs } from '../api/duration.js';
import type { Store } from '../store/store.js';
import { MeshfedError } from '../util/errors.js';
import { logger } from '../util/log.js';
import type { AgentSessions } from './agent-sessions.js';
import { applyObjects } from './objects.js';
import type { HubTrust } from './trust.js';
import { expiryWarning } from './trust-status.js';
import { validateObject } from '../registry.js';

const log = logger('hub.api');

/** A join token lives at most this long (a longer one is a standing credential, not a one-time join). */
const MAX_JOIN_TOKEN_TTL_MS = 30 * 86_400_000;

export interface TrustApiContext {
  store: Store;
  sessions: AgentSessions;
  trust: HubTrust;
  /** mTLS on the agent channel (false with --insecure-channel). */
  secure: boolean;
}

/** `trust status`: roots, rotation, what each cluster was issued, workload certificates, warnings. */
export async function trustStatusAnswer(ctx: TrustApiContext): Promise<unknown> {
  const clusters: ApiObject[] = await ctx.store.list({ kind: 'Cluster' });
  const st = ctx.trust.status({ clusters: clusters.map((c) => c.metadata.name), connected: new Set(ctx.sessions.list().map((s) => s.cluster)), channel: ctx.secure ? 'mtls' : 'insecure' });
  const now = new Date();
  // Workload certificates as the connected agents last reported them; a
  // workload whose helper stopped renewing shows up here before it expires.
  const workloads = ctx.sessions
    .workloadCertificates()
    .map((w) => ({ ...w, warning: expiryWarning(`workload certificate ${w.spiffeId}`, w.notBefore, w.notAfter, now) }))
    .sort((a, b) => (a.spiffeId < b.spiffeId ? -1 : 1));
  return { ...st, workloads, warnings: [...st.warnings, ...workloads.flatMap((w) => (w.warning ? [w.warning] : []))], revision: ctx.store.revision() };
}

/** `trust rotate-root`: one step of the rotation, then the status after it. */
export async function rotateRoot(ctx: TrustApiContext, body: { step?: unknown; force?: unknown }): Promise<unknown> {
  // Absent: the first step. An explicit null is not absent: it was a bug that started a rotation.
  const step = body.step === undefined ? 'add' : body.step;
  if (step !== 'add' && step !== 'activate' && step !== 'retire') throw new MeshfedError('invalid', `step: "${String(step)}" is not add, activate or retire`);
  const clusters = (await ctx.store.list({ kind: 'Cluster' })).map((c) => c.metadata.name);
  await ctx.trust.rotateRoot(step, { force: body.force === true, clusters });
  log.info('trust rotate-root', { step });
  return trustStatusAnswer(ctx);
}

/**
 * `meshfed cluster add`: the Cluster (created when absent, from `spec`) and a
 * one-time join token. An existing Cluster is never changed here: a spec that
 * differs is a conflict, so a typo cannot move a cluster to another region.
 */
export async function joinToken(ctx: TrustApiContext, name: string, body: { ttl?: unknown; spec?: unknown }): Promise<unknown> {
  const { store, trust } = ctx;
  const ttl = body.ttl ?? '1h';
  if (typeof ttl !== 'string' || !new RegExp(DURATION).test(ttl)) throw new MeshfedError('invalid', `ttl: "${String(ttl)}" is not a duration (e.g. 30m, 1h, 2d)`);
  const ttlMs = durationMs(ttl);
  if (ttlMs < 1000) throw new MeshfedError('invalid', `ttl: ${ttl} is shorter than 1s`);
  if (!(ttlMs <= MAX_JOIN_TOKEN_TTL_MS)) throw new MeshfedError('invalid', `ttl: ${ttl.slice(0, 40)} is longer than the 30d maximum of a join token`);
  if (body.spec !== undefined && (body.spec === null || typeof body.spec !== 'object' || Array.isArray(body.spec))) {
    throw new MeshfedError('invalid', 'spec: must be an object {region, zones[, network]}');
  }
  const existing = (await store.get({ kind: 'Cluster', name })) as Cluster | undefined;
  let created = false;
  if (!existing) {
    if (!body.spec) throw new MeshfedError('not-found', `Cluster "${name}" does not exist: give its region and zones to create it (meshfed cluster add ${name} --region R --zones a,b)`);
    const r = validateObject({ apiVersion: API_VERSION, kind: 'Cluster', metadata: { name }, spec: body.spec });
    if (!r.ok) throw new MeshfedError('invalid', `Cluster ${name}: ${r.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, { details: r.errors });
    await applyObjects(store, [r.value]);
    created = true;
  } else if (body.spec) {
    // The same schema as a new Cluster's (every field optional here): a wrong type is a 400, not a comparison.
    const want = body.spec as Partial<Cluster['spec']>;
    const r = validateObject({ apiVersion: API_VERSION, kind: 'Cluster', metadata: { name }, spec: { ...existing.spec, ...want } });
    if (!r.ok) throw new MeshfedError('invalid', `Cluster ${name}: ${r.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, { details: r.errors });
    const diffs: string[] = [];
    if (want.network !== undefined && want.network !== existing.spec.network) diffs.push(`network is "${existing.spec.network}", not "${want.network}"`);
    if (want.region !== undefined && want.region !== existing.spec.region) diffs.push(`region is "${existing.spec.region}", not "${want.region}"`);
    if (want.zones !== undefined && JSON.stringify(want.zones) !== JSON.stringify(existing.spec.zones)) diffs.push(`zones are ${existing.spec.zones.join(',')}, not ${want.zones.join(',')}`);
    if (diffs.length) throw new MeshfedError('conflict', `Cluster "${name}" exists and ${diffs.join('; ')}: change it with meshfed apply, or leave those flags out to only get a token`);
  }
  if (!ctx.secure) {
    return { cluster: name, created, channel: 'insecure', message: 'the hub runs with --insecure-channel: agents connect without a token (start them with --insecure-channel)' };
  }
  const t = await trust.createJoinToken(name, ttlMs);
  log.info('cluster add', { cluster: name, created, token: t.id, expiresAt: t.expiresAt });
  return { cluster: name, created, channel: 'mtls', token: t.token, tokenId: t.id, expiresAt: t.expiresAt, caFingerprints: t.pins, trustDomain: trust.trustDomain() };
}
