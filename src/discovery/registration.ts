// The registration source: workloads registered and deregistered through the
// agent's API (VMs, processes, the demo). Registrations are persisted in the
// agent's data directory before they are acknowledged, so an agent restart
// keeps them.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { API_VERSION, WorkloadKind, type Service, type ServicePort, type Workload } from '../api/index.js';
import { writeFileDurable } from '../util/files.js';
import type { DiscoveredState, DiscoverySource } from './source.js';

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
}

export class RegistrationError extends Error {
  constructor(
    readonly status: 400 | 404 | 409,
    message: string,
  ) {
    super(message);
    this.name = 'RegistrationError';
  }
}

interface Stored {
  workload: Workload;
  servicePort: ServicePort;
}

export interface RegistrationTopology {
  cluster: string;
  /** Zones the workload may be in; the first is the default. Empty: not known yet. */
  zones: () => string[];
}

export class RegistrationSource implements DiscoverySource {
  readonly name = 'registration';
  private entries = new Map<string, Stored>(); // key: namespace/name
  private onChange: ((s: DiscoveredState) => void) | undefined;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly dataDir: string,
    private readonly topo: RegistrationTopology,
  ) {}

  private get file(): string {
    return join(this.dataDir, 'registrations.json');
  }

  async start(onChange: (s: DiscoveredState) => void): Promise<void> {
    this.onChange = onChange;
    try {
      const stored = JSON.parse(await readFile(this.file, 'utf8')) as Stored[];
      for (const s of stored) this.entries.set(`${s.workload.metadata.namespace}/${s.workload.metadata.name}`, s);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw new Error(`cannot read ${this.file}: ${String(err)}`);
    }
    onChange(this.current());
  }

  async stop(): Promise<void> {
    await this.chain;
    this.onChange = undefined;
  }

  list(): Workload[] {
    return [...this.entries.values()].map((e) => e.workload).sort((a, b) => key(a).localeCompare(key(b)));
  }

  current(): DiscoveredState {
    const workloads = this.list();
    const services = new Map<string, Service>();
    for (const e of this.entries.values()) {
      const w = e.workload;
      const k = `${w.metadata.namespace}/${w.spec.service}`;
      const svc = services.get(k) ?? {
        apiVersion: API_VERSION,
        kind: 'Service' as const,
        metadata: { name: w.spec.service, namespace: w.metadata.namespace!, cluster: this.topo.cluster },
        spec: { ports: [], exported: true },
      };
      if (!svc.spec.ports.some((p) => p.name === e.servicePort.name)) svc.spec.ports.push(e.servicePort);
      services.set(k, svc);
    }
    for (const s of services.values()) s.spec.ports.sort((a, b) => a.port - b.port);
    return { services: [...services.values()].sort((a, b) => key(a).localeCompare(key(b))), workloads };
  }

  /** Registers a workload; resolves once it is persisted. */
  register(r: Registration): Promise<{ outcome: 'created' | 'configured' | 'unchanged'; workload: Workload }> {
    return this.serialize(async () => {
      const stored = this.build(r);
      const k = key(stored.workload);
      const existing = this.entries.get(k);
      if (existing && same(existing, stored)) return { outcome: 'unchanged' as const, workload: existing.workload };
      if (existing && !r.replace) {
        throw new RegistrationError(
          409,
          `workload ${k} is already registered with a different definition (${describe(existing)}); deregister it first or register with --replace`,
        );
      }
      this.checkConflicts(stored, k);
      const next = new Map(this.entries);
      next.set(k, stored);
      await this.persist(next);
      this.entries = next;
      this.onChange?.(this.current());
      return { outcome: existing ? ('configured' as const) : ('created' as const), workload: stored.workload };
    });
  }

  /** Deregisters by namespace/name, or every workload at an IP:PORT. */
  deregister(sel: { namespace?: string; name?: string; address?: string }): Promise<Workload[]> {
    return this.serialize(async () => {
      const removed: Workload[] = [];
      const next = new Map(this.entries);
      for (const [k, e] of this.entries) {
        const w = e.workload;
        const byName = sel.name !== undefined && w.metadata.name === sel.name && (sel.namespace ?? w.metadata.namespace) === w.metadata.namespace;
        const byAddr = sel.address !== undefined && Object.values(w.spec.ports).some((p) => `${w.spec.address}:${p}` === sel.address);
        if (byName || byAddr) {
          next.delete(k);
          removed.push(w);
        }
      }
      if (removed.length === 0) {
        const what = sel.name ? `${sel.namespace ?? '*'}/${sel.name}` : sel.address;
        throw new RegistrationError(404, `no registered workload matches ${what}`);
      }
      await this.persist(next);
      this.entries = next;
      this.onChange?.(this.current());
      return removed;
    });
  }

  private build(r: Registration): Stored {
    const m = /^(.+):(\d+)$/.exec(r.address ?? '');
    if (!m) throw new RegistrationError(400, `address: expected IP:PORT, got "${r.address}"`);
    const ip = m[1]!.replace(/^\[(.*)\]$/, '$1');
    const port = Number(m[2]);
    if (isIP(ip) === 0) throw new RegistrationError(400, `address: "${ip}" is not an IP address (gRPC xDS endpoints must be IPs)`);
    const portName = r.portName ?? 'grpc';
    const zones = this.topo.zones();
    const zone = r.zone ?? zones[0];
    if (r.zone && zones.length > 0 && !zones.includes(r.zone)) {
      throw new RegistrationError(400, `zone: "${r.zone}" is not a zone of cluster ${this.topo.cluster} (${zones.join(', ')})`);
    }
    const name = r.name ?? `${r.service}-${ip.replace(/[.:]/g, '-')}-${port}`;
    const workload: Record<string, unknown> = {
      apiVersion: API_VERSION,
      kind: 'Workload',
      metadata: { name, namespace: r.namespace, cluster: this.topo.cluster, ...(r.labels && Object.keys(r.labels).length ? { labels: r.labels } : {}) },
      spec: {
        service: r.service,
        address: ip,
        ports: { [portName]: port },
        ...(r.serviceAccount ? { serviceAccount: r.serviceAccount } : {}),
        ...(zone ? { zone } : {}),
        ...(r.health ? { health: r.health } : {}),
      },
    };
    const checked = WorkloadKind.check(workload);
    if (!checked.ok) throw new RegistrationError(400, checked.errors.map((e) => `${fieldName(e.path)}: ${e.message}`).join('; '));
    // Like a Kubernetes Service port: fixed per service, while each workload's port may differ.
    // Default: the port this service already has in this cluster, else the workload's port.
    const known = [...this.entries.values()].find(
      (e) => e.workload.metadata.namespace === r.namespace && e.workload.spec.service === r.service && e.servicePort.name === portName,
    )?.servicePort;
    const servicePort = { name: portName, port: r.servicePort ?? known?.port ?? port, protocol: r.protocol ?? known?.protocol ?? 'GRPC' } as ServicePort;
    if (!Number.isInteger(servicePort.port) || servicePort.port < 1 || servicePort.port > 65535) {
      throw new RegistrationError(400, `servicePort: ${r.servicePort} is not a port number`);
    }
    return { workload: checked.value, servicePort };
  }

  private checkConflicts(s: Stored, k: string): void {
    const w = s.workload;
    for (const [ok, e] of this.entries) {
      if (ok === k) continue;
      const o = e.workload;
      for (const p of Object.values(w.spec.ports)) {
        if (o.spec.address === w.spec.address && Object.values(o.spec.ports).includes(p)) {
          throw new RegistrationError(409, `address ${w.spec.address}:${p} is already registered as workload ${ok}`);
        }
      }
      if (o.metadata.namespace === w.metadata.namespace && o.spec.service === w.spec.service) {
        const mine = s.servicePort;
        const theirs = e.servicePort;
        if (mine.name === theirs.name && (mine.port !== theirs.port || mine.protocol !== theirs.protocol)) {
          throw new RegistrationError(
            409,
            `service ${w.spec.service}.${w.metadata.namespace} port "${mine.name}" is ${theirs.port}/${theirs.protocol} (from workload ${ok}), not ${mine.port}/${mine.protocol}`,
          );
        }
      }
    }
  }

  private async persist(entries: Map<string, Stored>): Promise<void> {
    await writeFileDurable(this.file, JSON.stringify([...entries.values()], null, 1));
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
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
