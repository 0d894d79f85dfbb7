// Simulated agents: every cluster of the fleet except the two real agents, in a
// child process of the benchmark (its own event loop). Each dials the hub's agent
// channel like an agent (own connection), says Hello, sends one full report of
// its cluster's Services and Workloads, keeps the stream open and ACKs views as
// the agent does (the latest revision, at most once a second).
//
// Views are not parsed: a custom deserializer reads only the revision (and
// whether more messages of the same view follow) from the protobuf bytes and
// skips the JSON payloads, so 98 agents receiving the whole fleet cost this
// process little (a real agent would parse them).
import * as grpc from '@grpc/grpc-js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { ACK_INTERVAL_MS, BACKOFF_MAX_MS, BACKOFF_MIN_MS, HEALTHY_AFTER_MS, jittered } from '../src/agent/hub-connection.js';
import { agentChannelService, MAX_HUB_MESSAGE_BYTES, type AgentMessage } from '../src/channel/protocol.js';
import { now, type FromSim, type LoopStats, type ToSim } from './ipc.js';
import { clusterInfo, clusterObjects, type ClusterInfo } from './model.js';

const CONNECT_METHOD = '/meshfed.v1alpha1.AgentChannel/Connect';

function send(m: FromSim): void {
  process.send?.(m);
}

type HubMsg =
  | { kind: 'welcome' }
  | { kind: 'view'; revision: number; more: boolean }
  | { kind: 'ack'; generation: number; revision: number }
  | { kind: 'rejected'; code: string; message: string }
  | { kind: 'other' };

function varint(b: Buffer, pos: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (;;) {
    const byte = b[pos++]!;
    v += (byte & 0x7f) * mul;
    if (byte < 0x80) return [v, pos];
    mul *= 128;
  }
}

/** Fields of one message: varints as numbers, length-delimited as [start, end) without copying. */
function fields(b: Buffer, start: number, end: number): Map<number, number | [number, number]> {
  const out = new Map<number, number | [number, number]>();
  let pos = start;
  while (pos < end) {
    const [tag, p1] = varint(b, pos);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) {
      const [v, p2] = varint(b, p1);
      out.set(field, v);
      pos = p2;
    } else if (wire === 2) {
      const [len, p2] = varint(b, p1);
      out.set(field, [p2, p2 + len]);
      pos = p2 + len;
    } else if (wire === 1) pos = p1 + 8;
    else if (wire === 5) pos = p1 + 4;
    else throw new Error(`unexpected wire type ${wire}`);
  }
  return out;
}

/** HubMessage (proto/meshfed/agent_channel.proto) reduced to what a simulated agent needs. */
function parseHub(b: Buffer): HubMsg {
  const top = fields(b, 0, b.length);
  const sub = (f: number) => {
    const r = top.get(f);
    return Array.isArray(r) ? fields(b, r[0], r[1]) : undefined;
  };
  const num = (m: Map<number, number | [number, number]>, f: number) => {
    const v = m.get(f);
    return typeof v === 'number' ? v : 0;
  };
  const str = (m: Map<number, number | [number, number]>, f: number) => {
    const v = m.get(f);
    return Array.isArray(v) ? b.toString('utf8', v[0], v[1]) : '';
  };
  if (top.has(1)) return { kind: 'welcome' };
  const view = sub(2);
  if (view) return { kind: 'view', revision: num(view, 1), more: num(view, 5) === 1 };
  const ack = sub(3);
  if (ack) return { kind: 'ack', generation: num(ack, 1), revision: num(ack, 2) };
  const rej = sub(4);
  if (rej) return { kind: 'rejected', code: str(rej, 1), message: str(rej, 2) };
  return { kind: 'other' };
}

class SimAgent {
  private client: grpc.Client | undefined;
  private call: grpc.ClientDuplexStream<AgentMessage, HubMsg> | undefined;
  reportAt = 0;
  ackAt = 0;
  /** The report of the current connection was acknowledged. */
  acked = false;
  connected = false;
  viewRevision = 0;
  reconnects = 0;
  private backoffMs = BACKOFF_MIN_MS;
  private healthyTimer: NodeJS.Timeout | undefined;
  private ackTimer: NodeJS.Timeout | undefined;
  private lastAckAt = 0;
  private stopping = false;

  constructor(
    readonly cluster: ClusterInfo,
    private readonly objectsJson: string,
  ) {}

  connect(hub: string): void {
    // Own connection per agent, as separate agent processes would have; the
    // keepalive settings are the real agent's (src/channel/protocol.ts).
    this.client = new grpc.Client(hub, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': MAX_HUB_MESSAGE_BYTES,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    this.dial();
  }

  private dial(): void {
    if (this.stopping || !this.client) return;
    const serialize = agentChannelService()['Connect']!.requestSerialize as (m: AgentMessage) => Buffer;
    const call = this.client.makeBidiStreamRequest(CONNECT_METHOD, serialize, parseHub);
    this.call = call;
    let ended = false;
    // Like the real agent (src/agent/hub-connection.ts): a lost stream is redialed with
    // jittered backoff (0.25 s doubling to 5 s, reset only after a connection stayed up
    // for a while) and the full report is sent again on the new connection.
    const onEnd = (why: string) => {
      if (ended || this.stopping) return;
      ended = true;
      this.connected = false;
      this.acked = false;
      this.reconnects++;
      if (this.healthyTimer) clearTimeout(this.healthyTimer);
      lastDrop = `${this.cluster.name}: ${why}`;
      setTimeout(() => this.dial(), jittered(this.backoffMs));
      this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    };
    call.on('data', (m: HubMsg) => this.onMessage(m));
    call.on('error', (err: Error) => onEnd(err.message));
    call.on('end', () => onEnd('stream ended'));
    const c = this.cluster;
    call.write({
      hello: {
        cluster: c.name,
        network: c.network,
        region: c.region,
        zones: c.zones,
        agentVersion: 'bench',
        viewRevision: String(this.viewRevision),
        importNamespaces: [],
        viewChunks: true,
      },
    });
  }

  private onMessage(m: HubMsg): void {
    switch (m.kind) {
      case 'welcome': {
        this.connected = true;
        if (this.healthyTimer) clearTimeout(this.healthyTimer);
        this.healthyTimer = setTimeout(() => {
          if (this.connected) this.backoffMs = BACKOFF_MIN_MS;
        }, HEALTHY_AFTER_MS);
        this.healthyTimer.unref();
        if (!this.reportAt) this.reportAt = now();
        // A variable, not a literal: the same shape fits both versions of the Report type.
        const report = { generation: String(this.reconnects + 1), full: true, objectsJson: this.objectsJson };
        this.call!.write({ report });
        break;
      }
      case 'ack':
        this.ackAt = now();
        this.acked = true;
        onAck();
        break;
      case 'view':
        // A view in several messages counts (and is ACKed) once its last message is in, as the agent does.
        if (m.more) break;
        this.viewRevision = Math.max(this.viewRevision, m.revision);
        this.ack();
        onView();
        break;
      case 'rejected':
        send({ type: 'error', message: `${this.cluster.name}: hub rejected the simulated agent (${m.code}): ${m.message}` });
        break;
    }
  }

  /** ACKs the latest revision like the agent: at most once per ACK_INTERVAL_MS, the last one always. */
  private ack(): void {
    if (this.ackTimer) return;
    const send = () => {
      this.ackTimer = undefined;
      this.lastAckAt = performance.now();
      if (this.connected) this.call?.write({ viewAck: { revision: String(this.viewRevision) } });
    };
    const wait = this.lastAckAt + ACK_INTERVAL_MS - performance.now();
    if (wait <= 0) send();
    else this.ackTimer = setTimeout(send, wait);
  }

  stop(): void {
    this.stopping = true;
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.call?.cancel();
    this.client?.close();
  }
}

let agents: SimAgent[] = [];
let loadedSent = false;
let lastDrop: string | undefined;
let waitRevision: number | undefined;
const loop = monitorEventLoopDelay({ resolution: 1 });
let loopStart = { cpu: process.cpuUsage(), wall: now() };

function loopStats(): LoopStats {
  const cpu = process.cpuUsage(loopStart.cpu);
  return { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6, cpuMs: (cpu.user + cpu.system) / 1000, wallMs: now() - loopStart.wall };
}

let hubAddr = '';
let progressTimer: NodeJS.Timeout | undefined;
let batch = 0;
let started = 0;

/** Dials the next batch of agents. */
function connectNext(): void {
  const end = Math.min(agents.length, started + batch);
  for (; started < end; started++) agents[started]!.connect(hubAddr);
}

function onAck(): void {
  if (started < agents.length) {
    // Staggered start: the next batch once every dialed agent's report is in.
    if (agents.slice(0, started).every((a) => a.acked)) connectNext();
    return;
  }
  if (loadedSent || agents.some((a) => !a.acked)) return;
  loadedSent = true;
  // Progress is for the load; later drops still show up as reconnects.
  clearInterval(progressTimer);
  send({
    type: 'loaded',
    firstReportAt: Math.min(...agents.map((a) => a.reportAt)),
    lastAckAt: Math.max(...agents.map((a) => a.ackAt)),
    agents: agents.length,
    reconnects: agents.reduce((s, a) => s + a.reconnects, 0),
    loop: loopStats(),
  });
}

function reportProgress(): void {
  const p: FromSim = {
    type: 'progress',
    acked: agents.filter((a) => a.acked).length,
    connected: agents.filter((a) => a.connected).length,
    agents: agents.length,
    reconnects: agents.reduce((s, a) => s + a.reconnects, 0),
  };
  if (lastDrop) p.lastDrop = lastDrop;
  send(p);
}

function onView(): void {
  if (waitRevision === undefined) return;
  for (const a of agents) if (a.viewRevision < waitRevision) return;
  waitRevision = undefined;
  send({ type: 'revision-reached', at: now(), loop: loopStats() });
}

process.on('message', (m: ToSim) => {
  try {
    switch (m.type) {
      case 'start': {
        const t0 = now();
        const byCluster = clusterObjects(m.scale, new Set(m.clusters));
        let objects = 0;
        agents = m.clusters.map((ci) => {
          const list = byCluster.get(ci)!;
          objects += list.length;
          return new SimAgent(clusterInfo(ci), JSON.stringify(list));
        });
        byCluster.clear();
        send({ type: 'generated', objects, ms: now() - t0 });
        loop.enable();
        loop.reset();
        loopStart = { cpu: process.cpuUsage(), wall: now() };
        if (agents.length === 0) {
          send({ type: 'loaded', firstReportAt: now(), lastAckAt: now(), agents: 0, reconnects: 0, loop: loopStats() });
          break;
        }
        hubAddr = m.hubAgentAddr;
        batch = m.batch > 0 ? m.batch : agents.length;
        connectNext();
        progressTimer = setInterval(reportProgress, 5000);
        progressTimer.unref();
        break;
      }
      case 'wait-revision':
        waitRevision = m.revision;
        onView();
        break;
      case 'stop':
        for (const a of agents) a.stop();
        process.exit(0);
    }
  } catch (err) {
    send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  }
});

process.on('disconnect', () => process.exit(0));
