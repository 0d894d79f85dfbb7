// The transport (go-control-plane's pkg/server): the gRPC service
// envoy.service.discovery.v3.AggregatedDiscoveryService and its streams. It reads
// requests, hands them to the stream state machines (sotw.ts, delta.ts), which
// read and watch the snapshot cache, and writes their responses. It owns what is
// per connection: the stream registry, nonces, response counts, proxy status.
// The cache decides who must be answered on a change; this side only flushes
// the streams it is handed (flush) or all of them (flushAll, on becoming ready).
// A failing stream is ended alone: a bug must not take the control plane down.
import * as grpc from '@grpc/grpc-js';
import { MeshfedError, errorMessage } from '../../util/errors.js';
import type { StreamCache, Watcher } from '../cache/subscriptions.js';
import { adsServiceDefinition, protoRoot } from '../proto.js';
import { DeltaStream } from './delta.js';
import { SotwStream } from './sotw.js';
import type { AdsEvent, ProxyStatus, ResponseCall, StreamHost, XdsProtocol, XdsStream } from './streams.js';

export interface AdsServiceOptions {
  log: (msg: string) => void;
  /** Every protocol event, for tests and metrics. */
  onEvent?: (e: AdsEvent) => void;
}

interface StreamEntry {
  stream: XdsStream;
  /** Ends the stream after an internal error, without taking the server down. */
  fail: (err: unknown) => void;
}

let serviceDefinition: grpc.ServiceDefinition | undefined;
function adsService(): grpc.ServiceDefinition {
  if (!serviceDefinition) {
    const def = adsServiceDefinition();
    // Responses are written already encoded (wire.ts), so serializing is the identity.
    const out: Record<string, grpc.MethodDefinition<unknown, Buffer>> = {};
    for (const [name, m] of Object.entries(def)) out[name] = { ...(m as grpc.MethodDefinition<unknown, Buffer>), responseSerialize: (b: Buffer) => b };
    serviceDefinition = out as grpc.ServiceDefinition;
  }
  return serviceDefinition;
}

export class AdsService {
  private readonly host: StreamHost;
  private nonceCounter = 0;
  private streamCounter = 0;
  private readonly streams = new Map<number, StreamEntry>();
  private server: grpc.Server | undefined;
  /** Responses written, all streams. */
  responses = 0;

  constructor(
    cache: StreamCache,
    private readonly opts: AdsServiceOptions,
  ) {
    this.host = {
      cache,
      nextNonce: (stream) => `${stream}-${++this.nonceCounter}`,
      responded: () => void this.responses++,
      observed: opts.onEvent !== undefined,
      emit: (e) => this.emit(e),
      log: opts.log,
    };
  }

  /** Binds (loopback by default: the proxyless clients' channel to us is plaintext). Returns the port. */
  async listen(host = '127.0.0.1', port = 0): Promise<number> {
    if (this.server) throw new MeshfedError('conflict', 'AdsServer is already listening');
    // Load the protos now rather than inside the first setResources (~0.1 s).
    protoRoot();
    const server = new grpc.Server({
      // ADS streams live for the life of the proxy; keep them from idling out behind NATs.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    });
    server.addService(adsService(), {
      StreamAggregatedResources: (call: ResponseCall) => this.handleStream(call, 'sotw'),
      DeltaAggregatedResources: (call: ResponseCall) => this.handleStream(call, 'delta'),
    });
    this.server = server;
    const addr = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    return new Promise((resolve, reject) => {
      server.bindAsync(addr, grpc.ServerCredentials.createInsecure(), (err, bound) => {
        if (!err) return resolve(bound);
        server.forceShutdown();
        this.server = undefined;
        reject(err);
      });
    });
  }

  /** Stops at once: every stream is cancelled (proxies keep their cached config and reconnect). */
  close(): void {
    for (const { stream } of this.streams.values()) stream.dispose();
    this.streams.clear();
    this.server?.forceShutdown();
    this.server = undefined;
  }

  /** The cache became ready: every waiting stream answers. */
  flushAll(version: string): void {
    this.log(`ready with version ${version}; answering ${this.streams.size} waiting stream(s)`);
    for (const e of this.streams.values()) this.flushStream(e);
  }

  /** A commit touched these streams: each sends what it now owes. */
  flush(touched: Iterable<Watcher>): void {
    for (const s of touched) {
      const e = this.streams.get(s.id);
      if (e) this.flushStream(e);
    }
  }

  proxies(): ProxyStatus[] {
    return [...this.streams.values()].map(({ stream }) => stream.status());
  }

  /** Open streams, and of those SotW ones. */
  streamCounts(): { streams: number; sotw: number } {
    let sotw = 0;
    for (const { stream } of this.streams.values()) if (stream.protocol === 'sotw') sotw++;
    return { streams: this.streams.size, sotw };
  }

  private flushStream(e: StreamEntry): void {
    try {
      e.stream.flushAll();
    } catch (err) {
      e.fail(err);
    }
  }

  private handleStream(call: ResponseCall, protocol: XdsProtocol): void {
    const id = ++this.streamCounter;
    const s: XdsStream = protocol === 'sotw' ? new SotwStream(id, call, call.getPeer(), this.host) : new DeltaStream(id, call, call.getPeer(), this.host);
    const done = (why: string): void => {
      if (s.closed) return;
      s.dispose();
      this.streams.delete(id);
      this.log(`stream ${id} (${protocol}, ${s.node?.id ?? s.peer}) closed: ${why}`);
      this.emit({ kind: 'disconnect', stream: id, nodeId: s.node?.id ?? '', protocol });
    };
    const fail = (err: unknown): void => {
      // A bug here must not take the whole control plane down; drop this stream only.
      this.log(`stream ${id}: ${(err instanceof Error ? err.stack : undefined) ?? String(err)}`);
      call.emit('error', { code: grpc.status.INTERNAL, details: errorMessage(err) });
      done('internal error');
    };
    this.streams.set(id, { stream: s, fail });
    call.on('data', (req: unknown) => {
      try {
        s.handle(req);
      } catch (err) {
        fail(err);
      }
    });
    call.on('end', () => {
      call.end();
      done('client ended the stream');
    });
    call.on('error', (err: Error) => done(err.message));
    call.on('cancelled', () => done('cancelled'));
    call.on('close', () => done('closed'));
    call.on('drain', () => {
      try {
        s.onDrain();
      } catch (err) {
        fail(err);
      }
    });
  }

  private log(msg: string): void {
    this.opts.log(msg);
  }

  private emit(e: AdsEvent): void {
    this.opts.onEvent?.(e);
  }
}
