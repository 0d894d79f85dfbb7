// The registration source: workloads registered and deregistered through the
// agent's API (VMs, processes, the demo). Registrations are persisted in the
// agent's data directory before they are acknowledged, so an agent restart
// keeps them.
//
// The cost of one registration follows the registration, not how many the agent
// holds: lookups go through indexes (by address, by service), the change is
// appended to a journal (registrations.jsonl, fsynced) rather than rewriting
// every registration, and the agent is told exactly which objects changed.
// registrations.json (all of them) is rewritten only when the journal has grown
// past it, so each registration is rewritten a bounded number of times.
// Refusals are MeshfedErrors: invalid (400), not-found (404), conflict (409).
//
// A registration may ask for an active health check (health-check.ts): the
// published Workload then carries the check's verdict (spec.health UNHEALTHY
// while it fails, status.healthCheck), while what is persisted stays what the
// user registered. Only transitions are published.
import { open, readFile, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { API_VERSION, keyOf, refOf, WorkloadKind, type Service, type ServicePort, type Workload } from '../api/index.js';
import { MeshfedError } from '../util/errors.js';
import { writeFileDurable } from '../util/files.js';
import { HealthChecker, validateHealthCheck, type CheckStatus, type HealthCheckSpec } from './health-check.js';
import type { DiscoveredState, DiscoveryDelta, DiscoverySource } from './source.js';

export interface Registration {
  /** Workload name; default <service>-<ip with dashes>-<port>. */
  name?: string;
  namespace: string;
  service: string;
  /** IP:PORT where the workload listens. */
  address: string;
  /** Service port name (default "grpc") and number (default: the service's port in this cluster, else the workload port). */
  portName?: string;
  servicePort?: number;
  protocol?: ServicePort['protocol'];
  labels?: Record<string, string>;
  serviceAccount?: string;
  zone?: string;
  health?: Workload['spec']['health'];
  /** Replace an existing registration of the same name instead of failing. */
  replace?: boolean;
  /** An active health check by the agent: failing makes the workload UNHEALTHY. */
  healthCheck?: HealthCheckSpec;
}

interface Stored {
  /** As registered (persisted); the published one adds the health check's verdict. */
  workload: Workload;
  servicePort: ServicePort;
  healthCheck?: HealthCheckSpec;
}

export interface RegistrationTopology {
  cluster: string;
  /** Zones the workload may be in; the first is the default. Empty: not known yet. */
  zones: () => string[];
}

export class RegistrationSource implements DiscoverySource {
  readonly name = 'registration';
  private entries = new Map<string, Stored>(); // key: namespace/name
  /** namespace/service -> its registrations (key -> entry). */
  private byService = new Map<string, Map<string, Stored>>();
  /** address:port -> registration key. */
  private byAddress = new Map<string, string>();
  /** namespace/service -> the Service object derived from its registrations (replaced, never mutated). */
  private services = new Map<string, Service>();
  private onChange: ((s: DiscoveredState, delta?: DiscoveryDelta) => void) | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private journal: FileHandle | undefined;
  private journalBytes = 0;
  private snapshotBytes = 0;
  private readonly checker: HealthChecker;

  constructor(
    private readonly dataDir: string,
    private readonly topo: RegistrationTopology,
    probe?: ConstructorParameters<typeof HealthChecker>[1],
  ) {
    this.checker = new HealthChecker((k, st) => this.onCheck(k, st), probe);
  }

  private get file(): string {
    return join(this.dataDir, 'registrations.json');
  }
  private get journalFile(): string {
    return join(this.dataDir, 'registrations.jsonl');
  }

  async start(onChange: (s: DiscoveredState, delta?: DiscoveryDelta) => void): Promise<void> {
    this.onChange = onChange;
    try {
      const text = await readFile(this.file, 'utf8');
      this.snapshotBytes = text.length;
      for (const s of JSON.parse(text) as Stored[]) this.put(key(s.workload), s);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw new Error(`cannot read ${this.file}: ${String(err)}`);
    }
    try {
      const text = await readFile(this.journalFile, 'utf8');
      this.journalBytes = text.length;
      for (const line of text.split('\n')) {
        if (!line) continue;
        let op: JournalOp;
        try {
          op = JSON.parse(line) as JournalOp;
        } catch {
          break; // a torn last line: that write was never acknowledged
        }
        if ('put' in op) this.put(key(op.put.workload), op.put);
        else this.remove(op.delete);
      }
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw new Error(`cannot read ${this.journalFile}: ${String(err)}`);
    }
    for (const k of this.byService.keys()) this.deriveService(k);
    onChange(this.current());
    for (const [k, e] of this.entries) this.startCheck(k, e);
  }

  async stop(): Promise<void> {
    this.checker.stop();
    await this.chain;
    await this.journal?.close();
    this.journal = undefined;
    this.onChange = undefined;
  }

  list(): Workload[] {
    return [...this.entries].map(([k, e]) => this.published(k, e)).sort((a, b) => key(a).localeCompare(key(b)));
  }

  /** The workload as others see it: as registered, with its health check's verdict. */
  private published(k: string, e: Stored): Workload {
    const st = e.healthCheck ? this.checker.status(k) : undefined;
    if (!st) return e.workload;
    // A workload registered UNHEALTHY or DRAINING stays so; a failing check makes a HEALTHY one UNHEALTHY.
    const health = st.state === 'Failing' && e.workload.spec.health === 'HEALTHY' ? 'UNHEALTHY' : e.workload.spec.health;
    return { ...e.workload, spec: { ...e.workload.spec, health }, status: { healthCheck: st } } as Workload;
  }

  private startCheck(k: string, e: Stored): void {
    if (!e.healthCheck) return this.checker.remove(k);
    this.checker.set(k, e.healthCheck, e.workload.spec.address, Object.values(e.workload.spec.ports)[0]!);
  }

  /** A check's transition: publish the workload again (its health or status changed). */
  private onCheck(k: string, _st: CheckStatus): void {
    void this.serialize(async () => {
      const e = this.entries.get(k);
      if (!e) return;
      this.notify({ upserts: [this.published(k, e)], deletes: [] });
    });
  }

  current(): DiscoveredState {
    return { services: [...this.services.values()].sort((a, b) => key(a).localeCompare(key(b))), workloads: this.list() };
  }

  /** Registers a workload; resolves once it is persisted. */
  register(r: Registration): Promise<{ outcome: 'created' | 'configured' | 'unchanged'; workload: Workload }> {
    return this.serialize(async () => {
      const stored = this.build(r);
      const k = key(stored.workload);
      const existing = this.entries.get(k);
      if (existing && same(existing, stored)) return { outcome: 'unchanged' as const, workload: existing.workload };
      if (existing && !r.replace) {
        throw new MeshfedError('conflict', `workload ${k} is already registered with a different definition (${describe(existing)}); deregister it first or register with --replace`);
      }
      this.checkConflicts(stored, k);
      await this.persist([{ put: stored }]);
      const touched = new Set<string>([svcKey(stored.workload)]);
      if (existing) {
        touched.add(svcKey(existing.workload));
        this.remove(k);
      }
      this.put(k, stored);
      this.startCheck(k, stored);
      const delta: DiscoveryDelta = { upserts: [this.published(k, stored)], deletes: [] };
      if (existing && keyOf(refOf(existing.workload)) !== keyOf(refOf(stored.workload))) delta.deletes.push(keyOf(refOf(existing.workload)));
      this.rederive(touched, delta);
      this.notify(delta);
      return { outcome: existing ? ('configured' as const) : ('created' as const), workload: this.published(k, stored) };
    });
  }

  /** Deregisters by namespace/name, or every workload at an IP:PORT. */
  deregister(sel: { namespace?: string; name?: string; address?: string }): Promise<Workload[]> {
    return this.serialize(async () => {
      const keys = new Set<string>();
      if (sel.name !== undefined) {
        if (sel.namespace !== undefined) {
          if (this.entries.has(`${sel.namespace}/${sel.name}`)) keys.add(`${sel.namespace}/${sel.name}`);
        } else {
          for (const [k, e] of this.entries) if (e.workload.metadata.name === sel.name) keys.add(k);
        }
      }
      if (sel.address !== undefined) {
        const k = this.byAddress.get(sel.address);
        if (k !== undefined) keys.add(k);
      }
      if (keys.size === 0) {
        const what = sel.name ? `${sel.namespace ?? '*'}/${sel.name}` : sel.address;
        throw new MeshfedError('not-found', `no registered workload matches ${what}`);
      }
      await this.persist([...keys].map((k) => ({ delete: k })));
      const removed: Workload[] = [];
      const touched = new Set<string>();
      const delta: DiscoveryDelta = { upserts: [], deletes: [] };
      for (const k of keys) {
        const w = this.entries.get(k)!.workload;
        removed.push(w);
        touched.add(svcKey(w));
        delta.deletes.push(keyOf(refOf(w)));
        this.remove(k);
        this.checker.remove(k);
      }
      this.rederive(touched, delta);
      this.notify(delta);
      return removed;
    });
  }

  private notify(delta: DiscoveryDelta): void {
    if (!this.onChange) return;
    // The whole state only if the listener reads it.
    let state: DiscoveredState | undefined;
    const current = () => (state ??= this.current());
    this.onChange(
      {
        get services() {
          return current().services;
        },
        get workloads() {
          return current().workloads;
        },
      },
      delta,
    );
  }

  private put(k: string, s: Stored): void {
    this.remove(k);
    this.entries.set(k, s);
    const sk = svcKey(s.workload);
    let m = this.byService.get(sk);
    if (!m) this.byService.set(sk, (m = new Map()));
    m.set(k, s);
    for (const p of Object.values(s.workload.spec.ports)) this.byAddress.set(`${s.workload.spec.address}:${p}`, k);
  }

  private remove(k: string): void {
    const s = this.entries.get(k);
    if (!s) return;
    this.entries.delete(k);
    const sk = svcKey(s.workload);
    const m = this.byService.get(sk);
    m?.delete(k);
    if (m && m.size === 0) this.byService.delete(sk);
    for (const p of Object.values(s.workload.spec.ports)) {
      const a = `${s.workload.spec.address}:${p}`;
      if (this.byAddress.get(a) === k) this.byAddress.delete(a);
    }
  }

  /** Re-derives the Services of these namespace/service keys; what changed goes into the delta. */
  private rederive(serviceKeys: Iterable<string>, delta: DiscoveryDelta): void {
    for (const sk of serviceKeys) {
      const before = this.services.get(sk);
      const after = this.deriveService(sk);
      if (!after) {
        if (before) delta.deletes.push(keyOf(refOf(before)));
      } else if (before && JSON.stringify(before.spec) === JSON.stringify(after.spec)) {
        this.services.set(sk, before); // unchanged: keep the object the agent already holds
      } else {
        delta.upserts.unshift(after);
      }
    }
  }

  /** The Service of one namespace/service: the union of its registrations' service ports. */
  private deriveService(sk: string): Service | undefined {
    const m = this.byService.get(sk);
    if (!m || m.size === 0) {
      this.services.delete(sk);
      return undefined;
    }
    let svc: Service | undefined;
    for (const e of m.values()) {
      const w = e.workload;
      svc ??= {
        apiVersion: API_VERSION,
        kind: 'Service' as const,
        metadata: { name: w.spec.service, namespace: w.metadata.namespace! },
        spec: { cluster: this.topo.cluster, ports: [], exported: true },
      };
      if (!svc.spec.ports.some((p) => p.name === e.servicePort.name)) svc.spec.ports.push(e.servicePort);
    }
    svc!.spec.ports.sort((a, b) => a.port - b.port);
    this.services.set(sk, svc!);
    return svc;
  }

  private build(r: Registration): Stored {
    // The request is parsed JSON: check the types the schema check below does not see.
    for (const f of ['name', 'namespace', 'service', 'address', 'portName', 'serviceAccount', 'zone'] as const) {
      if (r[f] !== undefined && typeof r[f] !== 'string') throw new MeshfedError('invalid', `${f}: must be a string, got ${JSON.stringify(r[f])?.slice(0, 40)}`);
    }
    if (r.servicePort !== undefined && typeof r.servicePort !== 'number') throw new MeshfedError('invalid', `servicePort: must be a number`);
    if (r.protocol !== undefined && !['GRPC', 'HTTP', 'TCP'].includes(r.protocol))
      throw new MeshfedError('invalid', `protocol: must be GRPC, HTTP or TCP, got ${JSON.stringify(r.protocol)?.slice(0, 40)}`);
    if (r.labels !== undefined && (r.labels === null || typeof r.labels !== 'object' || Array.isArray(r.labels))) throw new MeshfedError('invalid', 'labels: must be an object of strings');
    if (r.replace !== undefined && typeof r.replace !== 'boolean') throw new MeshfedError('invalid', 'replace: must be true or false');
    const healthCheck = r.healthCheck === undefined ? undefined : validateHealthCheck(r.healthCheck);
    const m = /^(.+):(\d+)$/.exec(r.address ?? '');
    if (!m) throw new MeshfedError('invalid', `address: expected IP:PORT, got "${r.address}"`);
    const ip = m[1]!.replace(/^\[(.*)\]$/, '$1');
    const port = Number(m[2]);
    if (isIP(ip) === 0) throw new MeshfedError('invalid', `address: "${ip}" is not an IP address (gRPC xDS endpoints must be IPs)`);
    const portName = r.portName ?? 'grpc';
    const zones = this.topo.zones();
    const zone = r.zone ?? zones[0];
    if (r.zone && zones.length > 0 && !zones.includes(r.zone)) {
      throw new MeshfedError('invalid', `zone: "${r.zone}" is not a zone of cluster ${this.topo.cluster} (${zones.join(', ')})`);
    }
    const name = r.name ?? `${r.service}-${ip.replace(/[.:]/g, '-')}-${port}`;
    const workload: Record<string, unknown> = {
      apiVersion: API_VERSION,
      kind: 'Workload',
      metadata: { name, namespace: r.namespace, ...(r.labels && Object.keys(r.labels).length ? { labels: r.labels } : {}) },
      spec: {
        cluster: this.topo.cluster,
        service: r.service,
        address: ip,
        ports: { [portName]: port },
        ...(r.serviceAccount ? { serviceAccount: r.serviceAccount } : {}),
        ...(zone ? { zone } : {}),
        ...(r.health ? { health: r.health } : {}),
      },
    };
    const checked = WorkloadKind.check(workload);
    if (!checked.ok) throw new MeshfedError('invalid', checked.errors.map((e) => `${fieldName(e.path)}: ${e.message}`).join('; '));
    // Like a Kubernetes Service port: fixed per service, while each workload's port may differ.
    // Default: the port this service already has in this cluster, else the workload's port.
    const known = this.servicePort(`${r.namespace}/${r.service}`, portName)?.port;
    const servicePort = { name: portName, port: r.servicePort ?? known?.port ?? port, protocol: r.protocol ?? known?.protocol ?? 'GRPC' } as ServicePort;
    if (!Number.isInteger(servicePort.port) || servicePort.port < 1 || servicePort.port > 65535) {
      throw new MeshfedError('invalid', `servicePort: ${r.servicePort} is not a port number`);
    }
    return { workload: checked.value, servicePort, ...(healthCheck ? { healthCheck } : {}) };
  }

  /** The service port of that name a registration of the service already has (every one agrees: checked on registration). */
  private servicePort(sk: string, portName: string, except?: string): { port: ServicePort; owner: string } | undefined {
    for (const [k, e] of this.byService.get(sk) ?? []) {
      if (k !== except && e.servicePort.name === portName) return { port: e.servicePort, owner: k };
    }
    return undefined;
  }

  private checkConflicts(s: Stored, k: string): void {
    const w = s.workload;
    for (const p of Object.values(w.spec.ports)) {
      const other = this.byAddress.get(`${w.spec.address}:${p}`);
      if (other !== undefined && other !== k) throw new MeshfedError('conflict', `address ${w.spec.address}:${p} is already registered as workload ${other}`);
    }
    const theirs = this.servicePort(svcKey(w), s.servicePort.name, k);
    if (theirs) {
      const mine = s.servicePort;
      if (mine.port !== theirs.port.port || mine.protocol !== theirs.port.protocol) {
        throw new MeshfedError(
          'conflict',
          `service ${w.spec.service}.${w.metadata.namespace} port "${mine.name}" is ${theirs.port.port}/${theirs.port.protocol} (from workload ${theirs.owner}), not ${mine.port}/${mine.protocol}`,
        );
      }
    }
  }

  /**
   * Appends the change to the journal and fsyncs it (the registration is
   * acknowledged after this); compacts into registrations.json once the
   * journal is larger than it.
   */
  private async persist(ops: JournalOp[]): Promise<void> {
    if (!this.journal) this.journal = await open(this.journalFile, 'a', 0o600);
    const text = ops.map((op) => JSON.stringify(op) + '\n').join('');
    await this.journal.write(text);
    await this.journal.datasync();
    this.journalBytes += text.length;
    if (this.journalBytes > Math.max(this.snapshotBytes, MIN_COMPACT_BYTES)) await this.compact(ops);
  }

  /** Writes every registration (as of after `ops`) to registrations.json, then starts an empty journal. */
  private async compact(ops: JournalOp[]): Promise<void> {
    const all = new Map(this.entries);
    for (const op of ops) {
      if ('put' in op) all.set(key(op.put.workload), op.put);
      else all.delete(op.delete);
    }
    const text = JSON.stringify([...all.values()], null, 1);
    await writeFileDurable(this.file, text);
    this.snapshotBytes = text.length;
    await this.journal?.close();
    await rm(this.journalFile, { force: true });
    this.journal = await open(this.journalFile, 'a', 0o600);
    this.journalBytes = 0;
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}

type JournalOp = { put: Stored } | { delete: string };

/** The journal is compacted once it is larger than registrations.json and than this. */
const MIN_COMPACT_BYTES = 256 * 1024;

function svcKey(w: Workload): string {
  return `${w.metadata.namespace}/${w.spec.service}`;
}

function key(o: { metadata: { namespace?: string; name: string } }): string {
  return `${o.metadata.namespace}/${o.metadata.name}`;
}

function same(a: Stored, b: Stored): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function describe(s: Stored): string {
  const w = s.workload;
  return `service ${w.spec.service}, address ${w.spec.address}:${Object.values(w.spec.ports).join(',')}, health ${w.spec.health}`;
}

function fieldName(path: string): string {
  return path.replace(/^\/(spec|metadata)\//, '').replace(/\//g, '.');
}
