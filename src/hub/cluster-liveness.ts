// Cluster liveness at the hub: a cluster is Live while its agent is heard
// (Hello, heartbeats every second, any message), Suspect once it has been
// silent for the Mesh's liveness.suspectAfter, Withdrawn after liveness.holdDown.
// Agents read the state from the Cluster objects of their view: a Suspect
// cluster's endpoints stay where they are, marked stale; a Withdrawn cluster's
// move to the last priority (translate/xds/endpoints.ts), never deleted, since
// losing contact with the hub is no proof that a cluster is dead. The first
// message of a returning agent makes it Live again.
//
// Invariants: this is the one writer of Cluster status.agent and
// status.liveness (one serialized chain, so connects, disconnects and
// transitions never overwrite each other); it writes on transitions only, never
// per heartbeat (a write reaches every agent's view); silence only moves a
// cluster forward (Live -> Suspect -> Withdrawn); silence is counted from no
// earlier than the hub's own start (or this replica's takeover as leader:
// start() again), so a hub restart or a failover demotes nobody; a replica that
// stepped down (silence()) writes nothing more, its successor owns the status.
import type { Cluster, Mesh } from '../api/index.js';
import { meshSettings, theMesh } from '../api/index.js';
import type { Store } from '../store/store.js';
import { errorMessage } from '../util/errors.js';
import { logger } from '../util/log.js';

const log = logger('hub.liveness');

export type LivenessState = 'Live' | 'Suspect' | 'Withdrawn';

/** How often silence is measured: a Withdrawn cluster is demoted within this of its hold-down. */
export const LIVENESS_TICK_MS = 200;

/** The state a cluster silent for `silentMs` is in (pure). */
export function livenessAfterSilence(silentMs: number, s: { suspectAfterMs: number; holdDownMs: number }): LivenessState {
  if (silentMs >= s.holdDownMs) return 'Withdrawn';
  if (silentMs >= s.suspectAfterMs) return 'Suspect';
  return 'Live';
}

const ORDER: Record<LivenessState, number> = { Live: 0, Suspect: 1, Withdrawn: 2 };

interface Tracked {
  /** When the agent was last heard (ms, wall clock). */
  lastSeenMs: number;
  state: LivenessState;
}

export interface AgentConnection {
  version: string;
}

export class ClusterLiveness {
  private readonly tracked = new Map<string, Tracked>();
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private startedMs: number;
  /** Stepped down: writes are dropped (the new leader's start() sets what this replica would have). */
  private silenced = false;

  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {
    this.startedMs = now();
  }

  /**
   * Loads every cluster that ever had an agent (stored as not connected: after
   * a restart none is yet), then measures silence every LIVENESS_TICK_MS.
   */
  async start(): Promise<void> {
    this.stop();
    this.silenced = false;
    this.startedMs = this.now();
    this.tracked.clear();
    const clusters = (await this.store.list({ kind: 'Cluster' })) as Cluster[];
    const stale = clusters.filter((c) => c.status?.agent?.connected);
    if (stale.length > 0) {
      await this.store.commit(stale.map((c) => ({ type: 'put' as const, object: { ...c, status: { ...c.status, agent: { ...c.status!.agent!, connected: false } } } })));
    }
    for (const c of clusters) {
      if (!c.status?.agent) continue;
      this.tracked.set(c.metadata.name, { lastSeenMs: this.startedMs, state: c.status.liveness?.state ?? 'Live' });
    }
    this.timer = setInterval(() => this.tick(), LIVENESS_TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stops the timer and drops every write from now on (this replica stepped down; start() again on a takeover). */
  silence(): void {
    this.stop();
    this.silenced = true;
  }

  /** The current state of a cluster (undefined: no agent ever connected). */
  stateOf(cluster: string): LivenessState | undefined {
    return this.tracked.get(cluster)?.state;
  }

  /** An agent was welcomed: Live, connected. */
  connected(cluster: string, conn: AgentConnection): void {
    const t = this.touch(cluster);
    const since = new Date(this.now()).toISOString();
    const toLive = t.state !== 'Live';
    t.state = 'Live';
    this.write(cluster, (c) => ({
      ...c.status,
      agent: { ...c.status?.agent, connected: true, lastSeen: since, since, version: conn.version },
      ...(toLive || !c.status?.liveness ? { liveness: { state: 'Live' as const, since } } : {}),
    }));
    if (toLive) log.info('cluster is Live again', { cluster });
  }

  /** Any message from a connected agent. Cheap: a write only when the cluster was not Live. */
  heard(cluster: string): void {
    const t = this.touch(cluster);
    if (t.state === 'Live') return;
    t.state = 'Live';
    const since = new Date(this.now()).toISOString();
    log.info('cluster is Live again', { cluster });
    this.write(cluster, (c) => ({ ...c.status, liveness: { state: 'Live' as const, since } }));
  }

  /** The agent's session ended: silence counts from now. */
  disconnected(cluster: string): void {
    this.touch(cluster);
    const at = new Date(this.now()).toISOString();
    this.write(cluster, (c) => ({ ...c.status, agent: { ...c.status?.agent, connected: false, lastSeen: at } }));
  }

  /** The Cluster was deleted. */
  forget(cluster: string): void {
    this.tracked.delete(cluster);
  }

  /** Resolves once every write queued so far is committed (tests, shutdown). */
  settled(): Promise<unknown> {
    return this.chain;
  }

  private touch(cluster: string): Tracked {
    let t = this.tracked.get(cluster);
    if (!t) this.tracked.set(cluster, (t = { lastSeenMs: this.now(), state: 'Live' }));
    t.lastSeenMs = this.now();
    return t;
  }

  private tick(): void {
    if (this.tracked.size === 0) return;
    this.store.list({ kind: 'Mesh' }).then(
      (meshes) => {
        const settings = meshSettings(theMesh(meshes as Mesh[]));
        const now = this.now();
        for (const [cluster, t] of this.tracked) {
          const next = livenessAfterSilence(now - Math.max(t.lastSeenMs, this.startedMs), settings);
          if (ORDER[next] <= ORDER[t.state]) continue;
          t.state = next;
          const since = new Date(now).toISOString();
          const lastHeartbeat = new Date(t.lastSeenMs).toISOString();
          log.warn(next === 'Suspect' ? 'cluster is Suspect: its agent has not been heard' : 'cluster is Withdrawn: its endpoints move to the last priority', {
            cluster,
            silentMs: now - t.lastSeenMs,
          });
          this.write(cluster, (c) => ({ ...c.status, liveness: { state: next, since, lastHeartbeat } }));
        }
      },
      (err: unknown) => log.error('cannot read the Mesh', { error: errorMessage(err) }),
    );
  }

  /** Read-modify-write of a Cluster's status, serialized with every other status write of this hub. */
  private write(cluster: string, status: (c: Cluster) => NonNullable<Cluster['status']>): void {
    if (this.silenced) return;
    this.chain = this.chain
      .then(async () => {
        if (this.silenced) return;
        const c = (await this.store.get({ kind: 'Cluster', name: cluster })) as Cluster | undefined;
        if (!c) return this.forget(cluster);
        await this.store.commit([{ type: 'put', object: { ...c, status: status(c) } }]);
      })
      .catch((err: unknown) => log.error('cannot write cluster status', { cluster, error: errorMessage(err) }));
  }
}
