// Where a hub's stores live, as a flag gives it: a data directory (the embedded
// FileStore) or etcd://host:port[,host:port...][/prefix] (EtcdStore). A hub has
// two stores there: the main one at <dir> or <prefix>, the audit log's at
// <dir>/audit or <prefix>/audit (the audit log keeps its own revisions: see
// src/hub/hub.ts). Opening a FileStore takes its directory lock, so a command
// that opens a data directory refuses while a hub runs on it.
// The store modules are imported when a store is opened: parsing a flag loads no etcd client.
import { join } from 'node:path';
import { parseHostPort } from '../util/address.js';
import { MeshfedError, errorMessage } from '../util/errors.js';
import type { StoreLogger } from './file-store.js';
import type { Store } from './store.js';

export type StoreLocation = { kind: 'file'; dir: string } | { kind: 'etcd'; endpoints: string[]; prefix: string };

/** EtcdStore's default prefix. */
export const DEFAULT_ETCD_PREFIX = '/meshfed';

/** A data directory, or etcd://host:port[,host:port...][/prefix]; `flag` names the flag in errors. */
export function parseStoreLocation(value: string, flag: string): StoreLocation {
  if (value === '') throw new MeshfedError('usage', `${flag}: give a data directory or etcd://host:port[,host:port...][/prefix]`);
  if (!value.startsWith('etcd://')) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) throw new MeshfedError('usage', `${flag} ${value}: give a data directory or etcd://host:port[,host:port...][/prefix]`);
    return { kind: 'file', dir: value };
  }
  const m = /^etcd:\/\/([^/]+)(\/.*)?$/.exec(value);
  if (!m) throw new MeshfedError('usage', `${flag} ${value}: give etcd://host:port[,host:port...][/prefix]`);
  const endpoints = m[1]!.split(',').filter((e) => e !== '');
  if (endpoints.length === 0) throw new MeshfedError('usage', `${flag} ${value}: no etcd endpoint (give host:port[,host:port...])`);
  for (const e of endpoints) {
    try {
      parseHostPort(e, flag);
    } catch (err) {
      throw new MeshfedError('usage', `${flag} ${value}: ${errorMessage(err)}`, { cause: err });
    }
  }
  const prefix = m[2] && m[2] !== '/' ? m[2].replace(/\/+$/, '') : DEFAULT_ETCD_PREFIX;
  return { kind: 'etcd', endpoints, prefix };
}

/** The audit log's store beside a main store. */
export function auditLocation(loc: StoreLocation): StoreLocation {
  return loc.kind === 'file' ? { kind: 'file', dir: join(loc.dir, 'audit') } : { ...loc, prefix: `${loc.prefix}/audit` };
}

/** For messages: the directory, or etcd://endpoints/prefix. */
export function describeLocation(loc: StoreLocation): string {
  return loc.kind === 'file' ? loc.dir : `etcd://${loc.endpoints.join(',')}${loc.prefix}`;
}

export function sameLocation(a: StoreLocation, b: StoreLocation): boolean {
  return describeLocation(a) === describeLocation(b);
}

/**
 * How many objects one commit of an import (restore, migrate) carries: etcd
 * refuses transactions over --max-txn-ops (default 128) and --max-request-bytes
 * (default 1.5 MiB); a FileStore takes any size, but every commit is an fsync.
 */
export function importBatch(loc: StoreLocation): { batchOps: number; batchBytes: number } {
  return loc.kind === 'etcd' ? { batchOps: 100, batchBytes: 1024 * 1024 } : { batchOps: 2000, batchBytes: 16 * 1024 * 1024 };
}

export interface OpenStoreOptions {
  logger?: StoreLogger;
  /** A serving hub's store: etcd's quorum probed for readiness (offline tools leave it off). */
  serving?: boolean;
}

/** Opens one store; a locked data directory says to stop the hub. */
export async function openStore(loc: StoreLocation, opts: OpenStoreOptions = {}): Promise<Store> {
  const logger = opts.logger;
  try {
    if (loc.kind === 'file') {
      const { FileStore } = await import('./file-store.js');
      return await FileStore.open(loc.dir, logger ? { logger } : {});
    }
    const { EtcdStore } = await import('./etcd-store.js');
    return await EtcdStore.open({ endpoints: loc.endpoints, prefix: loc.prefix, ...(opts.serving ? {} : { probeIntervalMs: 0 }), ...(logger ? { logger } : {}) });
  } catch (err) {
    if (err instanceof MeshfedError && err.reason === 'DataDirLocked') {
      throw new MeshfedError('conflict', `${errorMessage(err)} Stop the hub first: this command needs the store to itself.`, { reason: err.reason, cause: err });
    }
    throw err;
  }
}

export interface HubStores {
  main: Store;
  audit: Store;
  close(): Promise<void>;
}

/** The main and the audit store of a hub at `loc` (both or neither: a failure closes what was opened). */
export async function openHubStores(loc: StoreLocation, opts: OpenStoreOptions = {}): Promise<HubStores> {
  const main = await openStore(loc, opts);
  let audit: Store;
  try {
    audit = await openStore(auditLocation(loc), opts);
  } catch (err) {
    await main.close();
    throw err;
  }
  return {
    main,
    audit,
    close: async () => {
      await Promise.all([main.close(), audit.close()]);
    },
  };
}
