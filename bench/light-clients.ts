// Light ADS clients (the benchmark's proxies), run in a child process of the
// benchmark so that their work never delays the orchestrator's clock or the
// simulated agents. Each client is its own gRPC connection (local subchannel
// pool), speaks state-of-the-world ADS, subscribes by the naming convention to
// the Listener, RouteConfiguration, Cluster and ClusterLoadAssignment of its
// services, and ACKs every response at once.
//
// For the change being measured ('expect'), each client records the time of the
// ACK of the first ClusterLoadAssignment response that reflects it (the endpoint
// present after a registration, absent after a deregistration); the process
// reports the last of those times once every subscribed client has seen it.
import * as grpc from '@grpc/grpc-js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { typeForUrl } from '../src/xds/proto.js';
import { ADS_METHOD, adsCodec, type DiscoveryRequest, type DiscoveryResponse } from './ads.js';
import { now, type ExpectMsg, type FromLight, type LoopStats, type ToLight } from './ipc.js';
import { clusterInfo, AGENT_B, hotServices, proxySubscriptions, resourceNames, serviceInfo, type Scale } from './model.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../src/xdsapi/index.js';

const TYPES = [LISTENER_TYPE, ROUTE_TYPE, CLUSTER_TYPE, ENDPOINT_TYPE] as const;

function send(m: FromLight): void {
  process.send?.(m);
}

/** cluster_name (field 1, written first by protobuf encoders) of an encoded ClusterLoadAssignment, without decoding the rest. */
function claName(b: Buffer): string {
  if (b[0] === 0x0a) {
    let len = 0;
    let shift = 0;
    let i = 1;
    for (; i < b.length; i++) {
      len |= (b[i]! & 0x7f) << shift;
      if (b[i]! < 0x80) break;
      shift += 7;
    }
    return b.toString('utf8', i + 1, i + 1 + len);
  }
  return String((typeForUrl(ENDPOINT_TYPE).decode(b) as unknown as { cluster_name: string }).cluster_name);
}

interface DecodedCla {
  endpoints?: { lb_endpoints?: { endpoint?: { address?: { socket_address?: { address?: string; port_value?: number } } } }[] }[];
}

/** Whether the encoded ClusterLoadAssignment lists address:port (decoded with protobufjs and Envoy's protos). */
function hasEndpoint(b: Buffer, address: string, port: number): boolean {
  const cla = typeForUrl(ENDPOINT_TYPE).decode(b) as unknown as DecodedCla;
  for (const loc of cla.endpoints ?? []) {
    for (const lb of loc.lb_endpoints ?? []) {
      const sa = lb.endpoint?.address?.socket_address;
      if (sa?.address === address && sa.port_value === port) return true;
    }
  }
  return false;
}

interface Expectation extends ExpectMsg {
  matched: number;
  subscribers: number;
  firstAckAt: number;
  lastAckAt: number;
  version: string;
  responses: number;
  done: boolean;
  /** Decoding cache: clients mostly receive byte-identical assignments. */
  lastBytes?: Buffer;
  lastResult?: boolean;
}

let scale: Scale;
let proxies: number[] = [];
let locality = { region: '', zone: '', sub_zone: '' };
let clients: LightClient[] = [];
let expectation: Expectation | undefined;
let syncedCount = 0;
let syncFirst = 0;
let syncLast = 0;
let hotNames = new Set<string>();
const codec = adsCodec();

class LightClient {
  readonly names: Record<string, string[]>;
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
  private readonly answered = new Map<string, number>();
  synced = false;
  matched = false;
  closing = false;
  /** Last bytes of each hot ClusterLoadAssignment this client received. */
  readonly hot = new Map<string, Buffer>();

  constructor(
    readonly n: number,
    target: string,
    private readonly mode: 'meshfed' | 'floor',
  ) {
    const subs = proxySubscriptions(scale, n).map((s) => resourceNames(serviceInfo(scale, s)));
    this.names = {
      [LISTENER_TYPE]: subs.map((r) => r.listener),
      [ROUTE_TYPE]: subs.map((r) => r.route),
      [CLUSTER_TYPE]: subs.map((r) => r.cluster),
      [ENDPOINT_TYPE]: subs.map((r) => r.endpoints),
    };
    // Own connection per proxy, like separate proxy processes would have.
    this.client = new grpc.Client(target, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': -1,
    });
    this.call = this.client.makeBidiStreamRequest(ADS_METHOD, codec.serialize, codec.deserialize);
    this.call.on('data', (r: DiscoveryResponse) => this.onResponse(r));
    this.call.on('error', (err: Error) => {
      if (!this.closing) send({ type: 'error', message: `proxy-${n}: ADS stream failed: ${err.message}` });
    });
    const node = {
      id: `${clusterInfo(AGENT_B).name}~bench~proxy-${n}`,
      cluster: clusterInfo(AGENT_B).name,
      locality,
      user_agent_name: 'meshfed-bench',
    };
    TYPES.forEach((t, i) => this.call.write({ type_url: t, resource_names: this.names[t]!, ...(i === 0 ? { node } : {}) }));
  }

  private onResponse(r: DiscoveryResponse): void {
    // ACK first: the latency being measured ends with the ACK.
    this.call.write({ type_url: r.type_url, resource_names: this.names[r.type_url] ?? [], version_info: r.version_info, response_nonce: r.nonce });
    const at = now();
    this.answered.set(r.type_url, r.resources.length);
    if (!this.synced) this.checkSynced(at);
    if (r.type_url !== ENDPOINT_TYPE) return;
    for (const a of r.resources) {
      // Only the hot assignments matter; the name sits in the first bytes.
      if (hotNames.size === 0) break;
      const name = claName(a.value);
      if (hotNames.has(name)) this.hot.set(name, a.value);
    }
    const e = expectation;
    if (!e || e.done || this.matched || !this.names[ENDPOINT_TYPE]!.includes(e.name)) return;
    e.responses++;
    const b = this.hot.get(e.name);
    if (b && reflects(e, b)) {
      this.matched = true;
      e.matched++;
      if (e.matched === 1) {
        e.firstAckAt = at;
        e.version = r.version_info;
      }
      e.lastAckAt = Math.max(e.lastAckAt, at);
      if (e.matched === e.subscribers) finish(e);
    }
  }

  private checkSynced(at: number): void {
    for (const t of TYPES) {
      const got = this.answered.get(t);
      if (got === undefined) return;
      // Against meshfed, every subscribed name exists: synced means all of them arrived.
      if (this.mode === 'meshfed' && got < this.names[t]!.length) return;
    }
    this.synced = true;
    syncedCount++;
    syncFirst = syncFirst || at;
    syncLast = Math.max(syncLast, at);
    if (syncedCount === clients.length) send({ type: 'synced', at: syncLast, firstAt: syncFirst, clients: clients.length });
  }

  close(): void {
    this.closing = true;
    this.call.cancel();
    this.client.close();
  }
}

function reflects(e: Expectation, b: Buffer): boolean {
  if (e.lastBytes && e.lastBytes.equals(b)) return e.lastResult!;
  const r = hasEndpoint(b, e.address, e.port) === e.present;
  e.lastBytes = b;
  e.lastResult = r;
  return r;
}

function finish(e: Expectation): void {
  e.done = true;
  send({
    type: 'converged',
    id: e.id,
    lastAckAt: e.matched === e.subscribers ? e.lastAckAt : NaN,
    firstAckAt: e.firstAckAt,
    matched: e.matched,
    clients: e.subscribers,
    version: e.version,
    responses: e.responses,
  });
}

const loop = monitorEventLoopDelay({ resolution: 1 });
let loopStart = { cpu: process.cpuUsage(), wall: now() };

function loopStats(): LoopStats {
  const cpu = process.cpuUsage(loopStart.cpu);
  return {
    p50: loop.percentile(50) / 1e6,
    p99: loop.percentile(99) / 1e6,
    max: loop.max / 1e6,
    cpuMs: (cpu.user + cpu.system) / 1000,
    wallMs: now() - loopStart.wall,
  };
}

process.on('message', (m: ToLight) => {
  try {
    switch (m.type) {
      case 'init':
        scale = m.scale;
        proxies = m.proxies;
        locality = { region: m.region, zone: m.zone, sub_zone: m.localitySubZone };
        hotNames = new Set(hotServices(scale).map((s) => resourceNames(s).endpoints));
        loop.enable();
        send({ type: 'ready' });
        break;
      case 'connect':
        syncedCount = 0;
        syncFirst = 0;
        syncLast = 0;
        expectation = undefined;
        clients = proxies.map((n) => new LightClient(n, m.target, m.mode));
        break;
      case 'expect': {
        const e: Expectation = { ...m, matched: 0, subscribers: 0, firstAckAt: 0, lastAckAt: 0, version: '', responses: 0, done: false };
        let already = 0;
        for (const c of clients) {
          c.matched = false;
          if (!c.names[ENDPOINT_TYPE]!.includes(m.name)) continue;
          e.subscribers++;
          const b = c.hot.get(m.name);
          if (b && reflects(e, b)) {
            // The state already shows the change before it is made: a harness bug
            // (the orchestrator warns). Count it, so the change cannot hang.
            already++;
            c.matched = true;
            e.matched++;
          }
        }
        if (already > 0) e.firstAckAt = e.lastAckAt = now();
        expectation = e;
        send({ type: 'expect-ready', id: m.id, alreadyMatched: already });
        if (e.matched === e.subscribers) finish(e);
        break;
      }
      case 'report':
        if (expectation && expectation.id === m.id && !expectation.done) finish(expectation);
        break;
      case 'capture': {
        const resources: Record<string, string> = {};
        for (const name of m.names) {
          const b = clients.find((c) => c.hot.has(name))?.hot.get(name);
          if (b) resources[name] = b.toString('base64');
        }
        send({ type: 'captured', resources });
        break;
      }
      case 'disconnect':
        for (const c of clients) c.close();
        clients = [];
        send({ type: 'disconnected' });
        break;
      case 'loop-reset':
        loop.reset();
        loopStart = { cpu: process.cpuUsage(), wall: now() };
        break;
      case 'loop-read':
        send({ type: 'loop', loop: loopStats() });
        break;
      case 'stop':
        for (const c of clients) c.close();
        process.exit(0);
    }
  } catch (err) {
    send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  }
});

// Never outlive the benchmark.
process.on('disconnect', () => process.exit(0));
