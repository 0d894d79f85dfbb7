// Sample xDS gRPC server: Greeter on IP:PORT, configured by the agent's ADS server
// (gRFC A36). The bootstrap comes from GRPC_XDS_BOOTSTRAP / GRPC_XDS_BOOTSTRAP_CONFIG.
//
//   node dist/src/samples/helloworld/server.js --address 127.0.0.1 --port 50051 \
//     --cluster cluster1 --version v1 --name helloworld-v1-0
//
// stdout: {"event":"serving",...} once bound; {"event":"serving-status",...} on changes.
import * as grpc from '@grpc/grpc-js';
import { XdsServer, XdsServerCredentials, register } from '@grpc/grpc-js-xds';
import { parseArgs } from 'node:util';
import { emit, exitWithParent, greeter, isMain, type HelloReply, type HelloRequest } from './greeter.js';
import { errorMessage } from '../../util/errors.js';

export interface GreeterServerOptions {
  address: string;
  port: number;
  cluster: string;
  version: string;
  name: string;
  /** Fraction of calls (0-1) answered with UNAVAILABLE, to exercise retries and outlier detection. */
  failRate?: number;
  /** How long connections drain when the listener changes (the library default is 10 minutes). */
  drainGraceTimeMs?: number;
  /**
   * Close connections after this long (gRPC max_connection_age; clients reconnect).
   * Bounds how long a connection can keep an old listener's RBAC: grpc-js-xds 1.14
   * lets a connection whose TLS handshake straddles a listener switch escape the
   * drain (docs/access.md).
   */
  maxConnectionAgeMs?: number;
}

export interface RunningGreeterServer {
  server: XdsServer;
  /** Resolves once the xDS listener arrived and the port is bound. */
  serving: Promise<void>;
  stop(): void;
}

/** The caller's URI SAN (its SPIFFE ID) when the call came over mTLS. */
function callerIdentity(call: grpc.ServerUnaryCall<HelloRequest, HelloReply>): string {
  const auth = call.getAuthContext();
  if (!auth.transportSecurityType) return 'plaintext';
  const san = auth.sslPeerCertificate?.subjectaltname ?? '';
  return (
    san
      .split(', ')
      .find((s) => s.startsWith('URI:'))
      ?.slice(4) ?? 'tls-without-client-certificate'
  );
}

export function startGreeterServer(opts: GreeterServerOptions): RunningGreeterServer {
  register();
  const server = new XdsServer({
    drainGraceTimeMs: opts.drainGraceTimeMs ?? 10_000,
    ...(opts.maxConnectionAgeMs ? { 'grpc.max_connection_age_ms': opts.maxConnectionAgeMs, 'grpc.max_connection_age_grace_ms': 5_000 } : {}),
  });
  const handler = (greeting: string) => (call: grpc.ServerUnaryCall<HelloRequest, HelloReply>, cb: grpc.sendUnaryData<HelloReply>) => {
    if (opts.failRate && Math.random() < opts.failRate) {
      cb({ code: grpc.status.UNAVAILABLE, details: `${opts.name} fails on purpose` });
      return;
    }
    cb(null, {
      message: `${greeting} ${call.request.name || 'world'} from ${opts.name}`,
      cluster: opts.cluster,
      version: opts.version,
      workload: opts.name,
      peer: callerIdentity(call),
    });
  };
  server.addService(greeter().service, { SayHello: handler('Hello'), SayGoodbye: handler('Goodbye') });
  // The listener name is built from this exact string: a literal IP and port.
  const hostPort = opts.address.includes(':') ? `[${opts.address}]:${opts.port}` : `${opts.address}:${opts.port}`;
  server.addServingStateListener(hostPort, (st) => emit({ event: 'serving-status', code: grpc.status[st.code], details: st.details }));
  // XdsServerCredentials: mTLS when the listener carries a TLS context, plaintext otherwise.
  const creds = new XdsServerCredentials(grpc.ServerCredentials.createInsecure());
  const serving = new Promise<void>((resolve, reject) => {
    server.bindAsync(hostPort, creds, (err) => (err ? reject(err) : resolve()));
  });
  return { server, serving, stop: () => server.forceShutdown() };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      address: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      cluster: { type: 'string', default: 'cluster1' },
      version: { type: 'string', default: 'v1' },
      name: { type: 'string', default: 'helloworld' },
      'fail-rate': { type: 'string', default: '0' },
      'max-connection-age-ms': { type: 'string', default: '0' },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error('--port must be a port number (the xDS server cannot bind port 0)');
  const opts = {
    address: values.address,
    port,
    cluster: values.cluster,
    version: values.version,
    name: values.name,
    failRate: Number(values['fail-rate']),
    maxConnectionAgeMs: Number(values['max-connection-age-ms']),
  };
  const running = startGreeterServer(opts);
  const stop = (signal: string): void => {
    running.stop();
    emit({ event: 'stopped', signal, name: opts.name });
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  exitWithParent(() => stop('parent gone'));
  emit({ event: 'starting', ...opts, pid: process.pid });
  await running.serving;
  emit({ event: 'serving', ...opts, pid: process.pid });
}

if (isMain(import.meta.url)) {
  main().catch((err: unknown) => {
    emit({ event: 'error', message: errorMessage(err) });
    process.exit(1);
  });
}
