// Mesh: mesh-wide settings: which clusters federate, the trust domain, the CA's
// certificate lifetimes and the mTLS mode. A singleton: the one Mesh is named
// `default` (MESH_NAME) and any other name is refused, so a second Mesh can
// never change the trust domain behind the first one's back.
import { Type, type Static } from '@sinclair/typebox';
import { Duration, durationMs } from '../duration.js';
import { defineKind } from '../kind.js';
import { DnsName } from '../meta.js';

export const MtlsMode = Type.Union([Type.Literal('STRICT'), Type.Literal('PERMISSIVE'), Type.Literal('DISABLE')], {
  description: 'STRICT: mTLS only; PERMISSIVE: plaintext accepted too (migration); DISABLE: plaintext',
});
export type MtlsMode = Static<typeof MtlsMode>;

export const MeshCa = Type.Object(
  {
    workloadCertTtl: Type.Optional({ ...Duration, default: '24h', description: 'lifetime of workload certificates (renewed at half-life)' }),
    intermediateCertTtl: Type.Optional({ ...Duration, default: '720h', description: "lifetime of each cluster's intermediate CA (renewed at half-life)" }),
  },
  { additionalProperties: false },
);
export type MeshCa = Static<typeof MeshCa>;

export const MeshMtls = Type.Object(
  {
    mode: Type.Optional({ ...MtlsMode, default: 'STRICT' }),
    services: Type.Optional(
      Type.Array(Type.Object({ namespace: Type.String({ minLength: 1 }), name: Type.String({ minLength: 1 }), mode: MtlsMode }, { additionalProperties: false }), {
        description: 'per-service overrides of the mesh-wide mode',
      }),
    ),
  },
  { additionalProperties: false },
);
export type MeshMtls = Static<typeof MeshMtls>;

export const MeshAccess = Type.Object(
  {
    default: Type.Optional(
      Type.Union([Type.Literal('ALLOW'), Type.Literal('DENY')], {
        default: 'ALLOW',
        description: 'what a call to a workload no AccessPolicy selects gets; DENY: deny-all unless an ALLOW policy allows it',
      }),
    ),
  },
  { additionalProperties: false },
);
export type MeshAccess = Static<typeof MeshAccess>;

export const MeshLiveness = Type.Object(
  {
    suspectAfter: Type.Optional({
      ...Duration,
      default: '5s',
      description: 'a cluster whose agent has not been heard for this long is Suspect: its endpoints stay where they are, marked stale (agents heartbeat every second)',
    }),
    holdDown: Type.Optional({
      ...Duration,
      default: '30s',
      description: 'a cluster whose agent has not been heard for this long is Withdrawn: its endpoints move to the last priority (used only when nothing else is left), never deleted',
    }),
  },
  { additionalProperties: false },
);
export type MeshLiveness = Static<typeof MeshLiveness>;

export const MeshSpec = Type.Object(
  {
    trustDomain: DnsName({ default: 'meshfed.local', description: 'SPIFFE trust domain' }),
    clusters: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { uniqueItems: true, description: 'clusters that federate; empty or unset means every Cluster' })),
    ca: Type.Optional(MeshCa),
    mtls: Type.Optional(MeshMtls),
    access: Type.Optional(MeshAccess),
    liveness: Type.Optional(MeshLiveness),
  },
  { additionalProperties: false },
);
export type MeshSpec = Static<typeof MeshSpec>;

const MIN_TTL_MS = 2_000;
const MIN_SUSPECT_MS = 2_000;

/** The name of the one Mesh. */
export const MESH_NAME = 'default';

export const MeshKind = defineKind({
  kind: 'Mesh',
  plural: 'meshes',
  namespaced: false,
  discovered: false,
  spec: MeshSpec,
  status: Type.Object({ clusters: Type.Optional(Type.Array(Type.String())) }),
  columns: [
    { header: 'TRUST-DOMAIN', value: (o) => o.spec.trustDomain },
    { header: 'MTLS', value: (o) => o.spec.mtls?.mode ?? 'STRICT' },
    { header: 'ACCESS', value: (o) => o.spec.access?.default ?? 'ALLOW' },
    { header: 'CLUSTERS', value: (o) => (o.spec.clusters?.length ? o.spec.clusters.join(',') : '*') },
  ],
  validateObject: (o) => {
    const errs: { path: string; message: string }[] = [];
    if (o.metadata.name !== MESH_NAME) {
      errs.push({
        path: '/metadata/name',
        message: `Mesh is a singleton: its name must be "${MESH_NAME}", not "${o.metadata.name}" (edit the Mesh named "${MESH_NAME}" to change mesh-wide settings)`,
      });
    }
    if (o.metadata.namespace) errs.push({ path: '/metadata/namespace', message: 'Mesh is not namespaced' });
    const ca = o.spec.ca;
    for (const f of ['workloadCertTtl', 'intermediateCertTtl'] as const) {
      const v = ca?.[f];
      if (v && durationMs(v) < MIN_TTL_MS) errs.push({ path: `/spec/ca/${f}`, message: `${v} is shorter than the 2s minimum` });
    }
    if (ca?.workloadCertTtl && ca.intermediateCertTtl && durationMs(ca.workloadCertTtl) > durationMs(ca.intermediateCertTtl)) {
      errs.push({ path: '/spec/ca/workloadCertTtl', message: `workload certificates (${ca.workloadCertTtl}) cannot outlive the intermediates that sign them (${ca.intermediateCertTtl})` });
    }
    const lv = o.spec.liveness;
    // Agents heartbeat every second: less than two missed beats is a blip, not a lost cluster.
    if (lv?.suspectAfter && durationMs(lv.suspectAfter) < MIN_SUSPECT_MS)
      errs.push({ path: '/spec/liveness/suspectAfter', message: `${lv.suspectAfter} is shorter than the 2s minimum (two missed heartbeats)` });
    if (durationMs(lv?.holdDown ?? '30s') < durationMs(lv?.suspectAfter ?? '5s')) {
      errs.push({ path: '/spec/liveness/holdDown', message: `the hold-down (${lv?.holdDown ?? '30s'}) cannot be shorter than suspectAfter (${lv?.suspectAfter ?? '5s'})` });
    }
    const seen = new Set<string>();
    (o.spec.mtls?.services ?? []).forEach((s, i) => {
      const k = `${s.namespace}/${s.name}`;
      if (seen.has(k)) errs.push({ path: `/spec/mtls/services/${i}`, message: `${k} is listed twice` });
      seen.add(k);
    });
    return errs;
  },
});
export type Mesh = typeof MeshKind.$object;

/** The Mesh among `objects` (the one named `default`; a store written before the singleton rule may hold others, which are ignored). */
export function theMesh<O extends { kind: string; metadata: { name: string } }>(objects: Iterable<O>): O | undefined {
  for (const o of objects) if (o.kind === 'Mesh' && o.metadata.name === MESH_NAME) return o;
  return undefined;
}

/** The effective CA lifetimes and mTLS mode (defaults applied), for hub and agents. */
export function meshSettings(m: Mesh | undefined): {
  trustDomain: string;
  workloadCertTtlMs: number;
  intermediateCertTtlMs: number;
  mtlsMode: MtlsMode;
  serviceModes: Map<string, MtlsMode>;
  accessDefault: 'ALLOW' | 'DENY';
  suspectAfterMs: number;
  holdDownMs: number;
} {
  return {
    trustDomain: m?.spec.trustDomain ?? 'meshfed.local',
    workloadCertTtlMs: durationMs(m?.spec.ca?.workloadCertTtl ?? '24h'),
    intermediateCertTtlMs: durationMs(m?.spec.ca?.intermediateCertTtl ?? '720h'),
    mtlsMode: m?.spec.mtls?.mode ?? 'STRICT',
    serviceModes: new Map((m?.spec.mtls?.services ?? []).map((s) => [`${s.namespace}/${s.name}`, s.mode])),
    accessDefault: m?.spec.access?.default ?? 'ALLOW',
    suspectAfterMs: durationMs(m?.spec.liveness?.suspectAfter ?? '5s'),
    holdDownMs: durationMs(m?.spec.liveness?.holdDown ?? '30s'),
  };
}

/** What translation and access checks need to know about mesh security (from the Mesh). Unset in a context: plaintext. */
export interface SecuritySettings {
  trustDomain: string;
  mode: MtlsMode;
  /** namespace/name -> mode, overriding `mode` for that service. */
  serviceModes: Map<string, MtlsMode>;
}

export function securitySettings(m: Mesh | undefined): SecuritySettings {
  const s = meshSettings(m);
  return { trustDomain: s.trustDomain, mode: s.mtlsMode, serviceModes: s.serviceModes };
}

/** The mTLS mode of one service: its own override, else the mesh's; DISABLE without settings. */
export function serviceMode(sec: SecuritySettings | undefined, namespace: string, name: string): MtlsMode {
  if (!sec) return 'DISABLE';
  return sec.serviceModes.get(`${namespace}/${name}`) ?? sec.mode;
}
