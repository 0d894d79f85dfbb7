// What only the leading hub replica does (leadership.ts decides who leads):
// serve the agent channel (Connect, Join), write cluster liveness
// (cluster-liveness.ts) and run the Kubernetes source of policies. On a
// takeover they start (liveness from the takeover, demoting nobody, like a
// restart); on a step-down they stop and every agent session ends with
// UNAVAILABLE, so agents move on to their next hub address. A standby answers
// the agent channel UNAVAILABLE "not the leader: the leader is <id> at <agent
// address>".
// Not here, because they are per replica: the API certificate and the channel
// certificate renewals (each replica has its own), the audit retention sweep
// (the replicas share one audit log; a sweep by any of them is safe: the
// log's anchor only moves forward).
// Invariant: the channel is served only once the takeover's duties are all
// running, and no longer from the moment a step-down starts.
import * as grpc from '@grpc/grpc-js';
import type { AgentStream } from '../channel/protocol.js';
import { logger } from '../util/log.js';
import type { AgentSessions } from './agent-sessions.js';
import type { ClusterLiveness } from './cluster-liveness.js';
import type { KubernetesPolicySource } from './kubernetes-policies.js';
import type { Leadership } from './leadership.js';

const log = logger('hub.leader');

export interface LeaderDutiesOptions {
  liveness: ClusterLiveness;
  sessions: AgentSessions;
  /** Starts the Kubernetes source of policies (--kubernetes-policies). */
  startKubernetesPolicies?: () => Promise<KubernetesPolicySource>;
}

export class LeaderDuties {
  private serving = false;
  private source: KubernetesPolicySource | undefined;
  private followed: Leadership | undefined;

  /** Serves nothing until it follows a leadership (gate() may be installed before). */
  constructor(private readonly opts: LeaderDutiesOptions) {}

  /** Follows `leadership`; if this replica leads now, resolves once the duties run (rejects if they cannot start). */
  async follow(leadership: Leadership): Promise<void> {
    this.followed = leadership;
    await leadership.onChange((leader) => (leader ? this.takeOver() : this.stepDown()));
  }

  get leadership(): Leadership | undefined {
    return this.followed;
  }

  /** The Kubernetes source of policies while this replica leads and it is configured. */
  get kubernetesPolicies(): KubernetesPolicySource | undefined {
    return this.source;
  }

  /** Why a standby does not serve the agent channel (the gRPC details agents read). */
  notLeader(): string {
    if (!this.followed) return 'not the leader: the hub is starting';
    const l = this.followed.leader();
    if (!l || l.id === this.followed.self.id) return 'not the leader: no leader is known (an election is running)';
    return `not the leader: the leader is ${l.id} at ${l.agents}`;
  }

  /** The agent-channel handlers, answering UNAVAILABLE while this replica does not serve them. */
  gate(handlers: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
    const connect = handlers.Connect as (stream: AgentStream) => void;
    const join = handlers.Join as grpc.handleUnaryCall<unknown, unknown>;
    return {
      ...handlers,
      Connect: (stream: AgentStream) => {
        if (this.serving) return connect(stream);
        stream.emit('error', { code: grpc.status.UNAVAILABLE, details: this.notLeader() });
      },
      Join: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        if (this.serving) return join(call, callback);
        callback({ code: grpc.status.UNAVAILABLE, details: this.notLeader() });
      },
    };
  }

  private async takeOver(): Promise<void> {
    await this.opts.liveness.start();
    try {
      if (this.opts.startKubernetesPolicies) this.source = await this.opts.startKubernetesPolicies();
    } catch (err) {
      this.opts.liveness.silence();
      throw err;
    }
    this.serving = true;
    log.info('serving the agent channel (leader)', { id: this.followed?.self.id });
  }

  private async stepDown(): Promise<void> {
    if (!this.serving && !this.source) return;
    this.serving = false;
    this.opts.liveness.silence();
    this.opts.sessions.endSessions(`this hub stepped down (${this.notLeader()})`);
    const source = this.source;
    this.source = undefined;
    await source?.stop();
  }
}
