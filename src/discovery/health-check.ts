// Active health checks of registered workloads, run by their cluster's agent:
// a TCP connect, or the gRPC health-checking protocol (grpc.health.v1.Health/Check,
// SERVING passes). A registration without a check keeps the health it declares.
//
// Invariants: one timer per checked registration, never two probes of one at
// once; a result changes the state only past its threshold (a new registration
// is decided by its first probe, so a dead address is UNHEALTHY within one
// timeout); the checker reports transitions only, never each probe, since a
// change reaches every cluster; probes are bounded by their timeout.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import net from 'node:net';
import { join } from 'node:path';
import { durationMs } from '../api/duration.js';
import { MeshfedError } from '../util/errors.js';
import { protoDir } from '../util/paths.js';

/** What a registration asks for (the agent API's `healthCheck`). */
export interface HealthCheckSpec {
  type: 'tcp' | 'grpc';
  /** gRPC: the service name asked for (default "": the server as a whole). */
  service?: string;
  /** Port to probe (default: the workload's port), e.g. a plaintext health port beside an mTLS one. */
  port?: number;
  /** Between probes (default 5s, at least 1s). */
  interval?: string;
  /** Per probe (default 1s or half the interval, whichever is shorter; shorter than the interval). */
  timeout?: string;
  /** Consecutive failures that make a passing workload fail (default 2). */
  unhealthyThreshold?: number;
  /** Consecutive successes that make a failing workload pass (default 1). */
  healthyThreshold?: number;
}

export type CheckState = 'Unknown' | 'Passing' | 'Failing';

/** What the checker says of one registration (Workload status.healthCheck). */
export interface CheckStatus {
  type: 'tcp' | 'grpc';
  state: CheckState;
  /** When it entered this state. */
  since: string;
  /** Why the last probe failed (Failing only). */
  message?: string;
}

const KEYS = new Set(['type', 'service', 'port', 'interval', 'timeout', 'unhealthyThreshold', 'healthyThreshold']);

/** Checks a registration's healthCheck (parsed JSON); errors name the field. */
export function validateHealthCheck(raw: unknown): HealthCheckSpec {
  const bad = (field: string, why: string) => new MeshfedError('invalid', `healthCheck.${field}: ${why}`);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new MeshfedError('invalid', 'healthCheck: must be an object, e.g. {"type": "tcp"}');
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.has(k)) throw bad(k, `unknown field (fields: ${[...KEYS].join(', ')})`);
  if (o.type !== 'tcp' && o.type !== 'grpc') throw bad('type', `must be "tcp" or "grpc", got ${JSON.stringify(o.type)?.slice(0, 40)}`);
  if (o.service !== undefined && (typeof o.service !== 'string' || o.type !== 'grpc')) throw bad('service', 'a string, for type grpc only');
  if (o.port !== undefined && (!Number.isInteger(o.port) || (o.port as number) < 1 || (o.port as number) > 65535)) throw bad('port', 'must be a port number');
  const ms = (f: 'interval' | 'timeout', def: string): number => {
    const v = o[f] ?? def;
    try {
      if (typeof v !== 'string') throw new Error();
      return durationMs(v);
    } catch {
      throw bad(f, `must be a duration such as 5s or 500ms, got ${JSON.stringify(v)?.slice(0, 40)}`);
    }
  };
  const interval = ms('interval', '5s');
  const timeout = o.timeout === undefined ? Math.min(1000, interval / 2) : ms('timeout', '1s');
  if (interval < 1000) throw bad('interval', 'at least 1s');
  if (timeout < 10 || timeout >= interval) throw bad('timeout', `at least 10ms and shorter than the interval (${o.interval ?? '5s'})`);
  for (const f of ['unhealthyThreshold', 'healthyThreshold'] as const) {
    if (o[f] !== undefined && (!Number.isInteger(o[f]) || (o[f] as number) < 1 || (o[f] as number) > 10)) throw bad(f, 'an integer from 1 to 10');
  }
  return o as unknown as HealthCheckSpec;
}

/** One probe: undefined when it passes, else why it failed. */
export async function probe(spec: HealthCheckSpec, ip: string, port: number): Promise<string | undefined> {
  const timeoutMs = spec.timeout ? durationMs(spec.timeout) : Math.min(1000, durationMs(spec.interval ?? '5s') / 2);
  return spec.type === 'tcp' ? probeTcp(ip, port, timeoutMs) : probeGrpc(ip, port, spec.service ?? '', timeoutMs);
}

function probeTcp(ip: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: ip, port });
    const done = (why: string | undefined) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => done(`tcp connect to ${fmt(ip, port)}: no answer within ${timeoutMs} ms`), timeoutMs);
    sock.once('connect', () => done(undefined));
    sock.once('error', (err: NodeJS.ErrnoException) => done(`tcp connect to ${fmt(ip, port)}: ${err.code ?? err.message}`));
  });
}

interface HealthClient extends grpc.Client {
  check(req: { service: string }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
}
let healthCtor: (new (address: string, creds: grpc.ChannelCredentials, opts?: grpc.ChannelOptions) => HealthClient) | undefined;

function probeGrpc(ip: string, port: number, service: string, timeoutMs: number): Promise<string | undefined> {
  if (!healthCtor) {
    const def = protoLoader.loadSync(join(protoDir(), 'grpc', 'health', 'v1', 'health.proto'), { enums: String, defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: typeof healthCtor } } } };
    healthCtor = pkg.grpc.health.v1.Health;
  }
  // A channel per probe: probes are seconds apart, and a kept channel would hide a server that stopped accepting.
  const client = new healthCtor!(fmt(ip, port), grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 1024 });
  return new Promise((resolve) => {
    client.check({ service }, { deadline: Date.now() + timeoutMs }, (err, res) => {
      client.close();
      if (err) resolve(`gRPC health check of ${fmt(ip, port)}${service ? ` (service "${service}")` : ''}: ${grpc.status[err.code] ?? err.code} ${err.details}`);
      else if (res?.status !== 'SERVING') resolve(`gRPC health check of ${fmt(ip, port)}${service ? ` (service "${service}")` : ''}: ${res?.status ?? 'no status'}`);
      else resolve(undefined);
    });
  });
}

function fmt(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

interface Checked {
  spec: HealthCheckSpec;
  ip: string;
  port: number;
  status: CheckStatus;
  streak: number;
  timer: NodeJS.Timeout | undefined;
  generation: number;
}

/** Runs every checked registration's probes; tells `onChange` of each transition. */
export class HealthChecker {
  private readonly checked = new Map<string, Checked>();
  private stopped = false;

  constructor(
    private readonly onChange: (key: string, status: CheckStatus) => void,
    private readonly probeFn: typeof probe = probe,
  ) {}

  status(key: string): CheckStatus | undefined {
    return this.checked.get(key)?.status;
  }

  /** Starts (or restarts, with a new spec or address) the checks of one registration; the first probe runs now. */
  set(key: string, spec: HealthCheckSpec, ip: string, port: number): void {
    const prev = this.checked.get(key);
    if (prev && JSON.stringify([prev.spec, prev.ip, prev.port]) === JSON.stringify([spec, ip, port])) return;
    this.remove(key);
    const c: Checked = { spec, ip, port, status: { type: spec.type, state: 'Unknown', since: new Date().toISOString() }, streak: 0, timer: undefined, generation: (prev?.generation ?? 0) + 1 };
    this.checked.set(key, c);
    this.run(key, c);
  }

  remove(key: string): void {
    const c = this.checked.get(key);
    if (c?.timer) clearTimeout(c.timer);
    this.checked.delete(key);
  }

  stop(): void {
    this.stopped = true;
    for (const k of [...this.checked.keys()]) this.remove(k);
  }

  private run(key: string, c: Checked): void {
    void this.probeFn(c.spec, c.ip, c.spec.port ?? c.port).then((failure) => {
      if (this.stopped || this.checked.get(key) !== c) return;
      this.record(key, c, failure);
      c.timer = setTimeout(() => this.run(key, c), durationMs(c.spec.interval ?? '5s'));
      c.timer.unref();
    });
  }

  private record(key: string, c: Checked, failure: string | undefined): void {
    const passed = failure === undefined;
    const sameWay = (c.status.state === 'Passing') === passed;
    c.streak = sameWay ? 0 : c.streak + 1;
    const threshold = passed ? (c.spec.healthyThreshold ?? 1) : (c.spec.unhealthyThreshold ?? 2);
    const flips = c.status.state === 'Unknown' || (!sameWay && c.streak >= threshold);
    if (c.status.state === 'Failing' && !passed && failure !== c.status.message) {
      // Still failing, for another reason: keep the newest reason without a transition write per probe.
      c.status = { ...c.status, message: failure };
    }
    if (!flips) return;
    c.streak = 0;
    c.status = { type: c.spec.type, state: passed ? 'Passing' : 'Failing', since: new Date().toISOString(), ...(failure ? { message: failure } : {}) };
    this.onChange(key, c.status);
  }
}
