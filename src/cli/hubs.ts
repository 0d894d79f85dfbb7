// `meshfed get hubs`: the hub replicas sharing the hub's store, each with its
// role (leader or standby), from GET /api/v1alpha1/hub/replicas; any replica
// answers (the CLI tries the --hub URLs in turn, http.ts).
import { request } from './http.js';
import { age, print, table, type OutputFormat } from './output.js';
import { MeshfedError } from '../util/errors.js';

const HUBS = new Set(['hubs', 'hub', 'hubreplicas']);

export function isHubs(kind: string): boolean {
  return HUBS.has(kind.toLowerCase());
}

interface ReplicasAnswer {
  self?: string;
  leader?: { id: string };
  items: { id: string; api: string; agents: string; version: string; startedAt: string; role: 'leader' | 'standby' }[];
}

export async function getHubs(hub: string | undefined, format: OutputFormat, name: string | undefined): Promise<void> {
  if (format === 'name') throw new MeshfedError('usage', '-o name: not for hubs (table, wide, json or yaml)');
  const r = await request<ReplicasAnswer>(hub, 'hub', 'GET', 'api/v1alpha1/hub/replicas');
  const items = name === undefined ? r.items : r.items.filter((i) => i.id === name);
  if (name !== undefined && items.length === 0) throw new MeshfedError('not-found', `no hub replica "${name}" (meshfed get hubs lists them)`);
  print({ leader: r.leader?.id, items }, format, () =>
    table(
      ['ID', 'API', 'AGENTS', 'ROLE', 'AGE', ...(format === 'wide' ? ['VERSION'] : [])],
      items.map((i) => [i.id, i.api, i.agents, i.role, age(i.startedAt), ...(format === 'wide' ? [i.version] : [])]),
    ),
  );
}
