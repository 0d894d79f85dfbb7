// A bare ADS client for protocol tests: sends DiscoveryRequests exactly as told
// and queues the responses (no xDS library logic in between).
import * as grpc from '@grpc/grpc-js';
import { adsServiceDefinition } from '../../src/xds/proto.js';

export interface RawRequest {
  type_url: string;
  resource_names?: string[];
  response_nonce?: string;
  version_info?: string;
  error_detail?: { code: number; message: string };
  node?: { id: string; cluster: string; locality?: { region: string; zone: string; sub_zone?: string } };
}

export interface RawResponse {
  version_info: string;
  type_url: string;
  nonce: string;
  resources: { type_url: string; value: Buffer }[];
}

type Duplex = grpc.ClientDuplexStream<RawRequest, RawResponse>;

let adsCtor: grpc.ServiceClientConstructor | undefined;
/** The ADS client class, loaded once (loading ads.proto per client would dominate tests with many streams). */
export function adsClientConstructor(): grpc.ServiceClientConstructor {
  if (!adsCtor) {
    // makeGenericClientConstructor wants grpc-js's ServiceDefinition; proto-loader's is the same shape.
    adsCtor = grpc.makeGenericClientConstructor(adsServiceDefinition(), 'AggregatedDiscoveryService');
  }
  return adsCtor;
}

export interface RawAdsClientOptions {
  /** ACK every response at once with the names last requested for its type (load tests). */
  autoAck?: boolean;
}

export class RawAdsClient {
  private readonly client: grpc.Client;
  private readonly call: Duplex;
  private readonly queue: RawResponse[] = [];
  private waiters: (() => void)[] = [];
  ended = false;

  /** Names last requested per type (what an auto-ACK repeats). */
  private readonly names = new Map<string, string[]>();
  /** Responses received so far. */
  received = 0;

  constructor(
    address: string,
    node: RawRequest['node'] = { id: 'test~ns~raw', cluster: 'test', locality: { region: 'r', zone: 'z' } },
    private readonly opts: RawAdsClientOptions = {},
  ) {
    const Ctor = adsClientConstructor();
    // Like Envoy (unlimited by default), not grpc-js (4 MB): wildcard responses of a big fleet are larger.
    this.client = new Ctor(address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
    // The generated method is untyped on the generic constructor.
    const method = (this.client as unknown as Record<string, () => Duplex>)['StreamAggregatedResources']!;
    this.call = method.call(this.client);
    this.call.on('data', (r: RawResponse) => {
      this.received++;
      if (this.opts.autoAck) {
        this.ack(r, this.names.get(r.type_url) ?? []);
        return;
      }
      this.queue.push(r);
      for (const w of this.waiters.splice(0)) w();
    });
    this.call.on('error', () => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w();
    });
    this.call.on('end', () => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w();
    });
    this.node = node;
  }

  private node: RawRequest['node'];

  send(req: RawRequest): void {
    const msg: RawRequest = { resource_names: [], ...req };
    this.names.set(msg.type_url, msg.resource_names ?? []);
    if (this.node) {
      msg.node = this.node;
      this.node = undefined; // only on the first request, as clients do
    }
    this.call.write(msg);
  }

  /** ACKs a response with the same names. */
  ack(r: RawResponse, names: string[]): void {
    this.send({ type_url: r.type_url, resource_names: names, response_nonce: r.nonce, version_info: r.version_info });
  }

  /** Next response, or throws after timeoutMs. */
  async next(timeoutMs = 2000): Promise<RawResponse> {
    const end = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (this.ended) throw new Error('ADS stream ended');
      const left = end - Date.now();
      if (left <= 0) throw new Error(`no ADS response within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.queue.shift()!;
  }

  /** Asserts that nothing arrives within ms. */
  async nothingWithin(ms: number): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    if (this.queue.length > 0) throw new Error(`unexpected ADS response: ${JSON.stringify(this.queue[0], (k, v: unknown) => (k === 'resources' ? '[...]' : v))}`);
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}
