// Leases on the EtcdStore's etcd, for what later needs liveness across hubs
// (leader election, cluster liveness): a lease with a TTL, kept alive by the
// client, whose keys etcd removes when it is revoked or expires.
// Invariants: keys are put under the store's prefix (`<prefix>/leases/...`),
// never under objects/ (so they are not objects and do not bump the store's
// object revision); every call is bounded by the connection's deadline; `lost`
// fires once when etcd says the lease is gone (expired while unreachable).
import { errorMessage } from '../../util/errors.js';
import type { EtcdConnection, KeyLayout } from './connection.js';

export interface StoreLease {
  /** etcd's lease id (decimal). */
  readonly id: string;
  /** Puts `<prefix>/leases/<name>` owned by the lease; resolves with etcd's revision of the write. */
  put(name: string, value: string): Promise<number>;
  /** Called once if the lease is lost (expired, revoked elsewhere, or never granted). */
  onLost(fn: (reason: string) => void): void;
  /** Revokes the lease: its keys are removed. */
  revoke(): Promise<void>;
}

export async function grantLease(conn: EtcdConnection, keys: KeyLayout, ttlMs: number): Promise<StoreLease> {
  if (!(ttlMs >= 1000)) throw new RangeError(`lease ttlMs must be at least 1000 (etcd counts seconds), got ${ttlMs}`);
  const lease = conn.client.lease(Math.ceil(ttlMs / 1000));
  const lostFns: ((reason: string) => void)[] = [];
  let lost: string | undefined;
  lease.on('lost', (err) => {
    lost ??= errorMessage(err);
    for (const fn of lostFns) fn(lost);
  });
  try {
    const id = await conn.bounded('granting a lease', () => lease.grant());
    return {
      id,
      async put(name, value) {
        const res = await conn.bounded(`putting lease key ${name}`, () => lease.put(`${keys.root}leases/${name}`).value(value).exec());
        return Number(res.header.revision);
      },
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
