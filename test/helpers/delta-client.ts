// A bare incremental (delta) ADS client that follows the xDS protocol's
// "Incremental xDS" section and nothing more: it subscribes and unsubscribes by
// name, ACKs with the response nonce, NACKs with error_detail (keeping what it
// had), holds name -> version of what it accepted, and on reconnect sends its
// subscriptions with initial_resource_versions. Requests go out exactly as told.
import * as grpc from '@grpc/grpc-js';
import { adsClientConstructor } from './ads-client.js';

export interface DeltaRequest {
  type_url: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: { code: number; message: string };
  node?: { id: string; cluster: string; locality?: { region: string; zone: string; sub_zone?: string } };
}

export interface DeltaResource {
  name: string;
  version: string;
  resource: { type_url: string; value: Buffer } | null;
}

export interface DeltaResponse {
  system_version_info: string;
  type_url: string;
  nonce: string;
  resources: DeltaResource[];
  removed_resources: string[];
}

type Duplex = grpc.ClientDuplexStream<DeltaRequest, DeltaResponse>;

export interface DeltaClientOptions {
  /** Accept and ACK every response at once (load tests). */
  autoAck?: boolean;
}

export class DeltaAdsClient {
  private readonly client: grpc.Client;
  private call!: Duplex;
  private queue: DeltaResponse[] = [];
  private waiters: (() => void)[] = [];
  private nodeToSend: DeltaRequest['node'];
  ended = false;
  received = 0;
  /** Per type: name -> version of the resources accepted (ACKed). */
  readonly held = new Map<string, Map<string, string>>();
  /** Per type: names subscribed ('*' for the wildcard). */
  readonly subscriptions = new Map<string, Set<string>>();

  constructor(
    address: string,
    private readonly node: NonNullable<DeltaRequest['node']> = { id: 'test~ns~delta', cluster: 'test', locality: { region: 'r', zone: 'z' } },
    private readonly opts: DeltaClientOptions = {},
  ) {
    const Ctor = adsClientConstructor();
    // Like Envoy (unlimited by default), not grpc-js (4 MB): wildcard responses of a big fleet are larger.
    this.client = new Ctor(address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
    this.open();
  }

  private open(): void {
    // The generated method is untyped on the generic constructor.
    const method = (this.client as unknown as Record<string, () => Duplex>)['DeltaAggregatedResources']!;
    const call = method.call(this.client);
    this.call = call;
    this.queue = [];
    this.ended = false;
    this.nodeToSend = this.node;
    const wake = (): void => {
      for (const w of this.waiters.splice(0)) w();
    };
    call.on('data', (r: DeltaResponse) => {
      if (call !== this.call) return;
      this.received++;
      if (this.opts.autoAck) return this.ack(r);
      this.queue.push(r);
      wake();
    });
    const ended = (): void => {
      if (call !== this.call) return;
      this.ended = true;
      wake();
    };
    call.on('error', ended);
    call.on('end', ended);
  }

  /** Sends a request exactly as given (the node goes on the first one, as clients do). */
  send(req: DeltaRequest): void {
    const msg: DeltaRequest = { resource_names_subscribe: [], resource_names_unsubscribe: [], ...req };
    if (this.nodeToSend) {
      msg.node = this.nodeToSend;
      this.nodeToSend = undefined;
    }
    this.call.write(msg);
  }

  subscribe(typeUrl: string, names: string[]): void {
    const subs = this.subsFor(typeUrl);
    for (const n of names) subs.add(n);
    this.send({ type_url: typeUrl, resource_names_subscribe: names });
  }

  unsubscribe(typeUrl: string, names: string[]): void {
    const subs = this.subsFor(typeUrl);
    for (const n of names) subs.delete(n);
    // The client forgets what it unsubscribed from (a wildcard keeps its resources until the server says).
    if (!subs.has('*')) for (const n of names) this.heldFor(typeUrl).delete(n);
    this.send({ type_url: typeUrl, resource_names_unsubscribe: names });
  }

  /** Applies a response to `held` and ACKs it. */
  ack(r: DeltaResponse): void {
    const held = this.heldFor(r.type_url);
    for (const res of r.resources) held.set(res.name, res.version);
    for (const n of r.removed_resources) held.delete(n);
    this.send({ type_url: r.type_url, response_nonce: r.nonce });
  }

  /** Rejects a response: keeps what it held, reports the error. */
  nack(r: DeltaResponse, message: string): void {
    this.send({ type_url: r.type_url, response_nonce: r.nonce, error_detail: { code: 3, message } });
  }

  /** Drops the stream (as a lost connection would); what it holds and subscribes to stays for reconnect(). */
  disconnect(): void {
    if (this.ended) return;
    this.ended = true;
    this.call.cancel();
  }

  /**
   * Opens a new stream: per type, the first request subscribes to everything it
   * was subscribed to and lists what it holds in initial_resource_versions (no
   * state is assumed to survive on the server).
   */
  reconnect(): void {
    this.disconnect();
    this.open();
    for (const [typeUrl, subs] of this.subscriptions) {
      this.send({ type_url: typeUrl, resource_names_subscribe: [...subs], initial_resource_versions: Object.fromEntries(this.heldFor(typeUrl)) });
    }
  }

  /** Next response, or throws after timeoutMs. */
  async next(timeoutMs = 2000): Promise<DeltaResponse> {
    const end = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (this.ended) throw new Error('delta ADS stream ended');
      const left = end - Date.now();
      if (left <= 0) throw new Error(`no delta ADS response within ${timeoutMs} ms`);
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
    if (this.queue.length > 0) {
      const r = this.queue[0]!;
      throw new Error(`unexpected delta response: ${JSON.stringify({ type: r.type_url, resources: r.resources.map((x) => x.name), removed: r.removed_resources })}`);
    }
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }

  private subsFor(typeUrl: string): Set<string> {
    let s = this.subscriptions.get(typeUrl);
    if (!s) this.subscriptions.set(typeUrl, (s = new Set()));
    return s;
  }

  heldFor(typeUrl: string): Map<string, string> {
    let m = this.held.get(typeUrl);
    if (!m) this.held.set(typeUrl, (m = new Map()));
    return m;
  }
}
