// One informer: list + watch of one resource (in one namespace or all), on
// client-node's ListWatch cache, with what it lacks added here:
// - paginated lists (limit/continue), so a large cluster lists in bounded pieces;
// - watch bookmarks (allowWatchBookmarks) and a server-side watch timeout
//   (timeoutSeconds, 5 to 10 min with jitter), so a silently dead connection
//   cannot hang a watch forever;
// - restarts: ListWatch re-lists by itself on 410 Gone (an ERROR event with a
//   410 Status, or an HTTP 410) and re-watches from its resourceVersion when a
//   stream ends, but gives up on any other error; we restart it with backoff;
// - health: synced (a first complete list), the last error as a MeshfedError
//   naming the request (a 403 names the missing permission), and whether the
//   server was reachable.
// The cache is ListWatch's (objects by namespace and name); events reach the
// owner through `onEvent` in the order the cache applied them.
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { MeshfedError } from '../../util/errors.js';
import type { KubeObject } from './types.js';
import { kubeError, type KubeRequest } from '../../kube/errors.js';

/** One page of a list (typed clients' list results are structurally this). */
export type ListPage = (opts: { limit: number; _continue?: string }) => Promise<unknown>;

export interface InformerSpec {
  group: string;
  version: string;
  /** Plural, e.g. "pods". */
  resource: string;
  /** Unset: every namespace (or a cluster-scoped resource). */
  namespace?: string;
  list: ListPage;
  /** Optional resource: a 404 on list (its CRD is not installed) counts as synced and empty, retried later. */
  optional?: boolean;
}

export interface InformerHealth {
  resource: string;
  namespace?: string;
  synced: boolean;
  count: number;
  /** The last failure since the last success, if any. */
  lastError?: MeshfedError;
  /** When the current run of failures began (ISO time). */
  failingSince?: string;
  /** An optional resource the server does not serve (CRD not installed). */
  absent?: boolean;
}

export interface InformerOptions {
  pageSize?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Called when synced, an error or a recovery changes health. */
  onHealth?: () => void;
}

export type InformerEvent = 'add' | 'update' | 'delete';

// ListWatch is typed on client-node's objects; ours are the narrower shapes of types.ts.
export class Informer<T extends KubeObject> {
  private readonly lw: ListWatch<KubernetesObject>;
  private synced = false;
  private listed = false;
  private absent = false;
  private lastError: MeshfedError | undefined;
  private failingSince: string | undefined;
  private retryMs: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private syncWaiters: (() => void)[] = [];

  constructor(
    kc: KubeConfig,
    readonly spec: InformerSpec,
    onEvent: (type: InformerEvent, obj: T) => void,
    private readonly opts: InformerOptions = {},
  ) {
    this.retryMs = opts.retryMinMs ?? 500;
    const base = spec.group ? `/apis/${spec.group}/${spec.version}` : `/api/${spec.version}`;
    const path = `${base}${spec.namespace ? `/namespaces/${spec.namespace}` : ''}/${spec.resource}`;
    const real = new Watch(kc);
    // ListWatch passes only resourceVersion and selectors: add bookmarks and a server-side timeout.
    const watch = {
      watch: async (p: string, query: Record<string, unknown>, cb: (phase: string, obj: unknown, raw: unknown) => void, done: (err: unknown) => void): Promise<AbortController> => {
        // ListWatch watches right after it applied a list to its cache: the cache is complete now.
        if (this.listed) this.markSynced();
        let failed = false;
        const q = { ...query, allowWatchBookmarks: true, timeoutSeconds: 300 + Math.floor(Math.random() * 300) };
        const ctl = await real.watch(p, q, cb, (err: unknown) => {
          if (err) failed = true;
          done(err);
        });
        if (!failed && !this.absent) this.ok();
        return ctl;
      },
    } as unknown as Watch;
    this.lw = new ListWatch<KubernetesObject>(path, watch, () => this.listAll(), false);
    this.lw.on('add', (o) => onEvent('add', o as T));
    this.lw.on('update', (o) => onEvent('update', o as T));
    this.lw.on('delete', (o) => onEvent('delete', o as T));
    this.lw.on('error', (err: unknown) => this.failed(err, 'watch'));
  }

  private request(verb: KubeRequest['verb']): KubeRequest {
    const r: KubeRequest = { verb, group: this.spec.group, resource: this.spec.resource };
    if (this.spec.namespace) r.namespace = this.spec.namespace;
    return r;
  }

  /** Every page of the list, as one list (ListWatch replaces its cache with it and diffs). */
  private async listAll(): Promise<KubernetesListObject<KubernetesObject>> {
    const items: KubernetesObject[] = [];
    let cont: string | undefined;
    let rv = '';
    try {
      for (;;) {
        const page = (await this.spec.list(cont ? { limit: this.opts.pageSize ?? 500, _continue: cont } : { limit: this.opts.pageSize ?? 500 })) as KubernetesListObject<KubernetesObject>;
        items.push(...(page.items ?? []));
        rv = page.metadata?.resourceVersion ?? rv;
        cont = page.metadata?._continue || undefined;
        if (!cont) break;
      }
    } catch (err) {
      const e = kubeError(err, this.request('list'));
      if (this.spec.optional && e.code === 'not-found') {
        // The CRD is not installed: empty and synced, looked for again later.
        this.absent = true;
        this.lastError = undefined;
        this.markSynced();
        this.opts.onHealth?.();
      }
      throw e;
    }
    this.absent = false;
    this.listed = true;
    this.ok();
    return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: rv }, items };
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    for (const w of this.syncWaiters.splice(0)) w();
    this.opts.onHealth?.();
  }

  private ok(): void {
    this.retryMs = this.opts.retryMinMs ?? 500;
    if (this.lastError || this.failingSince) {
      this.lastError = undefined;
      this.failingSince = undefined;
      this.opts.onHealth?.();
    }
  }

  private failed(err: unknown, verb: KubeRequest['verb']): void {
    if (this.stopped) return;
    const e = err instanceof MeshfedError ? err : kubeError(err, this.request(verb));
    if (!(this.absent && e.code === 'not-found')) {
      this.lastError = e;
      this.failingSince ??= new Date().toISOString();
      this.opts.onHealth?.();
    }
    // ListWatch stops on any error but 410: start again (list if it has no resourceVersion, else watch).
    clearTimeout(this.retryTimer);
    const delay = this.absent ? Math.max(this.retryMs, 30_000) : this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, this.opts.retryMaxMs ?? 30_000);
    this.retryTimer = setTimeout(() => void this.run(), delay);
    this.retryTimer.unref();
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.lw.start();
    } catch (err) {
      this.failed(err, 'watch');
    }
  }

  /** Starts; resolves when the first attempt is made (see `whenSynced`). */
  async start(): Promise<void> {
    this.stopped = false;
    await this.run();
  }

  whenSynced(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    void this.lw.stop();
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.lw.get(name, namespace) as T | undefined;
  }

  list(namespace?: string): readonly T[] {
    return this.lw.list(namespace) as readonly T[];
  }

  health(): InformerHealth {
    const h: InformerHealth = { resource: this.spec.resource, synced: this.synced, count: this.synced ? this.lw.list().length : 0 };
    if (this.spec.namespace) h.namespace = this.spec.namespace;
    if (this.lastError) h.lastError = this.lastError;
    if (this.failingSince) h.failingSince = this.failingSince;
    if (this.absent) h.absent = true;
    return h;
  }
}
