// Which hub replica leads. Several hubs may share one EtcdStore (HA); only the
// leader serves the agent channel and runs the singletons (leader-duties.ts);
// every replica serves the HTTP API. With the FileStore there is one process
// (the directory lock guarantees it): it always leads.
//
// With etcd, each replica holds one lease (TTL --leader-lease, default 2 s) and
// puts under it `<prefix>/leases/replicas/<id>` (who it is: addresses, version)
// and campaigns with a transaction "create `<prefix>/leases/leader` if absent"
// under the same lease. A standby campaigns again when the leader key goes
// (a watch of the key, and a poll in case the watch is down).
// Invariants: a replica calls itself leader only while its lease holds the
// leader key; it steps down at once when the lease is lost, or when no
// keep-alive was confirmed for the TTL minus a guard (etcd unreachable: etcd
// may expire the lease then, and another replica may take over); change
// callbacks run one at a time in order (a takeover's duties are running before
// a step-down's stop), and a stepped-down replica's lease is revoked only after
// they ran (so its last writes land before a successor starts).
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { EtcdStore } from '../store/etcd-store.js';
import type { StoreLease } from '../store/etcd/lease.js';
import type { Store } from '../store/store.js';
import { errorMessage } from '../util/errors.js';
import { logger } from '../util/log.js';

const log = logger('hub.leader');

/** Who a replica is, as it registers itself. */
export interface ReplicaInfo {
  id: string;
  /** Its API URL and agent-channel address (as it listens). */
  api: string;
  agents: string;
  version: string;
  startedAt: string;
}

export type LeaderInfo = ReplicaInfo;

export interface ReplicaStatus extends ReplicaInfo {
  role: 'leader' | 'standby';
}

export interface Leadership {
  readonly self: ReplicaInfo;
  isLeader(): boolean;
  /** The leader as last seen (undefined: none known, e.g. etcd unreachable). */
  leader(): LeaderInfo | undefined;
  /**
   * Calls `cb` on every change of this replica's role, in order, each awaited before the next. If this
   * replica leads now, `cb(true)` runs first (in that order) and the promise settles with it (its error too).
   */
  onChange(cb: (leader: boolean) => void | Promise<void>): Promise<void>;
  /** The replicas registered now, the leader first. */
  replicas(): Promise<ReplicaStatus[]>;
  /** Steps down (callbacks run) and leaves: the lease is revoked so a standby takes over at once. */
  stop(): Promise<void>;
}

export interface LeadershipOptions {
  /** Lease TTL, ms (etcd counts seconds: rounded up; at least 1000). */
  leaseMs: number;
  /** How often a standby campaigns without a watch hint (default min(500, TTL/4)). */
  pollMs?: number;
}

/** A replica id: the host name and a random suffix (two replicas on one host differ). */
export function replicaId(): string {
  return `${hostname().split('.')[0]}-${randomBytes(3).toString('hex')}`;
}

/** Leadership on `store`: an election on an EtcdStore, else always leader. */
export async function startLeadership(store: Store, self: ReplicaInfo, opts: LeadershipOptions): Promise<Leadership> {
  if (!(store instanceof EtcdStore)) return soleLeadership(self);
  const l = new EtcdLeadership(store, self, opts);
  await l.start();
  return l;
}

/** The one process of a FileStore: leader from the start until stop. */
export function soleLeadership(self: ReplicaInfo): Leadership {
  let leading = true;
  const cbs: ((leader: boolean) => void | Promise<void>)[] = [];
  return {
    self,
    isLeader: () => leading,
    leader: () => (leading ? self : undefined),
    async onChange(cb) {
      cbs.push(cb);
      if (leading) await cb(true);
    },
    replicas: () => Promise.resolve(leading ? [{ ...self, role: 'leader' as const }] : []),
    async stop() {
      if (!leading) return;
      leading = false;
      for (const cb of cbs) await cb(false);
    },
  };
}

class EtcdLeadership implements Leadership {
  private lease: StoreLease | undefined;
  private leading = false;
  private current: LeaderInfo | undefined;
  private readonly cbs: ((leader: boolean) => void | Promise<void>)[] = [];
  /** Role changes, one at a time. */
  private chain: Promise<unknown> = Promise.resolve();
  /** A round is running: no other starts. */
  private busy = false;
  private stopped = false;
  /** A step-down after a lost lease is running: no round starts. */
  private losing = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private lastError: string | undefined;
  private readonly ttlMs: number;
  /** Steps down this long before etcd could expire the lease (clock steps, the time to stop duties). */
  private readonly guardMs: number;

  constructor(
    private readonly store: EtcdStore,
    readonly self: ReplicaInfo,
    opts: LeadershipOptions,
  ) {
    if (!(opts.leaseMs >= 1000)) throw new RangeError(`leader lease must be at least 1s (etcd counts seconds), got ${opts.leaseMs} ms`);
    this.ttlMs = Math.ceil(opts.leaseMs / 1000) * 1000;
    this.guardMs = Math.min(500, this.ttlMs / 4);
    const pollMs = opts.pollMs ?? Math.min(500, this.ttlMs / 4);
    this.pollTimer = setInterval(() => void this.round(), pollMs);
    this.pollTimer.unref();
    this.watchdog = setInterval(() => this.checkLease(), 100);
    this.watchdog.unref();
  }

  /** The first round: whether this replica leads is known once start resolves (unless etcd did not answer). */
  async start(): Promise<void> {
    this.unwatch = this.store.watchLeaseKey('leader', () => void this.round());
    await this.round();
  }

  isLeader(): boolean {
    return this.leading;
  }

  leader(): LeaderInfo | undefined {
    return this.current;
  }

  onChange(cb: (leader: boolean) => void | Promise<void>): Promise<void> {
    this.cbs.push(cb);
    if (!this.leading) return Promise.resolve();
    const run = this.chain.then(() => cb(true));
    this.chain = run.catch(() => undefined);
    return run;
  }

  async replicas(): Promise<ReplicaStatus[]> {
    const leaderId = this.current?.id;
    const out: ReplicaStatus[] = [];
    for (const [, v] of await this.store.leaseKeys('replicas/')) {
      const r = parseInfo(v);
      if (r) out.push({ ...r, role: r.id === leaderId ? 'leader' : 'standby' });
    }
    return out.sort((a, b) => (a.role === b.role ? a.id.localeCompare(b.id) : a.role === 'leader' ? -1 : 1));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.pollTimer);
    clearInterval(this.watchdog);
    this.unwatch?.();
    while (this.busy) await new Promise((r) => setTimeout(r, 20));
    const lease = this.lease;
    this.lease = undefined;
    await this.setLeading(false, 'the hub is stopping');
    await lease?.revoke().catch((err: unknown) => log.warn('cannot revoke the lease (a standby takes over once it expires)', { error: errorMessage(err) }));
  }

  /** Registers (a new lease if needed) and campaigns; reads who leads. */
  private async round(): Promise<void> {
    if (this.busy || this.losing || this.stopped) return;
    this.busy = true;
    try {
      if (!this.lease) {
        const lease = await this.store.lease(this.ttlMs);
        lease.onLost((reason) => void this.lose(lease, `the lease was lost: ${reason}`));
        await lease.put(`replicas/${this.self.id}`, JSON.stringify(this.self));
        this.lease = lease;
      }
      const lease = this.lease;
      const r = await lease.putIfAbsent('leader', JSON.stringify(this.self));
      if (this.lease !== lease || this.stopped) return;
      this.current = r.value === undefined ? undefined : parseInfo(r.value);
      if (this.lastError) log.info('etcd answers the election again', { was: this.lastError });
      this.lastError = undefined;
      // Only with a fresh lease: one that may be expiring must not start duties.
      if (r.mine && !this.leading && this.fresh(lease)) {
        // Duties that cannot start: give the key up, so another replica may lead.
        if (!(await this.setLeading(true, 'took the leader key'))) void this.lose(lease, 'the leader duties did not start');
      } else if (!r.mine && this.leading) await this.setLeading(false, `replica ${this.current?.id ?? '(unknown)'} holds the leader key`);
    } catch (err) {
      const msg = errorMessage(err);
      if (msg !== this.lastError) log.warn('leader election: etcd did not answer', { error: msg });
      this.lastError = msg;
    } finally {
      this.busy = false;
    }
  }

  private fresh(lease: StoreLease): boolean {
    return Date.now() - lease.confirmedAt() < this.ttlMs - this.guardMs;
  }

  /** The watchdog: a lease whose keep-alives etcd has not confirmed for the TTL minus the guard is as good as lost. */
  private checkLease(): void {
    const lease = this.lease;
    if (lease && !this.fresh(lease)) void this.lose(lease, `no keep-alive confirmed by etcd for ${Date.now() - lease.confirmedAt()} ms (lease TTL ${this.ttlMs} ms)`);
  }

  /** Steps down at once (if leading) and drops the lease; rounds wait, then start over with a new one. */
  private async lose(lease: StoreLease, reason: string): Promise<void> {
    if (this.lease !== lease || this.stopped) return;
    this.lease = undefined;
    this.losing = true;
    try {
      if (this.leading) this.current = undefined;
      await this.setLeading(false, reason);
      await lease.revoke().catch(() => undefined);
    } finally {
      this.losing = false;
    }
  }

  /** Changes the role and runs the callbacks; false if one failed. */
  private async setLeading(leading: boolean, reason: string): Promise<boolean> {
    if (this.leading === leading) return true;
    this.leading = leading;
    if (leading) {
      this.current = this.self;
      log.info('this hub is the leader', { id: this.self.id, reason });
    } else log.warn('this hub stepped down: standby', { id: this.self.id, reason });
    const run = this.chain.then(async () => {
      let ok = true;
      for (const cb of this.cbs) {
        try {
          await cb(leading);
        } catch (err) {
          ok = false;
          log.error(leading ? 'cannot take over the leader duties' : 'cannot stop the leader duties', { error: errorMessage(err) });
        }
      }
      return ok;
    });
    this.chain = run;
    return run;
  }
}

function parseInfo(v: string): ReplicaInfo | undefined {
  try {
    const o = JSON.parse(v) as Partial<ReplicaInfo>;
    return typeof o.id === 'string' ? (o as ReplicaInfo) : undefined;
  } catch {
    return undefined;
  }
}
