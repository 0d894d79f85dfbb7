// Real etcd processes for tests: one member, or a three-member cluster, on
// loopback with free ports and a temporary data directory each.
// Invariants: every wait is bounded; stop() is SIGTERM, then SIGKILL after a
// grace period, then the data directory is removed; a registry kills whatever is
// left when the test process exits, so nothing outlives the run.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from './procs.js';

export const ETCD_BIN = process.env.MESHFED_ETCD_BIN ?? '/usr/bin/etcd';

export interface EtcdMember {
  name: string;
  /** host:port of the client URL. */
  endpoint: string;
  peerUrl: string;
  dataDir: string;
  /** Whether the process is running. */
  running(): boolean;
  /** Starts the process again (same name, ports and data: a member that restarts). */
  start(): Promise<void>;
  /** SIGTERM (or SIGKILL with kill=true), SIGKILL after the grace period; keeps the data. */
  stop(opts?: { kill?: boolean }): Promise<void>;
  /** The last output, for failure messages. */
  output(): string;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** Every member's client endpoint (host:port). */
  endpoints: string[];
  /** Stops every member and removes their data. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** One etcd member on loopback (a cluster of one). */
export async function startEtcd(opts: { timeoutMs?: number } = {}): Promise<EtcdCluster> {
  return startEtcdCluster(1, opts);
}

/** `size` members on loopback forming one cluster; resolves once every member answers. */
export async function startEtcdCluster(size: number, opts: { timeoutMs?: number } = {}): Promise<EtcdCluster> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const root = await mkdtemp(join(tmpdir(), 'meshfed-etcd-'));
  const ports = await freePorts(size * 2);
  const token = `meshfed-test-${process.pid}-${Date.now()}`;
  const specs = Array.from({ length: size }, (_, i) => ({
    name: `m${i}`,
    client: ports[2 * i]!,
    peer: ports[2 * i + 1]!,
  }));
  const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peer}`).join(',');
  const members = specs.map((s) => member(s.name, s.client, s.peer, join(root, s.name), initialCluster, token, timeoutMs));
  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.endpoint),
    async stop() {
      await Promise.all(members.map((m) => m.stop()));
      await rm(root, { recursive: true, force: true });
    },
  };
  try {
    await Promise.all(members.map((m) => m.start()));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

function member(name: string, clientPort: number, peerPort: number, dataDir: string, initialCluster: string, token: string, timeoutMs: number): EtcdMember {
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  let child: ChildProcess | undefined;
  let out = '';
  const running = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null;
  const self: EtcdMember = {
    name,
    endpoint: `127.0.0.1:${clientPort}`,
    peerUrl,
    dataDir,
    running,
    output: () => out.slice(-4000),
    async start() {
      if (running()) return;
      const args = [
        `--name=${name}`,
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${clientUrl}`,
        `--advertise-client-urls=${clientUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=${initialCluster}`,
        `--initial-cluster-token=${token}`,
        '--initial-cluster-state=new',
        // Quick elections and failure detection on loopback.
        '--heartbeat-interval=50',
        '--election-timeout=500',
        // etcd's own limits (128 operations per transaction, 1.5 MiB per request), as a user's etcd has them.
        '--logger=zap',
        '--log-level=warn',
      ];
      const c = spawn(ETCD_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      live.add(c);
      const collect = (chunk: Buffer): void => {
        out = (out + chunk.toString()).slice(-20_000);
      };
      c.stdout!.on('data', collect);
      c.stderr!.on('data', collect);
      c.on('exit', () => live.delete(c));
      await waitHealthy(c, clientUrl, timeoutMs, () => out);
    },
    async stop(opts = {}) {
      const c = child;
      if (c === undefined || !running()) return;
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      c.kill(opts.kill ? 'SIGKILL' : 'SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
  return self;
}

/** Polls /health until etcd says it is healthy (has a leader), within timeoutMs. */
async function waitHealthy(c: ChildProcess, clientUrl: string, timeoutMs: number, output: () => string): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < end) {
    if (c.exitCode !== null || c.signalCode !== null) throw new Error(`etcd at ${clientUrl} exited (${c.exitCode ?? c.signalCode}):\n${output().slice(-2000)}`);
    try {
      const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
      const body = (await res.json()) as { health?: string };
      if (body.health === 'true') return;
      last = JSON.stringify(body);
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`etcd at ${clientUrl} not healthy after ${timeoutMs} ms (${last}):\n${output().slice(-2000)}`);
}
