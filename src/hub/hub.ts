// The hub process: the store, the HTTP API and the agent channel. It is not in
// the traffic path: data planes talk only to their cluster's agent.
import * as grpc from '@grpc/grpc-js';
import type { Server } from 'node:http';
import { agentChannelServerService, MAX_AGENT_MESSAGE_BYTES } from '../channel/protocol.js';
import { FileStore } from '../store/file-store.js';
import type { Store } from '../store/store.js';
import { describeListenError, formatHostPort, type HostPort } from '../util/address.js';
import { logger } from '../util/log.js';
import { AgentSessions } from './agent-sessions.js';
import { createHubHttpServer } from './http-api.js';

const log = logger('hub');

export interface HubOptions {
  dataDir: string;
  api: HostPort;
  agents: HostPort;
  /**
   * Coalescing window for view changes sent to agents: the first change after a
   * quiet period goes out at once, later ones at most once per window.
   */
  viewDebounceMs?: number;
}

export class Hub {
  private constructor(
    readonly store: Store,
    private readonly http: Server,
    private readonly grpcServer: grpc.Server,
    readonly sessions: AgentSessions,
    readonly apiAddress: HostPort,
    readonly agentAddress: HostPort,
  ) {}

  static async start(opts: HubOptions): Promise<Hub> {
    const store = await FileStore.open(opts.dataDir);
    await markAgentsDisconnected(store);
    const sessions = new AgentSessions(store, { viewDebounceMs: opts.viewDebounceMs ?? 20 });
    const http = createHubHttpServer(store, sessions);
    const grpcServer = new grpc.Server({
      'grpc.keepalive_permit_without_calls': 1,
      // A full report is one message (a whole cluster); views go out in chunks of well under 1 MiB.
      'grpc.max_receive_message_length': MAX_AGENT_MESSAGE_BYTES,
      'grpc.max_send_message_length': -1,
    });
    grpcServer.addService(agentChannelServerService(), sessions.handler());
    try {
      await new Promise<void>((resolve, reject) => {
        http.once('error', reject);
        http.listen(opts.api.port, opts.api.host, () => {
          http.off('error', reject);
          resolve();
        });
      }).catch((err: unknown) => {
        throw describeListenError(err, 'hub API', formatHostPort(opts.api));
      });
      const apiPort = (http.address() as { port: number }).port;
      const agentPort = await new Promise<number>((resolve, reject) => {
        grpcServer.bindAsync(formatHostPort(opts.agents), grpc.ServerCredentials.createInsecure(), (err, port) =>
          err ? reject(describeListenError(err, 'hub agent channel', formatHostPort(opts.agents))) : resolve(port),
        );
      });
      const hub = new Hub(store, http, grpcServer, sessions, { host: opts.api.host, port: apiPort }, { host: opts.agents.host, port: agentPort });
      log.info('hub started', {
        api: `http://${formatHostPort(hub.apiAddress)}`,
        agents: formatHostPort(hub.agentAddress),
        dataDir: opts.dataDir,
        revision: store.revision(),
      });
      return hub;
    } catch (err) {
      http.close();
      grpcServer.forceShutdown();
      await store.close();
      throw err;
    }
  }

  async stop(): Promise<void> {
    this.sessions.closeAll();
    this.grpcServer.forceShutdown();
    this.http.closeAllConnections();
    await new Promise<void>((r) => this.http.close(() => r()));
    await this.store.close();
    log.info('hub stopped');
  }
}

/** After a restart no agent is connected yet, whatever the stored status says. */
async function markAgentsDisconnected(store: Store): Promise<void> {
  const stale = (await store.list({ kind: 'Cluster' })).filter(
    (c) => (c.status as { agent?: { connected?: boolean } } | undefined)?.agent?.connected,
  );
  if (stale.length === 0) return;
  await store.commit(
    stale.map((c) => {
      const status = c.status as { agent: Record<string, unknown> };
      return { type: 'put' as const, object: { ...c, status: { ...status, agent: { ...status.agent, connected: false } } } };
    }),
  );
}
