// Where a hub's stores live, and opening them: the one convention every tool
// that opens a hub's data uses (the hub; backup, restore and migration).
//
//   file                         main: FileStore in <data dir>; audit: FileStore in <data dir>/audit
//   etcd://h:p[,h:p...][/prefix] main: EtcdStore at <prefix> (default /meshfed); audit: EtcdStore at <prefix>/audit
//
// The audit log has a store of its own beside the main one: audit records
// must not bump the revision agents and watchers follow, nor use up its watch
// history. Everything else the hub keeps (trust state, sealed root keys, API
// credentials) is in the main store, so hub replicas on one etcd share it.
import { join } from 'node:path';
import { MeshfedError } from '../util/errors.js';
import { normalizeEndpoints } from './etcd/connection.js';
import { DEFAULT_ETCD_PREFIX, EtcdStore } from './etcd-store.js';
import { FileStore } from './file-store.js';
import type { Store } from './store.js';

export type StoreLocation = { type: 'file' } | { type: 'etcd'; endpoints: string[]; prefix?: string };

export interface HubStores {
  main: Store;
  audit: Store;
}

/** The audit store's directory under a data directory. */
export const AUDIT_DIR = 'audit';

/** A --store value: `file`, or `etcd://host:port[,host:port...][/prefix]`; a usage error naming `flag` otherwise. */
export function parseStoreLocation(v: string, flag = '--store'): StoreLocation {
  if (v === 'file') return { type: 'file' };
  const m = /^etcd:\/\/([^/]+)(\/.*)?$/.exec(v);
  if (!m) throw new MeshfedError('usage', `${flag} ${v}: give file or etcd://host:port[,host:port...][/prefix]`);
  const endpoints = m[1]!.split(',').filter((e) => e !== '');
  try {
    normalizeEndpoints(endpoints);
  } catch (err) {
    throw new MeshfedError('usage', `${flag} ${v}: ${(err as Error).message}`);
  }
  const prefix = m[2]?.replace(/\/+$/, '');
  return prefix ? { type: 'etcd', endpoints, prefix } : { type: 'etcd', endpoints };
}

/** The --store value of a location (for messages). */
export function formatStoreLocation(l: StoreLocation): string {
  return l.type === 'file' ? 'file' : `etcd://${l.endpoints.join(',')}${l.prefix ?? ''}`;
}

/** The etcd prefix of the audit store beside a main store at `prefix`. */
export function auditPrefix(prefix: string | undefined): string {
  return `${(prefix ?? DEFAULT_ETCD_PREFIX).replace(/\/+$/, '')}/${AUDIT_DIR}`;
}

/** Opens the main and the audit store of a hub (closing the first if the second fails). */
export async function openHubStores(location: StoreLocation, dataDir: string): Promise<HubStores> {
  const main: Store = location.type === 'etcd' ? await EtcdStore.open(etcdOptions(location, location.prefix)) : await FileStore.open(dataDir);
  try {
    const audit: Store = location.type === 'etcd' ? await EtcdStore.open(etcdOptions(location, auditPrefix(location.prefix))) : await FileStore.open(join(dataDir, AUDIT_DIR));
    return { main, audit };
  } catch (err) {
    await main.close();
    throw err;
  }
}

function etcdOptions(l: { endpoints: string[] }, prefix: string | undefined): { endpoints: string[]; prefix?: string } {
  return prefix === undefined ? { endpoints: l.endpoints } : { endpoints: l.endpoints, prefix };
}
