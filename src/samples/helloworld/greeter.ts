// helloworld.Greeter loaded from proto/helloworld.proto, shared by the sample
// server and client.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface HelloRequest {
  name: string;
}
export interface HelloReply {
  message: string;
  cluster: string;
  version: string;
  workload: string;
  /** The caller as the server saw it: its SPIFFE ID over mTLS, "plaintext" otherwise. */
  peer?: string;
}

/** proto/helloworld.proto, found by walking up from this file (works from src/ and dist/src/). */
export function helloworldProtoPath(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = path.join(dir, 'proto', 'helloworld.proto');
    if (existsSync(p)) return p;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('proto/helloworld.proto not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** The Greeter's methods (proto/helloworld.proto). */
export const GREETER_METHODS = ['SayHello', 'SayGoodbye'] as const;
export type GreeterMethod = (typeof GREETER_METHODS)[number];

export interface GreeterClient extends grpc.Client {
  SayHello(req: HelloRequest, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, reply?: HelloReply) => void): grpc.ClientUnaryCall;
  SayHello(req: HelloRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, reply?: HelloReply) => void): grpc.ClientUnaryCall;
  SayGoodbye(req: HelloRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, reply?: HelloReply) => void): grpc.ClientUnaryCall;
}

let loaded: { service: grpc.ServiceDefinition; Client: new (target: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => GreeterClient } | undefined;

export function greeter(): NonNullable<typeof loaded> {
  if (!loaded) {
    const def = protoLoader.loadSync(helloworldProtoPath(), { keepCase: true, defaults: true });
    // loadPackageDefinition's result is untyped by nature; narrow to the one constructor we use.
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      helloworld: { Greeter: grpc.ServiceClientConstructor };
    };
    const ctor = pkg.helloworld.Greeter;
    loaded = { service: ctor.service, Client: ctor as unknown as NonNullable<typeof loaded>['Client'] };
  }
  return loaded;
}

/** One JSON object per line on stdout: the contract with whoever spawned us. */
export function emit(event: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(event) + '\n');
}

/** True when this module is the process entry point (so importing it for its functions does nothing). */
export function isMain(metaUrl: string): boolean {
  const entry = process.argv[1];
  return entry !== undefined && path.resolve(entry) === fileURLToPath(metaUrl);
}

/**
 * With MESHFED_EXIT_WITH_STDIN=1 (set by the test helpers and supervisors that
 * give us a stdin pipe), call `onGone` when stdin closes, i.e. when the parent
 * died, even by SIGKILL: no orphaned sample processes.
 */
export function exitWithParent(onGone: () => void): void {
  if (process.env.MESHFED_EXIT_WITH_STDIN !== '1') return;
  process.stdin.on('end', onGone);
  process.stdin.on('error', onGone);
  process.stdin.resume();
}
