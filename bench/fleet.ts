// The fleet benchmark: a real hub, two real agents (A registers the changes, B is
// measured), every other cluster simulated, light ADS clients as proxies on B,
// a few real grpc-js-xds clients, and a minimal ADS server as the floor.
//
//   npm run bench -- --point hostile   (bench/hostile.ts: event-loop stall and memory under hostile requests)
//   npm run bench -- --point kube      (bench/kube.ts: an agent in Kubernetes mode, 2,000 Services / 20,000 endpoints)
//   npm run bench -- [--point small|fleet|all] [--clusters N --services N --endpoints N
//     --proxies N --changes N --clusters-per-service N --subscriptions N] [--cpu-scale] [--json FILE]
//
// Progress goes to stderr, the results table to stdout. Not part of the tests.
// What is measured and how: see the comments of each phase below and bench/README.md.
import { Command, InvalidArgumentError, Option } from 'commander';
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { API_VERSION } from '../src/api/index.js';
import { freePort, meshfedBin, ProcessGroup, sampleProgram, waitHttp, type Child } from '../src/demo/processes.js';
import { FloorServer } from './floor-server.js';
import { HubWatch } from './hub-watch.js';
import { now, type FromLight, type FromSim, type LoopStats, type ToLight, type ToSim } from './ipc.js';
import {
  AGENT_A,
  AGENT_B,
  change,
  clusterInfo,
  clusterObject,
  forEachEndpoint,
  hotServices,
  resourceNames,
  WORKLOAD_PORT,
  type Change,
  type ClusterInfo,
  type Scale,
  type ServiceInfo,
} from './model.js';
import { cpuMs, machine, settledRss, stableRss, type Machine } from './proc.js';
import { formatProfile, monotonicUs, summarizeProfile, type ProfileSummary } from './profile.js';
import { errorMessage } from '../src/util/errors.js';
import { percentiles, type Pct } from './stats.js';

const benchDir = dirname(fileURLToPath(import.meta.url));

const POINTS: Record<'small' | 'fleet', Scale> = {
  // 10 endpoints per service per cluster; every service in all 3 clusters.
  small: { clusters: 3, services: 100, endpoints: 3000, proxies: 100, changes: 100, clustersPerService: 3, subscriptions: 10, hot: 3 },
  // 100,000 endpoints over 10,000 services x 3 clusters (3-4 per part).
  fleet: { clusters: 100, services: 10_000, endpoints: 100_000, proxies: 1000, changes: 100, clustersPerService: 3, subscriptions: 10, hot: 3 },
};

const TARGETS = { p99Ms: 250, ratio: 2, kbPerProxy: 100, bytesPerEndpoint: 1024, cpuFlat: 0.2 };

interface Options {
  point: 'small' | 'fleet' | 'all';
  overrides: Partial<Scale>;
  cpuScale: boolean;
  json?: string;
  timeoutMin: number;
  changeTimeoutS: number;
  gapMs: number;
  warmup: number;
  simBatch: number;
  agentBStart: 'before' | 'after';
  agentReadyTimeoutS: number;
  clientProcs?: number;
  realClients: number;
  cpuProf: string[];
  verbose: boolean;
}

interface Result {
  label: string;
  scale: Scale;
  error?: string;
  notes: string[];
  setup: { registerS?: number; generateMs?: number; simObjects?: number; hubWorkloads?: number };
  cold: { hubLoadS?: number; hubFanoutS?: number; agentS?: number; proxiesS?: number };
  memory: {
    hubEmptyMB?: number;
    hubLoadedMB?: number;
    agentEmptyMB?: number;
    agentLoadedMB?: number;
    agentWithProxiesMB?: number;
    kbPerProxy?: number;
    bytesPerEndpointAgent?: number;
    bytesPerEndpointHub?: number;
    /** process.memoryUsage() (MB) as the process reports it at the same moments: what the RSS is made of. */
    hubProcess?: Record<string, number>;
    /**
     * The same ratios from what the processes report of their V8 heap (used) and
     * Buffers after the GC, which does not depend on when V8 returns pages to the
     * OS: B per endpoint (agent, hub) and KB per proxy.
     */
    heapBytesPerEndpointAgent?: number;
    heapBytesPerEndpointHub?: number;
    heapKbPerProxy?: number;
    /** The hub's view fan-out state at that moment (scopes, logs, cached full views). */
    hubViews?: unknown;
    agentProcess?: Record<string, number>;
  };
  convergence?: Pct & { failed: number; samplesMs: number[]; httpMs: Pct; hubMs: Pct; firstMs: Pct; responsesPerClient: number };
  floor?: Pct & { failed: number; samplesMs: number[]; firstMs: Pct };
  ratio?: { p50: number; p90: number; p99: number };
  cpu?: { changes: number; hubMs: number; agentBMs: number; agentAMs: number; floorMs?: number };
  realClients?: { started: number; synced: number; checks: number; converged: number; latencyMs: number[]; failures: string[] };
  /** The measured series on the profile clock (µs), to summarize profiles of it alone. */
  seriesWindow?: { from: number; to: number };
  /** xDS resources agent B serves, by type (from its status). */
  agentResources?: Record<string, number>;
  harness: { simLoad?: LoopStats; lightConvergence?: LoopStats[]; lightFloor?: LoopStats[] };
  profiles?: ProfileSummary[];
}

// ---------------------------------------------------------------- utilities

const benchStart = now();
function progress(msg: string): void {
  process.stderr.write(`[bench +${((now() - benchStart) / 1000).toFixed(1)}s] ${msg}\n`);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const round = (v: number, d = 1) => (Number.isFinite(v) ? Math.round(v * 10 ** d) / 10 ** d : v);
const mb = (bytes: number) => round(bytes / 2 ** 20, 1);

/** The run's time budget: every wait is bounded by it. */
class Deadline {
  private readonly end: number;
  constructor(ms: number) {
    this.end = now() + ms;
  }
  left(): number {
    return this.end - now();
  }
  /** ms, capped by what is left; throws when nothing is. */
  bound(ms: number): number {
    const left = this.left();
    if (left <= 0) throw new Error('the global timeout (--timeout-min) expired');
    return Math.max(1, Math.min(ms, left));
  }
}

/** API credentials per origin (the hub's admin token, each agent's admin token), read when each process starts. */
const apiTokens = new Map<string, string>();

/** fetch() with the credential of the API the URL names (hub and agents require one) and a JSON content type for bodies. */
async function http(url: string, init: RequestInit = {}, timeoutMs = 30_000): Promise<{ status: number; body: string }> {
  const headers = new Headers(init.headers);
  const token = apiTokens.get(new URL(url).origin);
  if (token && !headers.has('authorization')) headers.set('authorization', `Bearer ${token}`);
  if (init.body !== undefined && !headers.has('content-type')) headers.set('content-type', 'application/json');
  const r = await fetch(url, { ...init, headers, signal: AbortSignal.timeout(timeoutMs) });
  return { status: r.status, body: await r.text() };
}

/** The token of the admin config a hub writes at first start (it may come just after /healthz answers). */
async function adminToken(hubDataDir: string): Promise<string> {
  const file = join(hubDataDir, 'admin.meshfed.yaml');
  for (let i = 0; i < 200 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
  const m = /token: (\S+)/.exec(readFileSync(file, 'utf8'));
  if (!m) throw new Error(`no token in ${file}`);
  return m[1]!;
}

async function getJson<T>(url: string, timeoutMs = 30_000): Promise<T> {
  const r = await http(url, {}, timeoutMs);
  if (r.status >= 300) throw new Error(`GET ${url}: ${r.status} ${r.body.slice(0, 300)}`);
  return JSON.parse(r.body) as T;
}

/** A forked child process of the benchmark with a typed IPC channel. */
class Kid<In, Out extends { type: string }> {
  readonly proc: ChildProcess;
  readonly errors: string[] = [];
  private exited = false;
  private readonly waiters = new Set<{ pred: (m: Out) => boolean; resolve: (m: Out) => void; reject: (e: Error) => void }>();
  private readonly listeners: ((m: Out) => void)[] = [];

  constructor(
    readonly name: string,
    file: string,
  ) {
    this.proc = fork(file, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.proc.on('message', (m: Out) => {
      if (m.type === 'error') {
        const message = (m as unknown as { message: string }).message;
        if (this.errors.length < 5) progress(`${name}: ${message}`);
        this.errors.push(message);
      }
      for (const l of this.listeners) l(m);
      for (const w of [...this.waiters]) {
        if (w.pred(m)) {
          this.waiters.delete(w);
          w.resolve(m);
        }
      }
    });
    this.proc.on('exit', (code, signal) => {
      this.exited = true;
      for (const w of this.waiters) w.reject(new Error(`${name} exited (${signal ?? code})${this.errors.length ? `: ${this.errors.at(-1)}` : ''}`));
      this.waiters.clear();
    });
  }

  send(m: In): void {
    if (!this.exited) this.proc.send(m as object);
  }

  /** Calls fn for every message. */
  listen(fn: (m: Out) => void): void {
    this.listeners.push(fn);
  }

  wait<T extends Out['type']>(type: T, pred: ((m: Extract<Out, { type: T }>) => boolean) | undefined, timeoutMs: number, what: string): Promise<Extract<Out, { type: T }>> {
    return new Promise((resolve, reject) => {
      const w = {
        pred: (m: Out) => m.type === type && (!pred || pred(m as Extract<Out, { type: T }>)),
        resolve: (m: Out) => {
          clearTimeout(timer);
          resolve(m as Extract<Out, { type: T }>);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`${this.name}: ${what}: nothing within ${Math.round(timeoutMs / 1000)} s${this.errors.length ? ` (last error: ${this.errors.at(-1)})` : ''}`));
      }, timeoutMs);
      if (this.exited) return w.reject(new Error(`${this.name} has exited`));
      this.waiters.add(w);
    });
  }

  kill(): void {
    if (!this.exited) this.proc.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.send({ type: 'stop' } as In);
    const t = setTimeout(() => this.kill(), 3000);
    await gone;
    clearTimeout(t);
  }
}

type SimKid = Kid<ToSim, FromSim>;
type LightKid = Kid<ToLight, FromLight>;

/** Everything one run started, so it can be stopped on success, failure, timeout or Ctrl-C. */
class Run {
  readonly procs: ProcessGroup;
  readonly kids: Kid<unknown, { type: string }>[] = [];
  floor: FloorServer | undefined;
  dir = '';
  private closing = false;
  private fail: (e: Error) => void = () => undefined;
  /** Rejects when a process the run depends on exits before the end. */
  readonly failed: Promise<never>;

  constructor(verbose: boolean) {
    this.procs = new ProcessGroup({ echoStderr: verbose, prefixStderr: true });
    this.failed = new Promise<never>((_, reject) => (this.fail = reject));
    this.failed.catch(() => undefined);
  }

  /** The run fails, with the last lines the process wrote, if this child exits before the run ends. */
  critical(child: Child): Child {
    void child.exited.then((code) => {
      if (!this.closing) this.fail(new Error(`${child.name} exited unexpectedly (code ${code}): ${lastWords(child.stderrTail)}`));
    });
    return child;
  }

  /** p, unless a critical process exits first. */
  guard<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.failed]);
  }

  /** Stops a critical child on purpose. */
  async stopChild(child: Child): Promise<void> {
    const wasClosing = this.closing;
    this.closing = true;
    await this.procs.stop(child);
    this.closing = wasClosing;
  }

  async init(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'meshfed-bench-'));
  }

  fork<In, Out extends { type: string }>(name: string, file: string): Kid<In, Out> {
    const k = new Kid<In, Out>(name, file);
    this.kids.push(k as unknown as Kid<unknown, { type: string }>);
    return k;
  }

  /** Synchronous, for signal handlers. */
  killNow(): void {
    this.procs.killAllNow();
    for (const k of this.kids) k.kill();
    this.floor?.close();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
  }

  async close(graceMs: number): Promise<void> {
    this.closing = true;
    await Promise.all(this.kids.map((k) => k.stop()));
    this.floor?.close();
    await this.procs.stopAll(graceMs);
    if (this.dir) await rm(this.dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

/** The telling lines of a dead process's stderr: fatal errors first (a V8 OOM ends with a native stack), then its last lines. */
function lastWords(tail: string[]): string {
  const telling = tail.filter((l) => /FATAL|Error|ERROR|error:/.test(l) && !/^\s*\d+: 0x/.test(l));
  const last = tail.filter((l) => !/^\s*\d+: 0x/.test(l)).slice(-5);
  return [...new Set([...telling, ...last])].join('\n');
}

const activeRuns = new Set<Run>();
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    progress(`${sig}: stopping every process and removing temporary directories`);
    for (const r of activeRuns) r.killNow();
    process.exit(130);
  });
}
process.on('exit', () => {
  for (const r of activeRuns) r.killNow();
});

// ---------------------------------------------------------------- processes

interface AgentProc {
  child: Child;
  apiUrl: string;
  xdsPort: number;
  cluster: ClusterInfo;
}

interface AgentStatusLike {
  ready: boolean;
  viewRevision: number;
  notReadyReason?: string;
  hub?: { connected?: boolean; lastError?: string };
  resources?: Record<string, number>;
}

/** V8 heap used + Buffers (MB) of a process's memory report. */
function live(m: Record<string, number>): number {
  return (m.heapUsed ?? NaN) + (m.arrayBuffers ?? NaN);
}

/** live() of what a hub (GET /api/v1alpha1/hub) or agent (GET /v1/status) reports now; undefined if it does not. */
async function liveMB(url: string): Promise<number | undefined> {
  const m = await getJson<{ memory?: Record<string, number> }>(url)
    .then((x) => x.memory)
    .catch(() => undefined);
  return m ? live(m) : undefined;
}

/** Asks a process started with --expose-gc for a full GC (see nodeFlags); a process without the endpoint is left alone. */
async function collect(url: string): Promise<void> {
  await http(url, { method: 'POST' }, 60_000).catch(() => undefined);
}

function pidOf(c: Child): number {
  return c.proc.pid!;
}

async function startAgent(run: Run, name: string, c: ClusterInfo, hubAgentAddr: string, dataDir: string, env: Record<string, string>, nodeFlags: string[]): Promise<AgentProc> {
  const xdsPort = await freePort();
  const apiPort = await freePort();
  const args = [
    ...nodeFlags,
    meshfedBin(),
    'agent',
    '--cluster',
    c.name,
    '--hub',
    hubAgentAddr,
    '--network',
    c.network,
    '--region',
    c.region,
    ...c.zones.flatMap((z) => ['--zone', z]),
    '--xds-listen',
    `127.0.0.1:${xdsPort}`,
    '--api-listen',
    `127.0.0.1:${apiPort}`,
    '--data-dir',
    dataDir,
    // The simulated agents dial the channel in plaintext (sim-agents.ts), so the whole benchmark fleet does.
    '--insecure-channel',
  ];
  const child = run.critical(run.procs.start(name, args, env));
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  await waitHttp(`${apiUrl}/healthz`, name, child);
  apiTokens.set(new URL(apiUrl).origin, readFileSync(join(dataDir, 'agent-admin.token'), 'utf8').trim());
  return { child, apiUrl, xdsPort, cluster: c };
}

async function waitReady(a: AgentProc, timeoutMs: number, hubUrl?: string): Promise<AgentStatusLike> {
  const end = now() + timeoutMs;
  let last: AgentStatusLike | undefined;
  let tooLargeSince: number | undefined;
  for (;;) {
    try {
      last = await getJson<AgentStatusLike>(`${a.apiUrl}/v1/status`, 10_000);
      // A view larger than the channel's receive limit fails the same way on every
      // retry: give up after a while instead of waiting for the timeout.
      if (!last.ready && /larger than max/.test(last.hub?.lastError ?? '')) {
        tooLargeSince ??= now();
        if (now() - tooLargeSince > 30_000) {
          throw new Error(`${a.child.name} cannot receive the hub's view: ${last.hub!.lastError} (gRPC's default 4 MiB receive limit on the agent channel; it redials and fails again)`);
        }
      } else tooLargeSince = undefined;
      // Caught up: ready, and holding at least the revision the hub has now.
      const hubRev = hubUrl ? (await getJson<{ revision: number }>(`${hubUrl}/healthz`)).revision : 0;
      if (last.ready && last.viewRevision >= hubRev) return last;
    } catch (err) {
      if (err instanceof Error && err.message.includes('cannot receive')) throw err;
      // starting, or busy past the request timeout: ask again
    }
    if (a.child.proc.exitCode !== null) throw new Error(`${a.child.name} exited: ${a.child.stderrTail.slice(-5).join('\n')}`);
    if (now() > end) {
      throw new Error(
        `${a.child.name} not ready and caught up within ${Math.round(timeoutMs / 1000)} s; status: ${JSON.stringify({ ready: last?.ready, viewRevision: last?.viewRevision, notReadyReason: last?.notReadyReason, hub: last?.hub })}; stderr: ${a.child.stderrTail.slice(-3).join(' | ')}`,
      );
    }
    await sleep(50);
  }
}

/** Registers a cluster's share of the fleet at a real agent through its API (setup, not measured). */
async function registerShare(a: AgentProc, scale: Scale, ci: number, deadline: Deadline): Promise<number> {
  const regs: object[] = [];
  forEachEndpoint(scale, new Set([ci]), (ep) => {
    regs.push({
      name: ep.name,
      namespace: ep.service.namespace,
      service: ep.service.name,
      address: `${ep.address}:${WORKLOAD_PORT}`,
      portName: 'grpc',
      servicePort: ep.service.port,
      zone: ep.zone,
    });
  });
  let next = 0;
  let done = 0;
  // The agent serializes registrations anyway; a few in flight hide the HTTP round trip.
  await Promise.all(
    range(8).map(async () => {
      while (next < regs.length) {
        deadline.bound(1);
        const body = regs[next++]!;
        const r = await http(`${a.apiUrl}/v1/workloads`, { method: 'POST', body: JSON.stringify(body) });
        if (r.status >= 300) throw new Error(`register at ${a.cluster.name}: ${r.status} ${r.body}`);
        if (++done % 500 === 0) progress(`  ${a.cluster.name}: ${done}/${regs.length} workloads registered`);
      }
    }),
  );
  return regs.length;
}

async function waitHubWorkloads(hubUrl: string, cluster: string, n: number, timeoutMs: number): Promise<void> {
  const end = now() + timeoutMs;
  let got = -1;
  while (now() < end) {
    got = (await getJson<{ status?: { workloads?: number } }>(`${hubUrl}/api/v1alpha1/clusters/${cluster}`)).status?.workloads ?? 0;
    if (got === n) return;
    await sleep(100);
  }
  throw new Error(`the hub holds ${got} workloads of ${cluster}, expected ${n}`);
}

function mtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

interface ProxyEds {
  ackedVersion?: string;
  /** Wall-clock ms of the last ACK of this type. */
  ackAt?: number;
}

/**
 * EDS sync state per node id from B's GET /v1/proxies. Accepts both shapes the
 * endpoint has had: per-type summaries keyed 'EDS' (ackedVersion, sinceAckMs), and
 * raw stream states keyed by type URL (ackedVersion, lastAckAt).
 */
async function proxiesEds(apiUrl: string): Promise<Map<string, ProxyEds>> {
  const at = Date.now();
  const body = await getJson<{ items: { nodeId: string; types: Record<string, Record<string, unknown>> }[] }>(`${apiUrl}/v1/proxies`);
  const out = new Map<string, ProxyEds>();
  for (const p of body.items) {
    const t = p.types['EDS'] ?? p.types['type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment'];
    if (!t) continue;
    const e: ProxyEds = {};
    if (typeof t.ackedVersion === 'string') e.ackedVersion = t.ackedVersion;
    if (typeof t.lastAckAt === 'string') e.ackAt = Date.parse(t.lastAckAt);
    else if (typeof t.sinceAckMs === 'number') e.ackAt = at - t.sinceAckMs;
    out.set(p.nodeId, e);
  }
  return out;
}

/** Whether version `got` is `want` or later (versions are counters today; equality otherwise). */
function versionReached(got: string | undefined, want: string): boolean {
  if (got === undefined) return false;
  if (got === want) return true;
  const g = Number(got);
  const w = Number(want);
  return Number.isFinite(g) && Number.isFinite(w) && g >= w;
}

// ---------------------------------------------------------------- change series

interface SeriesResult {
  latencies: number[];
  failed: number;
  /** Change request answered (agent A persisted it; for the floor: encoded and written). */
  httpMs: number[];
  /** The hub's watch event for the change arrived (committed at the hub). */
  hubMs: number[];
  /** The first subscribed client ACKed the change (the agent pushed it). */
  firstMs: number[];
  responses: number[];
}

interface SeriesSpec<P> {
  workers: LightKid[];
  scale: Scale;
  kind: 'meshfed' | 'floor' | 'check';
  /** Change indexes from..from+count-1 (see model.change). */
  from: number;
  count: number;
  o: Options;
  deadline: Deadline;
  /** Runs before the clock starts. */
  prepare: (ch: Change) => P;
  /** The change itself; the clock runs. */
  act: (ch: Change, p: P) => Promise<void>;
  /** After the light clients converged (off the clock). */
  after?: (ch: Change, t0: number, version: string) => Promise<void>;
  watch?: HubWatch;
  quiet?: boolean;
  /** Fails the series when a critical process exits. */
  guard?: <T>(p: Promise<T>) => Promise<T>;
}

let expectId = 0;

/**
 * Runs changes one at a time: tell the light clients what to look for, start the
 * clock, make the change, wait until every subscribed client has ACKed an
 * assignment that reflects it.
 */
async function runSeries<P>(spec: SeriesSpec<P>): Promise<SeriesResult> {
  const { workers, scale, kind, o, deadline } = spec;
  const out: SeriesResult = { latencies: [], failed: 0, httpMs: [], hubMs: [], firstMs: [], responses: [] };
  for (let k = 0; k < spec.count; k++) {
    const i = spec.from + k;
    if (deadline.left() < o.changeTimeoutS * 1000 + 30_000) {
      progress(`  stopping the ${kind} series after ${k} changes: the global timeout is near`);
      break;
    }
    const ch = change(scale, i, kind);
    const name = resourceNames(ch.service).endpoints;
    const id = ++expectId;
    const ready = workers.map((w) => w.wait('expect-ready', (m) => m.id === id, 30_000, 'expect'));
    for (const w of workers) w.send({ type: 'expect', id, name, address: ch.address, port: WORKLOAD_PORT, present: ch.register });
    const already = (await Promise.all(ready)).reduce((s, m) => s + m.alreadyMatched, 0);
    if (already > 0) progress(`  change ${i}: ${already} clients already showed it before it was made (harness bug?)`);
    const conv = workers.map(async (w) => {
      try {
        return await w.wait('converged', (m) => m.id === id, o.changeTimeoutS * 1000, `change ${i}`);
      } catch (err) {
        w.send({ type: 'report', id });
        return await w
          .wait('converged', (m) => m.id === id, 10_000, `change ${i} (partial)`)
          .catch(() => {
            throw err;
          });
      }
    });
    spec.watch?.reset(ch.name);
    const p = spec.prepare(ch);
    const t0 = now();
    await spec.act(ch, p);
    out.httpMs.push(now() - t0);
    const res = await (spec.guard ? spec.guard(Promise.all(conv)) : Promise.all(conv));
    const last = Math.max(...res.map((r) => r.lastAckAt));
    out.responses.push(
      res.reduce((s, r) => s + r.responses, 0) /
        Math.max(
          1,
          res.reduce((s, r) => s + r.clients, 0),
        ),
    );
    if (Number.isNaN(last)) {
      out.failed++;
      const matched = res.reduce((s, r) => s + r.matched, 0);
      const clients = res.reduce((s, r) => s + r.clients, 0);
      progress(`  ${kind} change ${i}: only ${matched}/${clients} clients saw it within ${o.changeTimeoutS} s`);
    } else {
      out.latencies.push(last - t0);
      out.firstMs.push(Math.min(...res.filter((r) => r.matched > 0).map((r) => r.firstAckAt)) - t0);
      if (spec.watch) {
        const hubAt = await spec.watch.when(ch.name, 2000);
        if (!Number.isNaN(hubAt)) out.hubMs.push(hubAt - t0);
      }
      if (spec.after) await spec.after(ch, t0, res.find((r) => r.version)?.version ?? '');
    }
    if (!spec.quiet && ((k + 1) % 10 === 0 || k === spec.count - 1)) {
      const p50 = percentiles(out.latencies.slice(-10)).p50;
      progress(`  ${kind}: ${k + 1}/${spec.count} changes, last 10 p50 ${round(p50)} ms${out.failed ? `, ${out.failed} failed` : ''}`);
    }
    if (o.gapMs > 0) await sleep(o.gapMs);
  }
  return out;
}

// ---------------------------------------------------------------- one scale point

// A label as a file name part: "fleet* / 10" becomes "fleet_10".
function fileLabel(label: string): string {
  return label.replace(/[^a-z0-9]+/gi, '_').replace(/_+$/, '');
}

async function runPoint(label: string, scale: Scale, o: Options, deadline: Deadline, profDir: string | undefined): Promise<Result> {
  const r: Result = { label, scale, notes: [], setup: {}, cold: {}, memory: {}, harness: {} };
  const run = new Run(o.verbose);
  activeRuns.add(run);
  progress(`=== ${label}: ${scale.clusters} clusters, ${scale.services} services, ${scale.endpoints} endpoints, ${scale.proxies} proxies, ${scale.changes} changes`);
  try {
    await run.init();
    await phases(run, label, scale, o, deadline, r, profDir);
  } catch (err) {
    r.error = errorMessage(err);
    progress(`${label}: FAILED: ${r.error}`);
  } finally {
    progress(`${label}: stopping processes`);
    // Profiles are written when a process exits: give them time.
    await run.close(profDir ? 60_000 : 5000).catch((err: unknown) => progress(`cleanup: ${String(err)}`));
    activeRuns.delete(run);
  }
  if (profDir) {
    r.profiles = [];
    for (const f of readdirSync(profDir).filter((f) => f.startsWith(`${fileLabel(label)}-`) && f.endsWith('.cpuprofile'))) {
      try {
        const whole = summarizeProfile(join(profDir, f));
        r.profiles.push(whole);
        process.stderr.write(formatProfile(whole) + '\n');
        if (r.seriesWindow) {
          const series = summarizeProfile(join(profDir, f), { ...r.seriesWindow, label: 'measured change series only' });
          r.profiles.push(series);
          process.stderr.write(formatProfile(series) + '\n');
        }
      } catch (err) {
        progress(`cannot read profile ${f}: ${String(err)}`);
      }
    }
  }
  return r;
}

async function phases(run: Run, label: string, scale: Scale, o: Options, deadline: Deadline, r: Result, profDir: string | undefined): Promise<void> {
  const env = { MESHFED_LOG_LEVEL: process.env.MESHFED_LOG_LEVEL ?? 'info' };
  // --expose-gc: before reading memory the bench asks the process for a full GC
  // (POST /api/v1alpha1/hub/gc, /v1/gc), so it measures what is retained, not
  // garbage that has yet to be collected.
  const nodeFlags = (role: string) => [
    '--expose-gc',
    ...(profDir && o.cpuProf.includes(role) ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${fileLabel(label)}-${role}.cpuprofile`] : []),
  ];

  // --- hub, empty
  const hubPorts = { api: await freePort(), agents: await freePort() };
  const hubUrl = `http://127.0.0.1:${hubPorts.api}`;
  const hubAgentAddr = `127.0.0.1:${hubPorts.agents}`;
  progress('starting the hub');
  const hubArgs = [
    ...nodeFlags('hub'),
    meshfedBin(),
    'hub',
    '--data-dir',
    join(run.dir, 'hub'),
    '--listen',
    `127.0.0.1:${hubPorts.api}`,
    '--agent-listen',
    hubAgentAddr,
    '--insecure-channel',
    '--insecure-api',
  ];
  const hub = run.critical(run.procs.start('hub', hubArgs, env));
  await waitHttp(`${hubUrl}/healthz`, 'hub', hub);
  // Plain HTTP on loopback (--insecure-api: the benchmark measures the engine), but credentials still: the admin token the hub wrote.
  apiTokens.set(new URL(hubUrl).origin, await adminToken(join(run.dir, 'hub')));
  const hubPid = pidOf(hub);
  await collect(`${hubUrl}/api/v1alpha1/hub/gc`);
  r.memory.hubEmptyMB = mb(await settledRss(hubPid));
  const hubEmptyHeap = await liveMB(`${hubUrl}/api/v1alpha1/hub`);

  const clusters = range(scale.clusters).map(clusterInfo);
  // mTLS off: the benchmark measures the xDS engine; its synthetic endpoints and
  // the real clients have no workload identities (mTLS is measured by test/e2e/mtls.test.ts).
  const mesh = { apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { mtls: { mode: 'DISABLE' } } };
  const applied = await http(`${hubUrl}/api/v1alpha1/apply`, { method: 'POST', body: JSON.stringify([mesh, ...clusters.map(clusterObject)]) });
  if (applied.status >= 300) throw new Error(`applying the Cluster objects: ${applied.status} ${applied.body}`);

  // --- agent A, and agent B: with --agent-b-start after (default) a first B that
  // registers B's share and gives the "empty agent" RSS, then stops; with before,
  // the measured B itself, which then receives the fleet as it loads.
  const early = o.agentBStart === 'before';
  progress(`starting agent A and ${early ? 'agent B (measured)' : 'a first agent B (empty)'}`);
  const a = await startAgent(run, 'agent-a', clusterInfo(AGENT_A), hubAgentAddr, join(run.dir, 'agent-a'), env, nodeFlags('agent-a'));
  const b0 = early
    ? await startAgent(run, 'agent-b', clusterInfo(AGENT_B), hubAgentAddr, join(run.dir, 'agent-b'), env, nodeFlags('agent-b'))
    : await startAgent(run, 'agent-b-empty', clusterInfo(AGENT_B), hubAgentAddr, join(run.dir, 'agent-b0'), env, ['--expose-gc']);
  await Promise.all([waitReady(a, deadline.bound(60_000)), waitReady(b0, deadline.bound(60_000))]);
  await collect(`${b0.apiUrl}/v1/gc`);
  r.memory.agentEmptyMB = mb(await settledRss(pidOf(b0.child)));
  const agentEmptyHeap = await liveMB(`${b0.apiUrl}/v1/status`);

  progress('registering the shares of clusters A and B through their agents (setup)');
  const t = now();
  const [, bShare] = await Promise.all([registerShare(a, scale, AGENT_A, deadline), registerShare(b0, scale, AGENT_B, deadline)]);
  // The agent reports after a short coalescing window: wait until the hub holds
  // all of B's share before stopping it (a stop drops a report still pending).
  await waitHubWorkloads(hubUrl, clusterInfo(AGENT_B).name, bShare, deadline.bound(60_000));
  r.setup.registerS = round((now() - t) / 1000, 2);
  if (!early) {
    // The real B starts later with these registrations on disk (a fresh data directory
    // otherwise: no saved view), so its cold start is an agent with its workloads
    // joining a loaded hub. The hub keeps B's objects while it is away.
    await run.stopChild(b0.child);
    await mkdir(join(run.dir, 'agent-b'), { recursive: true });
    // Registrations: registrations.json plus the journal of the changes since.
    for (const f of ['registrations.json', 'registrations.jsonl']) {
      if (existsSync(join(run.dir, 'agent-b0', f))) await copyFile(join(run.dir, 'agent-b0', f), join(run.dir, 'agent-b', f));
    }
  }

  // --- the simulated clusters load the hub
  const simClusters = range(scale.clusters).filter((ci) => ci !== AGENT_A && ci !== AGENT_B);
  progress(`generating and reporting ${simClusters.length} simulated clusters`);
  const sim: SimKid = run.fork('sim-agents', join(benchDir, 'sim-agents.js'));
  sim.listen((m) => {
    if (m.type === 'progress') {
      progress(`  simulated agents: ${m.connected}/${m.agents} connected, ${m.acked} reports acknowledged, ${m.reconnects} reconnects${m.lastDrop ? ` (last drop: ${m.lastDrop})` : ''}`);
    }
  });
  const generated = sim.wait('generated', undefined, deadline.bound(300_000), 'generate objects');
  sim.send({ type: 'start', scale, hubAgentAddr, clusters: simClusters, batch: o.simBatch });
  const gen = await generated;
  r.setup.generateMs = round(gen.ms, 0);
  r.setup.simObjects = gen.objects;
  progress(`  ${gen.objects} objects generated in ${round(gen.ms, 0)} ms; waiting for the hub to acknowledge every report`);
  const loaded = await run.guard(sim.wait('loaded', undefined, deadline.bound(3_600_000), 'the hub to acknowledge every report'));
  // Hub cold load: first full report sent -> last report acknowledged (committed).
  r.cold.hubLoadS = round((loaded.lastAckAt - loaded.firstReportAt) / 1000, 2);
  if (loaded.reconnects > 0) r.notes.push(`simulated agents lost their hub stream ${loaded.reconnects} times while the hub loaded (redialed and reported again, like agents do)`);
  progress(`  hub acknowledged ${loaded.agents} reports in ${r.cold.hubLoadS} s; waiting for the views to reach every simulated agent`);
  const hubRev = (await getJson<{ revision: number }>(`${hubUrl}/healthz`)).revision;
  const reachedP = sim.wait('revision-reached', undefined, deadline.bound(3_600_000), 'views to reach every simulated agent');
  sim.send({ type: 'wait-revision', revision: hubRev });
  const reached = await run.guard(reachedP);
  r.cold.hubFanoutS = round((reached.at - loaded.firstReportAt) / 1000, 2);
  r.harness.simLoad = reached.loop;
  const counts = await getJson<{ items: { status?: { workloads?: number } }[] }>(`${hubUrl}/api/v1alpha1/clusters`, 120_000);
  r.setup.hubWorkloads = counts.items.reduce((s, c) => s + (c.status?.workloads ?? 0), 0);
  if (r.setup.hubWorkloads !== scale.endpoints) r.notes.push(`the hub holds ${r.setup.hubWorkloads} workloads, expected ${scale.endpoints}`);
  await collect(`${hubUrl}/api/v1alpha1/hub/gc`);
  r.memory.hubLoadedMB = mb(await stableRss(hubPid));
  r.memory.bytesPerEndpointHub = round(((r.memory.hubLoadedMB - r.memory.hubEmptyMB) * 2 ** 20) / scale.endpoints, 0);
  const hubSelf = await getJson<{ memory?: Record<string, number>; views?: unknown }>(`${hubUrl}/api/v1alpha1/hub`).catch(() => undefined);
  if (hubSelf?.memory) r.memory.hubProcess = hubSelf.memory;
  if (hubSelf?.memory && hubEmptyHeap !== undefined) {
    r.memory.heapBytesPerEndpointHub = round(((live(hubSelf.memory) - hubEmptyHeap) * 2 ** 20) / scale.endpoints, 0);
  }
  if (hubSelf?.views) r.memory.hubViews = hubSelf.views;

  // --- agent B: cold start (process start -> ready and caught up with the hub's
  // revision), or with --agent-b-start before, catch-up after the hub's last report.
  let b: AgentProc;
  let bStatus: AgentStatusLike;
  if (early) {
    b = b0;
    progress('waiting for agent B (started before the load) to catch up with the hub');
    bStatus = await run.guard(waitReady(b, deadline.bound(1_800_000), hubUrl));
    r.cold.agentS = round((now() - loaded.lastAckAt) / 1000, 2);
    r.notes.push('agent B was started before the fleet loaded (--agent-b-start before): "cold: agent B" is its catch-up after the hub acknowledged the last report');
  } else {
    progress('starting agent B (measured) against the loaded hub');
    const tB = now();
    b = await startAgent(run, 'agent-b', clusterInfo(AGENT_B), hubAgentAddr, join(run.dir, 'agent-b'), env, nodeFlags('agent-b'));
    bStatus = await run.guard(waitReady(b, deadline.bound(o.agentReadyTimeoutS * 1000), hubUrl));
    r.cold.agentS = round((now() - tB) / 1000, 2);
  }
  const bPid = pidOf(b.child);
  progress(`  agent B ready and caught up in ${r.cold.agentS} s${bStatus.resources ? `: ${JSON.stringify(bStatus.resources)}` : ''}`);
  if (bStatus.resources) r.agentResources = bStatus.resources;
  await collect(`${b.apiUrl}/v1/gc`);
  r.memory.agentLoadedMB = mb(await stableRss(bPid));
  r.memory.bytesPerEndpointAgent = round(((r.memory.agentLoadedMB - r.memory.agentEmptyMB!) * 2 ** 20) / scale.endpoints, 0);
  const agentLoadedHeap = await liveMB(`${b.apiUrl}/v1/status`);
  if (agentLoadedHeap !== undefined && agentEmptyHeap !== undefined) {
    r.memory.heapBytesPerEndpointAgent = round(((agentLoadedHeap - agentEmptyHeap) * 2 ** 20) / scale.endpoints, 0);
  }

  // --- light clients (proxies) on B
  const nWorkers = o.clientProcs ?? Math.min(4, Math.max(1, Math.ceil(scale.proxies / 250)));
  progress(`connecting ${scale.proxies} light ADS clients to agent B from ${nWorkers} process(es)`);
  const cb = clusterInfo(AGENT_B);
  const workers: LightKid[] = range(nWorkers).map((i) => run.fork(`light-${i}`, join(benchDir, 'light-clients.js')));
  await Promise.all(
    workers.map((w, i) => {
      const p = w.wait('ready', undefined, 30_000, 'init');
      w.send({ type: 'init', scale, proxies: range(scale.proxies).filter((n) => n % nWorkers === i), localitySubZone: cb.name, region: cb.region, zone: cb.zones[0]! });
      return p;
    }),
  );
  await collect(`${b.apiUrl}/v1/gc`);
  const rssBefore = await stableRss(bPid);
  const heapBefore = await liveMB(`${b.apiUrl}/v1/status`);
  const tP = now();
  const synced = workers.map((w) => w.wait('synced', undefined, deadline.bound(600_000), 'first full set'));
  for (const w of workers) w.send({ type: 'connect', target: `127.0.0.1:${b.xdsPort}`, mode: 'meshfed' });
  const syncs = await run.guard(Promise.all(synced));
  r.cold.proxiesS = round((Math.max(...syncs.map((s) => s.at)) - tP) / 1000, 2);
  progress(`  every light client has its first full set after ${r.cold.proxiesS} s`);
  await collect(`${b.apiUrl}/v1/gc`);
  const rssAfter = await stableRss(bPid);
  r.memory.agentWithProxiesMB = mb(rssAfter);
  r.memory.agentProcess = await getJson<{ memory?: Record<string, number> }>(`${b.apiUrl}/v1/status`)
    .then((st) => st.memory)
    .catch(() => undefined);
  r.memory.kbPerProxy = round((rssAfter - rssBefore) / 1024 / scale.proxies, 1);
  if (r.memory.agentProcess && heapBefore !== undefined) r.memory.heapKbPerProxy = round(((live(r.memory.agentProcess) - heapBefore) * 1024) / scale.proxies, 1);

  // --- a few real grpc-js-xds clients on the hot services
  const hot = hotServices(scale);
  const real: { node: string; service: ServiceInfo; child: Child }[] = [];
  const rc: NonNullable<Result['realClients']> = { started: 0, synced: 0, checks: 0, converged: 0, latencyMs: [], failures: [] };
  r.realClients = rc;
  for (let i = 0; i < Math.min(o.realClients, hot.length); i++) {
    const name = `real-client-${i}`;
    const boot = await http(`${b.apiUrl}/v1/bootstrap?namespace=bench&name=${name}`);
    if (boot.status >= 300) throw new Error(`bootstrap for ${name}: ${boot.body}`);
    // Low rate: no server answers at the synthetic endpoints (calls fail fast); only its xDS state matters.
    const child = run.procs.start(name, [sampleProgram('client'), '--target', `xds:///${hot[i]!.host}`, '--rate', '1', '--deadline-ms', '500'], {
      GRPC_XDS_BOOTSTRAP_CONFIG: boot.body,
    });
    real.push({ node: `${cb.name}~bench~${name}`, service: hot[i]!, child });
    rc.started++;
  }
  if (real.length > 0) {
    progress(`started ${real.length} real grpc-js-xds client(s); waiting for their EDS ACKs in B's /v1/proxies`);
    const end = now() + deadline.bound(60_000);
    for (;;) {
      const eds = await proxiesEds(b.apiUrl);
      rc.synced = real.filter((x) => eds.get(x.node)?.ackedVersion !== undefined).length;
      if (rc.synced === real.length || now() > end) break;
      await sleep(200);
    }
    if (rc.synced < real.length) rc.failures.push(`${real.length - rc.synced} real client(s) never ACKed EDS`);
  }

  // --- convergence: a change registered at A -> every subscribed light client on B ACKed it
  progress(`convergence: ${scale.changes} changes at agent A, measured at ${scale.proxies} light clients on agent B`);
  const registerAtA = async (ch: Change): Promise<void> => {
    const svc = ch.service;
    const res = ch.register
      ? await http(`${a.apiUrl}/v1/workloads`, {
          method: 'POST',
          body: JSON.stringify({ name: ch.name, namespace: svc.namespace, service: svc.name, address: `${ch.address}:${WORKLOAD_PORT}`, portName: 'grpc', servicePort: svc.port }),
        })
      : await http(`${a.apiUrl}/v1/workloads?${new URLSearchParams({ namespace: svc.namespace, name: ch.name })}`, { method: 'DELETE' });
    if (res.status >= 300) throw new Error(`${ch.register ? 'register' : 'deregister'} ${ch.name} at agent A: ${res.status} ${res.body}`);
  };
  const watch = await HubWatch.start(hubUrl, apiTokens.get(new URL(hubUrl).origin) ?? '');
  const guard = <T>(p: Promise<T>) => run.guard(p);
  const base = { workers, scale, o, deadline, prepare: () => undefined, act: registerAtA, watch, guard };
  // Warm-up changes (JIT, first pushes) are not measured, in either series.
  if (o.warmup > 0) await runSeries({ ...base, kind: 'meshfed', from: 0, count: o.warmup, quiet: true });
  const snapshotBefore = mtime(join(run.dir, 'hub', 'snapshot.json'));
  const cpu0 = { hub: cpuMs(hubPid), b: cpuMs(bPid), a: cpuMs(pidOf(a.child)) };
  const from = monotonicUs();
  for (const w of workers) w.send({ type: 'loop-reset' });
  const conv = await runSeries({ ...base, kind: 'meshfed', from: o.warmup, count: scale.changes });
  const cpu1 = { hub: cpuMs(hubPid), b: cpuMs(bPid), a: cpuMs(pidOf(a.child)) };
  r.seriesWindow = { from, to: monotonicUs() };
  if (mtime(join(run.dir, 'hub', 'snapshot.json')) !== snapshotBefore) {
    // The store snapshots every object once its log has grown as large as the last snapshot: CPU/change of the hub includes one such compaction.
    r.notes.push("the hub's store compacted (wrote a snapshot of every object) during the measured series: its CPU per change includes that");
  }
  r.harness.lightConvergence = await Promise.all(
    workers.map((w) => {
      const p = w.wait('loop', undefined, 10_000, 'loop stats');
      w.send({ type: 'loop-read' });
      return p.then((m) => m.loop);
    }),
  );
  const done = conv.latencies.length + conv.failed;
  r.convergence = {
    ...percentiles(conv.latencies),
    failed: conv.failed,
    samplesMs: conv.latencies.map((v) => round(v, 2)),
    httpMs: percentiles(conv.httpMs),
    hubMs: percentiles(conv.hubMs),
    firstMs: percentiles(conv.firstMs),
    responsesPerClient: round(conv.responses.reduce((s, v) => s + v, 0) / Math.max(1, conv.responses.length), 2),
  };
  if (done > 0) r.cpu = { changes: done, hubMs: round((cpu1.hub - cpu0.hub) / done, 2), agentBMs: round((cpu1.b - cpu0.b) / done, 2), agentAMs: round((cpu1.a - cpu0.a) / done, 2) };

  // --- real clients: do they reach the version that carries a change? (off the measured series)
  if (real.length > 0 && rc.synced > 0) {
    progress(`real clients: ${2 * real.length} changes on their services, checked through B's /v1/proxies`);
    const check = await runSeries({
      ...base,
      kind: 'check',
      from: 0,
      count: 2 * real.length,
      after: async (ch, t0, version) => {
        rc.checks++;
        const targets = real.filter((x) => x.service.index === ch.service.index);
        const end = now() + 10_000;
        for (;;) {
          const eds = await proxiesEds(b.apiUrl);
          const states = targets.map((x) => eds.get(x.node));
          if (states.every((s) => versionReached(s?.ackedVersion, version))) {
            rc.converged++;
            for (const s of states) if (s?.ackAt !== undefined) rc.latencyMs.push(round(s.ackAt - t0, 1));
            return;
          }
          if (now() > end) {
            rc.failures.push(`change ${ch.name} (${ch.register ? 'register' : 'deregister'}): real client EDS acked ${states.map((s) => s?.ackedVersion).join(',')}, light clients got ${version}`);
            return;
          }
          await sleep(50);
        }
      },
    });
    if (check.failed > 0) rc.failures.push(`${check.failed} check change(s) did not reach the light clients`);
  }
  for (const x of real) await run.procs.stop(x.child);
  watch.close();

  // --- floor: the same clients and changes against a minimal ADS server
  const hotNames = hot.map((s) => resourceNames(s).endpoints);
  const capP = workers[0]!.wait('captured', undefined, 10_000, 'capture');
  workers[0]!.send({ type: 'capture', names: hotNames });
  const captured = new Map(Object.entries((await capP).resources).map(([n, b64]) => [n, Buffer.from(b64, 'base64')]));
  if (captured.size === 0) throw new Error('no ClusterLoadAssignment captured from agent B for the floor');
  await Promise.all(
    workers.map((w) => {
      const p = w.wait('disconnected', undefined, 30_000, 'disconnect');
      w.send({ type: 'disconnect' });
      return p;
    }),
  );
  const floor = new FloorServer(captured);
  run.floor = floor;
  const floorPort = await floor.listen();
  progress(`floor: ${scale.proxies} light clients on a minimal ADS server, ${scale.changes} changes`);
  const fsynced = workers.map((w) => w.wait('synced', undefined, deadline.bound(600_000), 'first set from the floor'));
  for (const w of workers) w.send({ type: 'connect', target: `127.0.0.1:${floorPort}`, mode: 'floor' });
  await run.guard(Promise.all(fsynced));
  const floorBase = {
    workers,
    scale,
    o,
    deadline,
    kind: 'floor' as const,
    prepare: (ch: Change) => floor.prepare(resourceNames(ch.service).endpoints, ch.address, WORKLOAD_PORT, ch.register),
    act: async (ch: Change, cla: Record<string, unknown>) => {
      floor.push(resourceNames(ch.service).endpoints, cla);
    },
  };
  if (o.warmup > 0) await runSeries({ ...floorBase, from: 0, count: o.warmup, quiet: true });
  for (const w of workers) w.send({ type: 'loop-reset' });
  // The floor server runs in this process: its CPU per change (with the orchestration's own, small) is what
  // writing the same responses to the same streams and reading their ACKs costs at the least.
  const floorCpu0 = process.cpuUsage();
  const fl = await runSeries({ ...floorBase, from: o.warmup, count: scale.changes });
  const floorCpu = process.cpuUsage(floorCpu0);
  if (r.cpu && fl.latencies.length + fl.failed > 0) r.cpu.floorMs = round((floorCpu.user + floorCpu.system) / 1000 / (fl.latencies.length + fl.failed), 2);
  r.harness.lightFloor = await Promise.all(
    workers.map((w) => {
      const p = w.wait('loop', undefined, 10_000, 'loop stats');
      w.send({ type: 'loop-read' });
      return p.then((m) => m.loop);
    }),
  );
  r.floor = { ...percentiles(fl.latencies), failed: fl.failed, samplesMs: fl.latencies.map((v) => round(v, 2)), firstMs: percentiles(fl.firstMs) };
  r.ratio = {
    p50: round(r.convergence.p50 / r.floor.p50, 2),
    p90: round(r.convergence.p90 / r.floor.p90, 2),
    p99: round(r.convergence.p99 / r.floor.p99, 2),
  };
}

// ---------------------------------------------------------------- report

function fmt(v: number | undefined, d = 1): string {
  return v === undefined || Number.isNaN(v) ? '-' : String(round(v, d));
}

function verdict(ok: boolean | undefined): string {
  return ok === undefined ? '' : ok ? ' ok' : ' MISS';
}

function loopText(l: LoopStats[] | undefined): string {
  if (!l?.length) return '-';
  const p99 = Math.max(...l.map((x) => x.p99));
  const busy = Math.max(...l.map((x) => (x.wallMs > 0 ? x.cpuMs / x.wallMs : 0)));
  return `${fmt(p99)} ms / ${Math.round(busy * 100)}%`;
}

function table(results: Result[], m: Machine, cpuPairs: [Result, Result][]): string {
  const rows: [string, ...string[]][] = [];
  const add = (name: string, f: (r: Result) => string, target = '') => rows.push([name, ...results.map(f), target]);
  add('point', (r) => r.label);
  add('clusters', (r) => String(r.scale.clusters));
  add('services', (r) => String(r.scale.services));
  add('endpoints', (r) => String(r.scale.endpoints));
  add('proxies (light + real)', (r) => `${r.scale.proxies} + ${r.realClients?.started ?? 0}`);
  add('subscriptions/proxy (hot)', (r) => `${r.scale.subscriptions} (${r.scale.hot})`);
  add('xDS resources on B', (r) => (r.agentResources ? String(Object.values(r.agentResources).reduce((x, y) => x + y, 0)) : '-'));
  add('cold: hub load s', (r) => fmt(r.cold.hubLoadS, 2));
  add('cold: hub fan-out s', (r) => fmt(r.cold.hubFanoutS, 2));
  add('cold: agent B s', (r) => fmt(r.cold.agentS, 2));
  add('cold: proxies first set s', (r) => fmt(r.cold.proxiesS, 2));
  add('RSS hub / B MB', (r) => `${fmt(r.memory.hubLoadedMB)} / ${fmt(r.memory.agentWithProxiesMB ?? r.memory.agentLoadedMB)}`);
  add('  of which V8 heap used / Buffers MB', (r) => {
    const h = r.memory.hubProcess;
    const a = r.memory.agentProcess;
    const part = (m: Record<string, number> | undefined) => (m ? `${fmt(m.heapUsed)}+${fmt(m.arrayBuffers)}` : '-');
    return `${part(h)} / ${part(a)}`;
  });
  add('changes ok / failed', (r) => (r.convergence ? `${r.convergence.n} / ${r.convergence.failed}` : '-'));
  add('convergence p50/p90/p99 ms', (r) => (r.convergence ? `${fmt(r.convergence.p50)} / ${fmt(r.convergence.p90)} / ${fmt(r.convergence.p99)}` : '-'));
  add('convergence p99 ms', (r) => (r.convergence ? fmt(r.convergence.p99) + verdict(r.convergence.p99 <= TARGETS.p99Ms) : '-'), `<= ${TARGETS.p99Ms}`);
  add('convergence max ms', (r) => fmt(r.convergence?.max));
  add('  p50: A answered / hub commit', (r) => (r.convergence ? `${fmt(r.convergence.httpMs.p50)} / ${fmt(r.convergence.hubMs.p50)}` : '-'));
  add('  p50: first proxy ACK', (r) => fmt(r.convergence?.firstMs.p50));
  add('floor p50/p90/p99 ms', (r) => (r.floor ? `${fmt(r.floor.p50)} / ${fmt(r.floor.p90)} / ${fmt(r.floor.p99)}` : '-'));
  add(
    'ratio p50/p90/p99',
    (r) => (r.ratio ? `${fmt(r.ratio.p50, 2)} / ${fmt(r.ratio.p90, 2)} / ${fmt(r.ratio.p99, 2)}` + verdict(Math.max(r.ratio.p50, r.ratio.p90, r.ratio.p99) <= TARGETS.ratio) : '-'),
    `<= ${TARGETS.ratio}`,
  );
  add('CPU/change hub + B ms', (r) => (r.cpu ? `${fmt(r.cpu.hubMs, 2)} + ${fmt(r.cpu.agentBMs, 2)}` : '-'));
  add('CPU/change agent A ms', (r) => fmt(r.cpu?.agentAMs, 2));
  add('CPU/change floor server ms', (r) => fmt(r.cpu?.floorMs, 2));
  add('KB/proxy (agent B)', (r) => (r.memory.kbPerProxy !== undefined ? fmt(r.memory.kbPerProxy) + verdict(r.memory.kbPerProxy <= TARGETS.kbPerProxy) : '-'), `<= ${TARGETS.kbPerProxy}`);
  add(
    'B/endpoint agent B',
    (r) => (r.memory.bytesPerEndpointAgent !== undefined ? fmt(r.memory.bytesPerEndpointAgent, 0) + verdict(r.memory.bytesPerEndpointAgent <= TARGETS.bytesPerEndpoint) : '-'),
    `<= ${TARGETS.bytesPerEndpoint}`,
  );
  add(
    'B/endpoint hub',
    (r) => (r.memory.bytesPerEndpointHub !== undefined ? fmt(r.memory.bytesPerEndpointHub, 0) + verdict(r.memory.bytesPerEndpointHub <= TARGETS.bytesPerEndpoint) : '-'),
    `<= ${TARGETS.bytesPerEndpoint}`,
  );
  add('  heap+Buffers: B/endpoint B / hub', (r) => `${fmt(r.memory.heapBytesPerEndpointAgent, 0)} / ${fmt(r.memory.heapBytesPerEndpointHub, 0)}`);
  add('  heap+Buffers: KB/proxy', (r) => fmt(r.memory.heapKbPerProxy));
  add('real clients converged', (r) =>
    r.realClients ? `${r.realClients.converged}/${r.realClients.checks}${r.realClients.latencyMs.length ? `, max ${fmt(Math.max(...r.realClients.latencyMs))} ms` : ''}` : '-',
  );
  add('harness: light loop p99 / busy', (r) => loopText(r.harness.lightConvergence));
  add('harness: floor loop p99 / busy', (r) => loopText(r.harness.lightFloor));
  add('error', (r) => (r.error ? 'yes (see below)' : '-'));
  const header: [string, ...string[]] = ['metric', ...results.map((_, i) => `run ${i + 1}`), 'target'];
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((row) => (row[c] ?? '').length)));
  const line = (row: string[]) =>
    row
      .map((cell, c) => cell.padEnd(widths[c]!))
      .join('  ')
      .trimEnd();
  const out = [`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGB} GB, node ${m.node}, ${m.os}`, '', line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
  for (const [small, big] of cpuPairs) {
    if (!small.cpu || !big.cpu) continue;
    const hubRatio = big.cpu.hubMs / small.cpu.hubMs;
    const bRatio = big.cpu.agentBMs / small.cpu.agentBMs;
    const flat = (x: number) => Math.abs(x - 1) <= TARGETS.cpuFlat;
    out.push(
      '',
      `CPU per change, ${big.label} vs ${small.label} (10x the fleet): hub ${fmt(hubRatio, 2)}x${verdict(flat(hubRatio))}, agent B ${fmt(bRatio, 2)}x${verdict(flat(bRatio))}  (target: flat within ${TARGETS.cpuFlat * 100}%)`,
    );
  }
  for (const r of results) {
    for (const n of r.notes) out.push(`note (${r.label}): ${n}`);
    for (const f of r.realClients?.failures ?? []) out.push(`real clients (${r.label}): ${f}`);
    if (r.error) out.push(`error (${r.label}): ${r.error}`);
  }
  return out.join('\n');
}

// ---------------------------------------------------------------- main

function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

function parseOptions(argv: string[]): Options {
  const p = new Command('bench')
    .description('meshfed fleet benchmark: convergence, floor, cold start, CPU per change, memory')
    .addOption(new Option('--point <point>', 'scale point').choices(['small', 'fleet', 'all']).default('small'))
    .option('--clusters <n>', 'clusters (override)', int)
    .option('--services <n>', 'global services (override)', int)
    .option('--endpoints <n>', 'endpoints in the whole fleet (override)', int)
    .option('--proxies <n>', 'light ADS clients on agent B (override)', int)
    .option('--changes <n>', 'changes per series (override)', int)
    .option('--clusters-per-service <n>', 'clusters each global service lives in (override)', int)
    .option('--subscriptions <n>', 'services each proxy subscribes to (override)', int)
    .option('--hot <n>', 'hot services: the changes hit them, every proxy subscribes to them (override)', int)
    .option('--cpu-scale', 'also run each point at a tenth of its fleet (fresh processes) and compare CPU per change', false)
    .option('--json <file>', 'also write the results as JSON')
    .option('--timeout-min <min>', 'global time limit', int, 20)
    .option('--change-timeout-s <s>', 'give up on one change after this long', int, 30)
    .option('--gap-ms <ms>', 'pause between changes', int, 50)
    .option('--sim-batch <n>', 'simulated agents dialing the hub at a time, the next batch once their reports are in (0: all at once, as after a hub restart)', int, 0)
    .addOption(new Option('--agent-b-start <when>', 'start the measured agent after the fleet loaded (cold start) or before (it follows the load)').choices(['after', 'before']).default('after'))
    .option('--agent-ready-timeout-s <s>', 'give up on agent B becoming ready after this long', int, 600)
    .option('--warmup <n>', 'unmeasured changes before each series (even: register/deregister pairs)', int, 4)
    .option('--client-procs <n>', 'processes for the light clients (default: one per 250, at most 4)', int)
    .option('--real-clients <n>', 'real grpc-js-xds clients (one per hot service at most)', int, 3)
    .option('--cpu-prof <roles>', 'profile these processes with node --cpu-prof: hub,agent-a,agent-b (also MESHFED_BENCH_CPU_PROF)')
    .option('--verbose', "echo the hub's and agents' logs", false)
    .exitOverride();
  p.parse(argv, { from: 'user' });
  const v = p.opts<Record<string, unknown>>();
  const overrides: Partial<Scale> = {};
  for (const k of ['clusters', 'services', 'endpoints', 'proxies', 'changes', 'clustersPerService', 'subscriptions', 'hot'] as const) {
    if (v[k] !== undefined) overrides[k] = v[k] as number;
  }
  const prof = (v.cpuProf as string | undefined) ?? process.env.MESHFED_BENCH_CPU_PROF ?? '';
  const o: Options = {
    point: v.point as Options['point'],
    overrides,
    cpuScale: v.cpuScale as boolean,
    timeoutMin: v.timeoutMin as number,
    changeTimeoutS: v.changeTimeoutS as number,
    gapMs: v.gapMs as number,
    warmup: (v.warmup as number) + ((v.warmup as number) % 2),
    simBatch: v.simBatch as number,
    agentBStart: v.agentBStart as Options['agentBStart'],
    agentReadyTimeoutS: v.agentReadyTimeoutS as number,
    realClients: v.realClients as number,
    cpuProf: prof
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    verbose: v.verbose as boolean,
  };
  if (v.json !== undefined) o.json = v.json as string;
  if (v.clientProcs !== undefined) o.clientProcs = v.clientProcs as number;
  return o;
}

function checkScale(s: Scale, label: string): void {
  if (s.clusters < 3) throw new Error(`${label}: at least 3 clusters (agent A, agent B and one simulated)`);
  if (s.services < 1 || s.proxies < 1 || s.hot < 1) throw new Error(`${label}: services, proxies and hot must be at least 1`);
  if (s.clustersPerService < 1) throw new Error(`${label}: clusters-per-service must be at least 1`);
  hotServices(s); // throws when too few services have a part in agent A's cluster
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[argv.indexOf('--point') + 1] === 'hostile' && argv.includes('--point')) {
    // A point of its own (bench/hostile.ts): hostile requests and stalled watchers against a hub.
    const { runHostile } = await import('./hostile.js');
    process.exit(await runHostile());
  }
  if (argv[argv.indexOf('--point') + 1] === 'kube' && argv.includes('--point')) {
    // A point of its own (bench/kube.ts): an agent in Kubernetes mode over a stand-in API server.
    const { runKube } = await import('./kube.js');
    process.exit(await runKube());
  }
  let o: Options;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (err) {
    const code = (err as { exitCode?: number }).exitCode;
    process.exit(code ?? 2);
  }
  const m = machine();
  const deadline = new Deadline(o.timeoutMin * 60_000);
  const timer = setTimeout(
    () => {
      progress(`global timeout (${o.timeoutMin} min): stopping`);
      for (const r of activeRuns) r.killNow();
      process.exit(124);
    },
    o.timeoutMin * 60_000 + 120_000,
  );
  timer.unref();
  let profDir: string | undefined;
  if (o.cpuProf.length > 0) {
    profDir = await mkdtemp(join(tmpdir(), 'meshfed-bench-profiles-'));
    progress(`CPU profiles of ${o.cpuProf.join(', ')} go to ${profDir} (kept)`);
  }
  progress(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGB} GB, node ${m.node}`);

  const names = o.point === 'all' ? (['small', 'fleet'] as const) : ([o.point] as const);
  const plan: { label: string; scale: Scale }[] = [];
  const pairs: [number, number][] = [];
  for (const name of names) {
    const scale: Scale = { ...POINTS[name], ...o.overrides };
    // A point with overrides is not the named point any more: say so in the table.
    const base = Object.keys(o.overrides).length > 0 ? `${name}*` : name;
    if (o.overrides.hot === undefined) scale.hot = Math.min(scale.hot, scale.subscriptions);
    if (o.cpuScale) {
      const tenth: Scale = {
        ...scale,
        clusters: Math.max(3, Math.round(scale.clusters / 10)),
        services: Math.max(scale.hot, Math.round(scale.services / 10)),
        endpoints: Math.max(1, Math.round(scale.endpoints / 10)),
      };
      pairs.push([plan.length, plan.length + 1]);
      plan.push({ label: `${base}/10`, scale: tenth });
    }
    plan.push({ label: base, scale });
  }
  for (const p of plan) checkScale(p.scale, p.label);

  const results: Result[] = [];
  for (const p of plan) {
    if (deadline.left() < 60_000) {
      progress(`skipping ${p.label}: the global timeout is near`);
      continue;
    }
    results.push(await runPoint(p.label, p.scale, o, deadline, profDir));
  }
  const cpuPairs = pairs.map(([x, y]) => [results[x], results[y]]).filter((q): q is [Result, Result] => !!q[0] && !!q[1]);
  process.stdout.write(table(results, m, cpuPairs) + '\n');
  if (o.json) {
    writeFileSync(o.json, JSON.stringify({ machine: m, options: o, targets: TARGETS, results }, null, 2) + '\n');
    progress(`results written to ${o.json}`);
  }
  clearTimeout(timer);
  process.exit(results.some((r) => r.error) ? 1 : 0);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${errorMessage(err)}\n`);
  for (const r of activeRuns) r.killNow();
  process.exit(2);
});
