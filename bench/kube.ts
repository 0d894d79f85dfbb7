// The `kube` benchmark point (npm run bench -- --point kube): an agent in
// Kubernetes mode over a stand-in Kubernetes API server (test/helpers/
// kube-apiserver: no kube-apiserver runs here) holding 2,000 Services and
// 20,000 endpoints (Pods, EndpointSlices, Nodes with zones), measuring
//   1. load: from the agent's start to its Kubernetes source synced with every
//      endpoint and the agent ready (target <= 10 s), and its memory;
//   2. convergence: an EndpointSlice change written to the API server (an
//      endpoint added or removed, as kube-controller-manager writes them) until
//      every subscribed ADS client has a ClusterLoadAssignment reflecting it
//      (target p99 <= 250 ms), beside the floor: the same write until a plain
//      watch on EndpointSlices (the informer's own request) sees the event,
//      which is the API server's share and no control plane's.
// The ADS clients speak state-of-the-world ADS with plain grpc-js, one
// connection each, and ACK every response; they and the stand-in run in this
// process, which adds no work on the agent's side. Progress to stderr, the
// table to stdout; exit code 1 when a target is missed.
import * as grpc from '@grpc/grpc-js';
import http from 'node:http';
import { join } from 'node:path';
import { API_VERSION } from '../src/api/index.js';
import { LocalFleet } from '../src/demo/fleet.js';
import { typeForUrl } from '../src/xds/proto.js';
import { ENDPOINT_TYPE, xdsClusterName } from '../src/xdsapi/index.js';
import { KubeApiServer } from '../test/helpers/kube-apiserver/server.js';
import { ADS_METHOD, adsCodec, type DiscoveryResponse } from './ads.js';
import { rssBytes } from './proc.js';
import { percentiles } from './stats.js';

const SCALE = {
  services: Number(process.env.KUBE_BENCH_SERVICES ?? 2000),
  endpointsPerService: Number(process.env.KUBE_BENCH_ENDPOINTS_PER_SERVICE ?? 10),
  namespaces: 10,
  nodes: 50,
  proxies: Number(process.env.KUBE_BENCH_PROXIES ?? 100),
  subscriptions: 10,
  hot: 5,
  changes: Number(process.env.KUBE_BENCH_CHANGES ?? 100),
  warmup: 10,
};
const TARGETS = { loadS: 10, p99Ms: 250 };
const SERVICE_PORT = 7000;
const POD_PORT = 8080;
const CLUSTER = { name: 'kube1', network: 'net1', region: 'r1', zones: ['r1-a', 'r1-b', 'r1-c'] };

function progress(msg: string): void {
  process.stderr.write(`[kube] ${msg}\n`);
}

const nsOf = (s: number) => `bench-${s % SCALE.namespaces}`;
const nameOf = (s: number) => `svc-${s}`;
const ipOf = (s: number, e: number) => {
  const n = s * 64 + e; // room for added endpoints
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
};

function slice(s: number, endpoints: number[]): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${nameOf(s)}-abcde`, namespace: nsOf(s), labels: { 'kubernetes.io/service-name': nameOf(s), 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
    addressType: 'IPv4',
    ports: [{ name: 'grpc', port: POD_PORT, protocol: 'TCP' }],
    endpoints: endpoints.map((e) => ({
      addresses: [ipOf(s, e)],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: `node-${(s + e) % SCALE.nodes}`,
      targetRef: { kind: 'Pod', namespace: nsOf(s), name: `${nameOf(s)}-${e}` },
    })),
  };
}

function request(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(`${base}${path}`, { method, headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** Creates objects with a few requests in flight. */
async function createAll(base: string, items: { path: string; body: unknown }[], label: string): Promise<void> {
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < items.length) {
      const it = items[next++]!;
      const r = await request(base, 'POST', it.path, it.body);
      if (r.status >= 300) throw new Error(`create ${it.path}: ${r.status} ${r.text.slice(0, 200)}`);
      if (++done % 5000 === 0) progress(`${label}: ${done}/${items.length}`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

export async function populate(base: string): Promise<void> {
  const items: { path: string; body: unknown }[] = [];
  for (let n = 0; n < SCALE.namespaces; n++) items.push({ path: '/api/v1/namespaces', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: `bench-${n}` } } });
  for (let n = 0; n < SCALE.nodes; n++) {
    const zone = CLUSTER.zones[n % CLUSTER.zones.length]!;
    items.push({
      path: '/api/v1/nodes',
      body: { apiVersion: 'v1', kind: 'Node', metadata: { name: `node-${n}`, labels: { 'topology.kubernetes.io/region': CLUSTER.region, 'topology.kubernetes.io/zone': zone } } },
    });
  }
  await createAll(base, items, 'namespaces and nodes');
  items.length = 0;
  for (let s = 0; s < SCALE.services; s++) {
    const ns = nsOf(s);
    items.push({
      path: `/api/v1/namespaces/${ns}/services`,
      body: {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: nameOf(s), namespace: ns, annotations: { 'service.cilium.io/global': 'true' } },
        spec: { selector: { app: nameOf(s) }, ports: [{ name: 'grpc', port: SERVICE_PORT, targetPort: POD_PORT, appProtocol: 'grpc' }] },
      },
    });
    for (let e = 0; e < SCALE.endpointsPerService; e++) {
      items.push({
        path: `/api/v1/namespaces/${ns}/pods`,
        body: {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: `${nameOf(s)}-${e}`, namespace: ns, labels: { app: nameOf(s), version: `v${(e % 2) + 1}` } },
          spec: { serviceAccountName: nameOf(s), nodeName: `node-${(s + e) % SCALE.nodes}`, containers: [{ name: 'app', image: 'app' }] },
        },
      });
    }
    items.push({
      path: `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
      body: slice(
        s,
        Array.from({ length: SCALE.endpointsPerService }, (_, e) => e),
      ),
    });
  }
  await createAll(base, items, 'services, pods and endpointslices');
}

interface Cla {
  cluster_name?: string;
  endpoints?: { lb_endpoints?: { endpoint?: { address?: { socket_address?: { address?: string } } } }[] }[];
}

/** An ADS client subscribed to the ClusterLoadAssignments of some services; calls onCla for each received. */
class EdsClient {
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<{ type_url: string; resource_names: string[]; version_info?: string; response_nonce?: string; node?: unknown }, DiscoveryResponse>;
  received = 0;
  constructor(
    target: string,
    readonly n: number,
    readonly names: string[],
    onCla: (client: EdsClient, cla: Cla, at: number) => void,
  ) {
    const codec = adsCodec();
    this.client = new grpc.Client(target, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': -1 });
    this.call = this.client.makeBidiStreamRequest(ADS_METHOD, codec.serialize as never, codec.deserialize);
    this.call.on('data', (r: DiscoveryResponse) => {
      const at = performance.now();
      this.call.write({ type_url: r.type_url, resource_names: this.names, version_info: r.version_info, response_nonce: r.nonce });
      this.received++;
      for (const a of r.resources) onCla(this, typeForUrl(ENDPOINT_TYPE).decode(a.value) as unknown as Cla, at);
    });
    this.call.on('error', () => undefined);
    this.call.write({
      type_url: ENDPOINT_TYPE,
      resource_names: names,
      node: { id: `${CLUSTER.name}~bench~proxy-${n}`, cluster: CLUSTER.name, locality: { region: CLUSTER.region, zone: CLUSTER.zones[0], sub_zone: '' } },
    });
  }
  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

const hasAddress = (cla: Cla, ip: string) => (cla.endpoints ?? []).some((l) => (l.lb_endpoints ?? []).some((e) => e.endpoint?.address?.socket_address?.address === ip));

export async function runKube(): Promise<number> {
  const api = await KubeApiServer.start({ historyLimit: 100_000, bookmarkIntervalMs: 5000 });
  const fleet = await LocalFleet.create({ echoStderr: process.env.KUBE_BENCH_ECHO === '1' }); // KUBE_BENCH_ECHO=1: the hub's and agent's logs on stderr
  const failures: string[] = [];
  const clients: EdsClient[] = [];
  try {
    progress(`stand-in API server ${api.url}: ${SCALE.services} Services, ${SCALE.services * SCALE.endpointsPerService} endpoints (Pods, EndpointSlices) over ${SCALE.nodes} Nodes`);
    await populate(api.url);
    const kubeconfig = join(fleet.dir, 'kube1.kubeconfig');
    await api.kubeconfig(kubeconfig);
    await fleet.startHub();
    await fleet.apply([
      { apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { mtls: { mode: 'DISABLE' } } },
      { apiVersion: API_VERSION, kind: 'Cluster', metadata: { name: CLUSTER.name }, spec: { network: CLUSTER.network, region: CLUSTER.region, zones: CLUSTER.zones } },
    ]);

    // --- load
    progress('starting the agent in Kubernetes mode');
    const t0 = performance.now();
    const profileDir = process.env.KUBE_BENCH_PROFILE;
    const agent = await fleet.startAgent(CLUSTER, {
      waitReady: false,
      ...(profileDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] } : {}),
      extraArgs: ['--kubernetes', '--kubeconfig', kubeconfig, ...(process.env.KUBE_BENCH_NO_MCS ? ['--no-mcs-import'] : [])],
    });
    const want = SCALE.services * SCALE.endpointsPerService;
    let syncedAt = 0;
    let readyAt = 0;
    for (;;) {
      const s = (await fleet.agentStatus(CLUSTER.name)) as unknown as { ready: boolean; discovery: { kubernetes?: { synced: boolean; counts: { workloads: number } } } };
      const k = s.discovery.kubernetes;
      if (!syncedAt && k?.synced && k.counts.workloads === want) syncedAt = performance.now();
      if (syncedAt && s.ready && !readyAt) readyAt = performance.now();
      if (readyAt) break;
      if (performance.now() - t0 > 120_000) throw new Error(`the agent did not load within 120 s (workloads ${k?.counts.workloads ?? 0}/${want}, ready ${s.ready})`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // Settled: the hub's first echo of this cluster's own objects (every local Service, with the
    // age the hub gave it) re-translates every service once, a few seconds after ready; the
    // series measures the steady state after it (docs/performance.md says what it costs).
    let last = { rev: -1, count: -1 };
    let stableSince = performance.now();
    for (;;) {
      const s = (await fleet.agentStatus(CLUSTER.name)) as unknown as { viewRevision: number; recompute: { count: number } };
      if (s.viewRevision !== last.rev || s.recompute.count !== last.count) {
        last = { rev: s.viewRevision, count: s.recompute.count };
        stableSince = performance.now();
      } else if (performance.now() - stableSince > 3000) break;
      if (performance.now() - t0 > 180_000) throw new Error('the agent did not settle within 180 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const settledS = (performance.now() - 3000 - t0) / 1000;
    progress(`settled (view revision and recomputes unchanged for 3 s) after ${settledS.toFixed(2)} s`);
    const loadS = (syncedAt - t0) / 1000;
    const readyS = (readyAt - t0) / 1000;
    const rssMB = rssBytes(agent.child.proc.pid!) / 2 ** 20;
    progress(`loaded: discovery synced with ${want} endpoints after ${loadS.toFixed(2)} s, ready after ${readyS.toFixed(2)} s, RSS ${rssMB.toFixed(0)} MB`);
    if (loadS > TARGETS.loadS) failures.push(`load ${loadS.toFixed(2)} s > ${TARGETS.loadS} s`);

    // --- ADS clients
    const hot = Array.from({ length: SCALE.hot }, (_, i) => i * 7);
    const claName = (s: number) => xdsClusterName(`${nameOf(s)}.${nsOf(s)}`, SERVICE_PORT);
    let expect: { name: string; ip: string; present: boolean; pending: Set<number>; lastAt: number; resolve: () => void } | undefined;
    const onCla = (c: EdsClient, cla: Cla, at: number) => {
      const e = expect;
      if (!e || cla.cluster_name !== e.name || !e.pending.has(c.n)) return;
      if (hasAddress(cla, e.ip) !== e.present) return;
      e.pending.delete(c.n);
      e.lastAt = Math.max(e.lastAt, at);
      if (e.pending.size === 0) e.resolve();
    };
    for (let n = 0; n < SCALE.proxies; n++) {
      const subs = new Set(hot);
      for (let i = 0; subs.size < SCALE.subscriptions; i++) subs.add((n * 131 + i * 17) % SCALE.services);
      clients.push(new EdsClient(`127.0.0.1:${agent.xdsPort}`, n, [...subs].map(claName), onCla));
    }
    const t1 = performance.now();
    while (clients.some((c) => c.received === 0)) {
      if (performance.now() - t1 > 60_000) throw new Error('ADS clients got no ClusterLoadAssignment within 60 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    progress(`${clients.length} ADS clients subscribed (${SCALE.subscriptions} services each, ${SCALE.hot} hot in all)`);

    // The floor: a plain watch on EndpointSlices, as the informer's own request.
    let floorWaiter: { ip: string; present: boolean; resolve: (at: number) => void } | undefined;
    const listed = JSON.parse((await request(api.url, 'GET', '/apis/discovery.k8s.io/v1/endpointslices?limit=1')).text) as { metadata: { resourceVersion: string } };
    const watchReq = http.get(`${api.url}/apis/discovery.k8s.io/v1/endpointslices?watch=1&resourceVersion=${listed.metadata.resourceVersion}`, (res) => {
      let buf = '';
      res.on('data', (c: Buffer) => {
        const at = performance.now();
        buf += c.toString();
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          const f = floorWaiter;
          if (!f || !line) continue;
          const has = line.includes(`"${f.ip}"`);
          if (has === f.present) {
            floorWaiter = undefined;
            f.resolve(at);
          }
        }
      });
    });
    watchReq.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 300));

    // --- convergence
    const added = new Map<number, number[]>(hot.map((s) => [s, Array.from({ length: SCALE.endpointsPerService }, (_, e) => e)]));
    const latencies: number[] = [];
    const floors: number[] = [];
    let timedOut = 0;
    for (let i = 0; i < SCALE.warmup + SCALE.changes; i++) {
      const s = hot[i % hot.length]!;
      const eps = added.get(s)!;
      // Alternate: add endpoint 50, then remove it.
      const present = !eps.includes(50);
      const next = present ? [...eps, 50] : eps.filter((e) => e !== 50);
      added.set(s, next);
      const ip = ipOf(s, 50);
      const subscribers = new Set(clients.filter((c) => c.names.includes(claName(s))).map((c) => c.n));
      const converged = new Promise<void>((resolve) => (expect = { name: claName(s), ip, present, pending: subscribers, lastAt: 0, resolve }));
      const floorSeen = new Promise<number>((resolve) => (floorWaiter = { ip, present, resolve }));
      const start = performance.now();
      const body = slice(s, next);
      const r = await request(api.url, 'PUT', `/apis/discovery.k8s.io/v1/namespaces/${nsOf(s)}/endpointslices/${nameOf(s)}-abcde`, body);
      if (r.status >= 300) throw new Error(`update of the EndpointSlice of ${nameOf(s)}: ${r.status} ${r.text.slice(0, 200)}`);
      const timeout = new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), 10_000));
      const outcome = await Promise.race([converged.then(() => 'ok' as const), timeout]);
      const floorAt = await Promise.race([floorSeen, new Promise<number>((res) => setTimeout(() => res(NaN), 1000))]);
      if (i < SCALE.warmup) continue;
      if (outcome === 'timeout') timedOut++;
      else {
        latencies.push(expect!.lastAt - start);
        if (expect!.lastAt - start > 500) progress(`change ${i - SCALE.warmup} (${nameOf(s)}) took ${(expect!.lastAt - start).toFixed(0)} ms`);
      }
      if (!Number.isNaN(floorAt)) floors.push(floorAt - start);
      await new Promise((res) => setTimeout(res, 20));
    }
    watchReq.destroy();
    const conv = percentiles(latencies);
    const floor = percentiles(floors);
    if (timedOut) failures.push(`${timedOut} change(s) never reached every subscriber within 10 s`);
    if (conv.p99 > TARGETS.p99Ms) failures.push(`convergence p99 ${conv.p99.toFixed(0)} ms > ${TARGETS.p99Ms} ms`);
    const f = (x: number) => x.toFixed(1);
    const rows = [
      ['measure', 'value', 'target'],
      ['services / endpoints', `${SCALE.services} / ${want}`, ''],
      ['load: discovery synced', `${loadS.toFixed(2)} s`, `<= ${TARGETS.loadS} s`],
      ['load: agent ready', `${readyS.toFixed(2)} s`, ''],
      ['load: settled (hub echo re-translated)', `${settledS.toFixed(2)} s`, ''],
      ['agent RSS loaded', `${rssMB.toFixed(0)} MB`, ''],
      ['ADS clients x subscriptions', `${SCALE.proxies} x ${SCALE.subscriptions}`, ''],
      [`convergence (${conv.n} changes) p50/p90/p99/max`, `${f(conv.p50)} / ${f(conv.p90)} / ${f(conv.p99)} / ${f(conv.max)} ms`, `p99 <= ${TARGETS.p99Ms} ms`],
      ['floor (API server -> watch) p50/p90/p99', `${f(floor.p50)} / ${f(floor.p90)} / ${f(floor.p99)} ms`, ''],
    ];
    const w = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
    for (const r of rows) process.stdout.write(r.map((v, c) => v.padEnd(w[c]!)).join('  ') + '\n');
    for (const x of failures) process.stdout.write(`MISSED: ${x}\n`);
    return failures.length ? 1 : 0;
  } finally {
    for (const c of clients) c.close();
    await fleet.close();
    await api.close();
  }
}
