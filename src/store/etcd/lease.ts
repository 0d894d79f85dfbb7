// Leases on the EtcdStore's etcd, for what needs liveness across hubs (leader
// election: src/hub/leadership.ts; later cluster liveness): a lease with a TTL,
// kept alive by the client, whose keys etcd removes when it is revoked or
// expires.
// Invariants: keys are put under the store's prefix (`<prefix>/leases/...`),
// never under objects/ (so they are not objects and do not bump the store's
// object revision); every call is bounded by the connection's deadline; `lost`
// fires once when etcd says the lease is gone (expired while unreachable);
// `confirmedAt` never runs ahead of etcd: it is when the last keep-alive etcd
// answered was SENT (or the grant asked for), so etcd's expiry is no earlier
// than confirmedAt + TTL and a holder that steps down before then is safe.
import { errorMessage } from '../../util/errors.js';
import type { EtcdConnection, KeyLayout } from './connection.js';

export interface StoreLease {
  /** etcd's lease id (decimal). */
  readonly id: string;
  /** Puts `<prefix>/leases/<name>` owned by the lease; resolves with etcd's revision of the write. */
  put(name: string, value: string): Promise<number>;
  /**
   * Puts `<prefix>/leases/<name>` owned by the lease only if the key is absent (one transaction);
   * answers the key's holder afterwards: this lease (`mine`) or another, with its value.
   */
  putIfAbsent(name: string, value: string): Promise<{ mine: boolean; value: string | undefined }>;
  /** Wall-clock ms of the last keep-alive etcd confirmed, as sent (see the header). */
  confirmedAt(): number;
  /** Called once if the lease is lost (expired, revoked elsewhere, or never granted). */
  onLost(fn: (reason: string) => void): void;
  /** Revokes the lease: its keys are removed. */
  revoke(): Promise<void>;
}

export async function grantLease(conn: EtcdConnection, keys: KeyLayout, ttlMs: number): Promise<StoreLease> {
  if (!(ttlMs >= 1000)) throw new RangeError(`lease ttlMs must be at least 1000 (etcd counts seconds), got ${ttlMs}`);
  let confirmed = Date.now();
  let pending: number | undefined;
  const lease = conn.client.lease(Math.ceil(ttlMs / 1000));
  const lostFns: ((reason: string) => void)[] = [];
  let lost: string | undefined;
  lease.on('lost', (err) => {
    lost ??= errorMessage(err);
    for (const fn of lostFns) fn(lost);
  });
  // The earliest unanswered keep-alive: its answer proves etcd renewed no earlier than then.
  lease.on('keepaliveFired', () => (pending ??= Date.now()));
  lease.on('keepaliveSucceeded', () => {
    if (pending !== undefined) confirmed = Math.max(confirmed, pending);
    pending = undefined;
  });
  const key = (name: string) => `${keys.root}leases/${name}`;
  try {
    const id = await conn.bounded('granting a lease', () => lease.grant());
    return {
      id,
      async put(name, value) {
        const res = await conn.bounded(`putting lease key ${name}`, () => lease.put(key(name)).value(value).exec());
        return Number(res.header.revision);
      },
      async putIfAbsent(name, value) {
        const res = await conn.bounded(`campaigning for lease key ${name}`, () =>
          conn.client
            .if(key(name), 'Create', '==', 0)
            .then(conn.client.put(key(name)).value(value).lease(id))
            .else(conn.client.get(key(name)))
            .commit(),
        );
        if (res.succeeded) return { mine: true, value };
        const kv = res.responses[0]?.response_range?.kvs[0];
        return { mine: kv !== undefined && String(kv.lease) === id, value: kv?.value.toString() };
      },
      confirmedAt: () => confirmed,
      onLost(fn) {
        if (lost !== undefined) fn(lost);
        else lostFns.push(fn);
      },
      revoke: () => conn.bounded('revoking a lease', () => lease.revoke()),
    };
  } catch (err) {
    lease.release();
    throw err;
  }
}

/** Every key under `<prefix>/leases/<under>` with its value (names relative to `under`). */
export async function readLeaseKeys(conn: EtcdConnection, keys: KeyLayout, under: string): Promise<Map<string, string>> {
  const prefix = `${keys.root}leases/${under}`;
  const all = await conn.bounded(`reading lease keys ${under}`, () => conn.client.getAll().prefix(prefix).strings());
  return new Map(Object.entries(all).map(([k, v]) => [k.slice(prefix.length), v]));
}

/** Calls `onChange` whenever `<prefix>/leases/<name>` is put or deleted (a hint: callers read again); returns a stop function. */
export function watchLeaseKey(conn: EtcdConnection, keys: KeyLayout, name: string, onChange: () => void): () => void {
  let stopped = false;
  let stop: (() => void) | undefined;
  void conn.client
    .watch()
    .key(`${keys.root}leases/${name}`)
    .create()
    .then((w) => {
      w.on('put', onChange).on('delete', onChange);
      if (stopped) void w.cancel();
      else stop = () => void w.cancel();
    })
    .catch(() => undefined); // a hint only: callers also poll
  return () => {
    stopped = true;
    stop?.();
  };
}
