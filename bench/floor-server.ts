// The floor: a minimal ADS server with no control-plane work at all. It answers
// subscriptions (empty Listener/Route/Cluster responses, the captured assignment
// bytes for every ClusterLoadAssignment name), and for each change encodes one
// ClusterLoadAssignment with protobufjs and writes it to every stream subscribed
// to it — the least any control plane must do to deliver a change. The light
// clients measure it exactly as they measure meshfed.
import * as grpc from '@grpc/grpc-js';
import { typeForUrl } from '../src/xds/proto.js';
import { adsServiceDefinition, type AnyMsg, type DiscoveryRequest, type DiscoveryResponse } from './ads.js';
import { ENDPOINT_TYPE } from '../src/xdsapi/index.js';

interface FloorStream {
  call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>;
  /** ClusterLoadAssignment names subscribed. */
  eds: string[];
  edsSet: Set<string>;
  /** Per type: names of the last request, to tell an ACK from a subscription change. */
  names: Map<string, string>;
}

interface LbEndpoint {
  endpoint: { address: { socket_address: { address: string; port_value: number } } };
  health_status?: string;
}
interface Cla {
  cluster_name: string;
  endpoints?: { lb_endpoints?: LbEndpoint[]; load_balancing_weight?: { value: number } }[];
}

export class FloorServer {
  private readonly server = new grpc.Server();
  private readonly streams = new Set<FloorStream>();
  /** Current bytes per assignment name; names without an entry get the stand-in. */
  private readonly edsBytes = new Map<string, Buffer>();
  private readonly standIn: Buffer;
  private version = 1;
  private nonce = 0;

  /** captured: ClusterLoadAssignment bytes as B last sent them, by name; the first is the stand-in for other names. */
  constructor(captured: Map<string, Buffer>) {
    for (const [n, b] of captured) this.edsBytes.set(n, b);
    const first = captured.values().next().value;
    if (!first) throw new Error('the floor needs at least one captured ClusterLoadAssignment');
    // Other services' assignments are similar in size; the floor sends these bytes for them.
    this.standIn = first;
    this.server.addService(adsServiceDefinition(), {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => this.onStream(call),
    });
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  }

  close(): void {
    this.server.forceShutdown();
  }

  /** Decodes the current assignment and adds or removes one endpoint (done before the clock starts: not floor work). */
  prepare(name: string, address: string, port: number, present: boolean): Record<string, unknown> {
    const type = typeForUrl(ENDPOINT_TYPE);
    const cla = type.toObject(type.decode(this.edsBytes.get(name) ?? this.standIn), { enums: String, longs: Number }) as Cla;
    cla.cluster_name = name;
    cla.endpoints ??= [];
    if (cla.endpoints.length === 0) cla.endpoints.push({ lb_endpoints: [], load_balancing_weight: { value: 1 } });
    const loc = cla.endpoints[0]!;
    const same = (e: LbEndpoint) => e.endpoint.address.socket_address.address === address && e.endpoint.address.socket_address.port_value === port;
    loc.lb_endpoints = (loc.lb_endpoints ?? []).filter((e) => !same(e));
    if (present) loc.lb_endpoints.push({ endpoint: { address: { socket_address: { address, port_value: port } } }, health_status: 'HEALTHY' });
    loc.load_balancing_weight = { value: Math.max(1, loc.lb_endpoints.length) };
    return cla as unknown as Record<string, unknown>;
  }

  /** The floor's work for one change: encode once, write to every subscribed stream. Returns the streams written. */
  push(name: string, cla: Record<string, unknown>): number {
    const type = typeForUrl(ENDPOINT_TYPE);
    this.edsBytes.set(name, Buffer.from(type.encode(type.fromObject(cla)).finish()));
    this.version++;
    let n = 0;
    for (const s of this.streams) {
      if (!s.edsSet.has(name)) continue;
      this.respond(s, ENDPOINT_TYPE);
      n++;
    }
    return n;
  }

  private onStream(call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>): void {
    const s: FloorStream = { call, eds: [], edsSet: new Set(), names: new Map() };
    this.streams.add(s);
    const done = () => this.streams.delete(s);
    call.on('data', (req: DiscoveryRequest) => {
      const key = req.resource_names.join('\n');
      // Same names as before: an ACK (or NACK); nothing to answer.
      if (s.names.get(req.type_url) === key) return;
      s.names.set(req.type_url, key);
      if (req.type_url === ENDPOINT_TYPE) {
        s.eds = [...req.resource_names];
        s.edsSet = new Set(s.eds);
        for (const n of s.eds) if (!this.edsBytes.has(n)) this.edsBytes.set(n, this.standInFor(n));
      }
      this.respond(s, req.type_url);
    });
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('cancelled', done);
  }

  /** The stand-in assignment under another name (clients key assignments by cluster_name). */
  private standInFor(name: string): Buffer {
    const type = typeForUrl(ENDPOINT_TYPE);
    const cla = type.decode(this.standIn) as unknown as { cluster_name: string };
    cla.cluster_name = name;
    return Buffer.from(type.encode(cla as unknown as Record<string, unknown>).finish());
  }

  private respond(s: FloorStream, typeUrl: string): void {
    const resources: AnyMsg[] = typeUrl === ENDPOINT_TYPE ? s.eds.map((n) => ({ type_url: ENDPOINT_TYPE, value: this.edsBytes.get(n)! })) : [];
    s.call.write({ version_info: String(this.version), resources, type_url: typeUrl, nonce: String(++this.nonce) });
  }
}
