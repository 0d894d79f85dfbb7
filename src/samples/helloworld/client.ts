// Sample xDS gRPC client: calls Greeter.SayHello at a fixed rate with a deadline
// on every call (an unknown listener name would otherwise wait forever) and
// reports, once a second, who answered and what failed.
//
//   node dist/src/samples/helloworld/client.js --target xds:///helloworld.sample \
//     --rate 20 [--duration 10] [--count 100] [--deadline-ms 1000] [--header k=v]... [--tick-ms 1000] [--method SayGoodbye]
//
// stdout: {"event":"tick","ok":n,"failed":n,"byBackend":{"cluster1/v1":n},"errors":{"UNAVAILABLE: ...":n}}
// each second (counts of calls that finished in that second), then {"event":"done",...totals}.
import * as grpc from '@grpc/grpc-js';
import { XdsChannelCredentials, register } from '@grpc/grpc-js-xds';
import { parseArgs } from 'node:util';
import { emit, exitWithParent, GREETER_METHODS, greeter, isMain, type GreeterMethod, type HelloReply } from './greeter.js';
import { errorMessage } from '../../util/errors.js';

export interface GreeterClientOptions {
  target: string;
  /** Calls started per second. */
  rate: number;
  durationS?: number;
  count?: number;
  deadlineMs: number;
  /** Called once a second with that second's counts. */
  onTick?: (tick: CallStats) => void;
  /** Metadata (headers) sent with every call, e.g. for header-matched routes. */
  headers?: Record<string, string>;
  /** Tick interval (ms); default 1000. */
  tickMs?: number;
  /** Stops starting calls when aborted; in-flight calls still finish. */
  signal?: AbortSignal;
  /** Greeter method to call (default SayHello). */
  method?: GreeterMethod;
  /** Called as each call finishes: its number (from 1), and the reply or the error ("CODE: details"). */
  onCall?: (n: number, result: { reply: HelloReply } | { error: string }) => void;
}

export interface CallStats {
  ok: number;
  failed: number;
  /** "cluster/version" -> successful calls */
  byBackend: Record<string, number>;
  /** How servers saw this client: its SPIFFE ID over mTLS, "plaintext" otherwise -> successful calls */
  peers: Record<string, number>;
  /** "CODE: details" -> failed calls */
  errors: Record<string, number>;
}

function emptyStats(): CallStats {
  return { ok: 0, failed: 0, byBackend: {}, errors: {}, peers: {} };
}

function bump(rec: Record<string, number>, key: string): void {
  rec[key] = (rec[key] ?? 0) + 1;
}

/** Runs until count, duration or the signal; resolves with the totals once in-flight calls finished. */
export async function runGreeterClient(opts: GreeterClientOptions): Promise<CallStats & { started: number; elapsedMs: number }> {
  register();
  const { Client } = greeter();
  // XdsChannelCredentials: mTLS when the cluster carries a TLS context, plaintext otherwise.
  const client = new Client(opts.target, new XdsChannelCredentials(grpc.credentials.createInsecure()));
  const totals = emptyStats();
  let tick = emptyStats();
  let started = 0;
  let inflight = 0;
  const t0 = Date.now();
  const endAt = opts.durationS !== undefined ? t0 + opts.durationS * 1000 : Infinity;
  const maxCalls = opts.count ?? Infinity;

  const record = (key: string, ok: boolean, peer?: string): void => {
    for (const s of [tick, totals]) {
      if (ok) {
        s.ok++;
        bump(s.byBackend, key);
        if (peer) bump(s.peers, peer);
      } else {
        s.failed++;
        bump(s.errors, key);
      }
    }
  };

  const call = (): void => {
    const n = ++started;
    inflight++;
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(opts.headers ?? {})) md.set(k, v);
    client[opts.method ?? 'SayHello']({ name: 'meshfed' }, md, { deadline: Date.now() + opts.deadlineMs }, (err, reply) => {
      inflight--;
      if (err) {
        const error = `${grpc.status[err.code] ?? err.code}: ${err.details}`;
        record(error, false);
        opts.onCall?.(n, { error });
      } else {
        record(`${reply?.cluster}/${reply?.version}`, true, reply?.peer || undefined);
        if (reply) opts.onCall?.(n, { reply });
      }
    });
  };

  return new Promise((resolve) => {
    // Start as many calls as the rate says should have started by now: exact on
    // average, whatever the timer jitter.
    const pace = setInterval(
      () => {
        const now = Date.now();
        const due = Math.min(maxCalls, Math.floor(((now - t0) / 1000) * opts.rate) + 1);
        while (started < due && now < endAt && !opts.signal?.aborted) call();
        if (started >= maxCalls || now >= endAt || opts.signal?.aborted) stopStarting();
      },
      Math.max(1, Math.min(20, Math.floor(1000 / opts.rate))),
    );
    const ticker = setInterval(() => {
      opts.onTick?.(tick);
      tick = emptyStats();
    }, opts.tickMs ?? 1000);
    let stopping = false;
    const stopStarting = (): void => {
      if (stopping) return;
      stopping = true;
      clearInterval(pace);
      const wait = setInterval(() => {
        if (inflight > 0) return;
        clearInterval(wait);
        clearInterval(ticker);
        if (tick.ok + tick.failed > 0) opts.onTick?.(tick);
        client.close();
        resolve({ ...totals, started, elapsedMs: Date.now() - t0 });
      }, 5);
    };
    opts.signal?.addEventListener('abort', stopStarting, { once: true });
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string', default: 'xds:///helloworld.sample' },
      rate: { type: 'string', default: '10' },
      duration: { type: 'string' },
      count: { type: 'string' },
      'deadline-ms': { type: 'string', default: '1000' },
      header: { type: 'string', multiple: true, default: [] },
      'tick-ms': { type: 'string', default: '1000' },
      method: { type: 'string', default: 'SayHello' },
    },
  });
  const method = GREETER_METHODS.find((m) => m === values.method);
  if (!method) throw new Error(`--method must be one of ${GREETER_METHODS.join(', ')}`);
  const num = (v: string | undefined, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
    return n;
  };
  const ac = new AbortController();
  process.on('SIGTERM', () => ac.abort());
  process.on('SIGINT', () => ac.abort());
  exitWithParent(() => ac.abort());
  const opts: GreeterClientOptions = {
    target: values.target,
    rate: num(values.rate, 'rate')!,
    deadlineMs: num(values['deadline-ms'], 'deadline-ms')!,
    signal: ac.signal,
    onTick: (t) => emit({ event: 'tick', ...t }),
    tickMs: num(values['tick-ms'], 'tick-ms')!,
    headers: Object.fromEntries((values.header ?? []).map((h) => [h.slice(0, h.indexOf('=')), h.slice(h.indexOf('=') + 1)])),
    method,
  };
  const duration = num(values.duration, 'duration');
  const count = num(values.count, 'count');
  if (duration !== undefined) opts.durationS = duration;
  if (count !== undefined) opts.count = count;
  emit({ event: 'started', target: opts.target, rate: opts.rate, method, pid: process.pid });
  const totals = await runGreeterClient(opts);
  emit({ event: 'done', ...totals });
  process.exit(0);
}

if (isMain(import.meta.url)) {
  main().catch((err: unknown) => {
    emit({ event: 'error', message: errorMessage(err) });
    process.exit(1);
  });
}
