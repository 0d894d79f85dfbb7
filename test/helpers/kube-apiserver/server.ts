// Stand-in Kubernetes API server (test infrastructure, not a product): plain HTTP
// on 127.0.0.1 with optional bearer-token auth, serving what kubectl and
// @kubernetes/client-node informers use: legacy discovery, /version, health,
// list (labelSelector, fieldSelector, limit/continue, Table output for
// `kubectl get`), get, create, update, patch, delete, deletecollection, the
// status subresource, and watch (newline-delimited JSON events, BOOKMARKs when
// allowWatchBookmarks, an ERROR event with a 410 Status for a compacted
// version, as the real server sends). Errors are Status objects. /openapi/v3
// serves per-group documents without schemas and /openapi/v2 an empty one
// (kubectl then validates nothing client-side and computes patches from its
// built-in types).
// CustomResourceDefinitions: creating one serves its kind (crds.ts).
// Test hooks: compact(), closeWatches(), bookmarkNow(), kubeconfig().
// Invariants: one global resourceVersion (store.ts); a watch sees every change
// after its version, in order; close() ends every connection.
import http from 'node:http';
import type net from 'node:net';
import { writeFile } from 'node:fs/promises';
import { type Json, type JsonObject, clone, isObject } from './patch.js';
import { type Target, Registry, parseBody } from './rest.js';
import { type ResourceType, apiGroup, apiGroupList, apiVersionOf, coreVersions, findResource, resourceList } from './resources.js';
import { CustomResources } from './crds.js';
import { ApiError, ObjectStore, type EventType, labelsOf, metaOf, namespaceOf, nameOf, parseFieldSelector, parseLabelSelector } from './store.js';

export interface KubeApiServerOptions {
  /** when set, every request needs `Authorization: Bearer <token>` */
  token?: string;
  /** bounded event history (watch from older versions gets 410) */
  historyLimit?: number;
  /** how often a watch with allowWatchBookmarks gets a BOOKMARK */
  bookmarkIntervalMs?: number;
  /** requests refused with the real 403 Status (RBAC stand-in); also settable later through `forbid` */
  forbid?: ForbiddenRule[];
  /** the user named in 403 messages (default the agent's service account) */
  user?: string;
}

/** A refused verb on a resource (plural, e.g. "pods"); `namespace` unset: refused everywhere. */
export interface ForbiddenRule {
  verb: 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';
  resource: string;
  namespace?: string;
}

interface OpenWatch {
  res: http.ServerResponse;
  type: ResourceType;
  bookmarks: boolean;
  stop(): void;
  send(type: EventType | 'BOOKMARK' | 'ERROR', obj: JsonObject): void;
}

function statusBody(err: ApiError): JsonObject {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: err.message, reason: err.reason, ...(err.details ? { details: err.details } : {}), code: err.code };
}

function wantsTable(req: http.IncomingMessage): boolean {
  return /as=Table/.test(req.headers.accept ?? '');
}

/** the real server's default columns for a kind without its own printer: Name, Created At */
function tableOf(items: JsonObject[], listMeta: JsonObject): JsonObject {
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: [
      { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.', priority: 0 },
      { name: 'Created At', type: 'date', format: '', description: 'CreationTimestamp is a timestamp representing the server time when this object was created.', priority: 0 },
    ],
    rows: items.map((o) => ({ cells: [nameOf(o), String(metaOf(o)['creationTimestamp'] ?? '')], object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: metaOf(o) } })),
  };
}

export class KubeApiServer {
  readonly store: ObjectStore;
  private readonly registry: Registry;
  /** what this server serves: the built-in table and its CustomResourceDefinitions' kinds */
  private readonly crds: CustomResources;
  private readonly server: http.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly watches = new Set<OpenWatch>();
  private timer: NodeJS.Timeout | undefined;
  port = 0;
  /** test hook: requests refused with 403 (change it at any time) */
  forbid: ForbiddenRule[];

  private constructor(private readonly opts: KubeApiServerOptions) {
    this.forbid = opts.forbid ?? [];
    this.store = new ObjectStore(opts.historyLimit ?? 10_000);
    this.registry = new Registry(this.store);
    this.crds = new CustomResources(this.store, (type) => {
      for (const w of [...this.watches]) if (w.type === type) w.stop();
    });
    for (const ns of ['default', 'kube-system', 'kube-public'])
      this.registry.create({ type: findResource('', 'v1', 'namespaces')!, namespace: '', name: ns, subresource: '' }, { metadata: { name: ns } }, '');
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  static async start(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const s = new KubeApiServer(opts);
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    s.port = (s.server.address() as net.AddressInfo).port;
    s.timer = setInterval(() => s.bookmarkNow(), opts.bookmarkIntervalMs ?? 5_000);
    s.timer.unref();
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** a kubeconfig for kubectl or client-node; written to `file` when given */
  async kubeconfig(file?: string, context = 'standin'): Promise<string> {
    const user = this.opts.token ? `    token: ${this.opts.token}\n` : '    {}\n';
    const text = `apiVersion: v1\nkind: Config\nclusters:\n- name: ${context}\n  cluster:\n    server: ${this.url}\ncontexts:\n- name: ${context}\n  context:\n    cluster: ${context}\n    user: ${context}\n    namespace: default\ncurrent-context: ${context}\nusers:\n- name: ${context}\n  user:\n${user}`;
    if (file) await writeFile(file, text);
    return text;
  }

  /** test hook: forget all watch history so far (or up to `upTo`); a watch from before then gets 410 */
  compact(upTo?: number): void {
    this.store.compact(upTo);
  }

  /** test hook: every open watch gets a BOOKMARK at the current version */
  bookmarkNow(): void {
    for (const w of this.watches) if (w.bookmarks) w.send('BOOKMARK', { metadata: { resourceVersion: String(this.store.resourceVersion) } });
  }

  /** test hook: end every open watch stream (as an apiserver restart or a load balancer would) */
  closeWatches(): void {
    for (const w of [...this.watches]) w.stop();
  }

  get openWatches(): number {
    return this.watches.size;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.closeWatches();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      if (this.opts.token && req.headers.authorization !== `Bearer ${this.opts.token}`) throw new ApiError(401, 'Unauthorized', 'Unauthorized');
      const url = new URL(req.url ?? '/', 'http://standin');
      const body = await readBody(req);
      this.route(req, res, url, body);
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError(500, 'InternalError', `Internal error occurred: ${(err as Error).message}`);
      if (!res.headersSent) send(res, e.code, statusBody(e));
      else res.end();
    }
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse, url: URL, body: string): void {
    const p = url.pathname.replace(/\/+$/, '') || '/';
    if (['/healthz', '/readyz', '/livez'].includes(p)) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }
    if (p === '/version') return send(res, 200, { major: '1', minor: '31', gitVersion: 'v1.31.0-meshfed-standin', platform: 'linux/amd64' });
    // kubectl apply validates against OpenAPI and refuses when none can be fetched; an empty
    // document means "no schema known", so it validates nothing and falls back to its built-in types
    // older kubectl (Debian's 1.20) validates against OpenAPI v2, fetched as protobuf
    if (p === '/openapi/v2') {
      if (!/protobuf/.test(req.headers.accept ?? '')) return send(res, 200, { swagger: '2.0', info: { title: 'Kubernetes', version: 'v1.31.0' }, paths: {}, definitions: {} });
      res.writeHead(200, { 'content-type': 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf' }).end(OPENAPI_V2_PROTOBUF);
      return;
    }
    if (p === '/openapi/v3') {
      const paths: Record<string, unknown> = {};
      for (const gv of ['api/v1', ...groupVersions(this.crds.types()).map((g) => `apis/${g}`)]) paths[gv] = { serverRelativeURL: `/openapi/v3/${gv}?hash=0` };
      return send(res, 200, { paths });
    }
    if (p.startsWith('/openapi/v3/')) return send(res, 200, openApiV3(p.slice('/openapi/v3/'.length), this.crds.types()));
    if (p === '/api') return send(res, 200, coreVersions());
    if (p === '/apis') return send(res, 200, apiGroupList(this.crds.types()));
    const seg = p.split('/').filter((s) => s !== '');
    let group: string;
    let version: string;
    let rest: string[];
    if (seg[0] === 'api' && seg.length >= 2) [group, version, rest] = ['', seg[1]!, seg.slice(2)];
    else if (seg[0] === 'apis' && seg.length >= 2) {
      if (seg.length === 2) {
        const g = apiGroup(seg[1]!, this.crds.types());
        if (!g) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
        return send(res, 200, g);
      }
      [group, version, rest] = [seg[1]!, seg[2]!, seg.slice(3)];
    } else throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    if (rest.length === 0) {
      const list = resourceList(group, version, this.crds.types());
      if (!list) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
      return send(res, 200, list);
    }
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3 && rest[2] !== 'status' && rest[2] !== 'finalize') {
      namespace = rest[1]!;
      rest = rest.slice(2);
    }
    const type = findResource(group, version, rest[0]!, this.crds.types());
    if (!type || rest.length > 3 || (rest.length === 3 && rest[2] !== 'status') || (rest.length === 3 && !type.hasStatus) || (namespace !== undefined && !type.namespaced)) {
      throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    }
    const q = url.searchParams;
    this.authorize(req.method ?? 'GET', q, type, namespace, rest.length === 1);
    const manager = q.get('fieldManager') ?? (req.headers['user-agent'] ?? '').split('/')[0] ?? '';
    if (rest.length === 1) {
      const ns = type.namespaced ? namespace : undefined;
      if (req.method === 'GET' && (q.get('watch') === '1' || q.get('watch') === 'true')) return this.watch(req, res, type, ns, q);
      if (req.method === 'GET') return this.list(req, res, type, ns, q);
      if (req.method === 'POST') {
        if (type.namespaced && namespace === undefined) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
        const t: Target = { type, namespace: namespace ?? '', name: '', subresource: '' };
        return send(res, 201, this.registry.create(t, parseBody(body, String(req.headers['content-type'] ?? 'application/json')), manager));
      }
      if (req.method === 'DELETE') {
        const match = this.matcher(q);
        const items = this.store.list(type, ns, match).map((o) => this.registry.delete({ type, namespace: namespaceOf(o), name: nameOf(o), subresource: '' }, undefined).object);
        return send(res, 200, { kind: `${type.kind}List`, apiVersion: apiVersionOf(type), metadata: { resourceVersion: String(this.store.resourceVersion) }, items });
      }
      throw new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
    }
    const t: Target = { type, namespace: type.namespaced ? (namespace ?? '') : '', name: rest[1]!, subresource: rest[2] === 'status' ? 'status' : '' };
    if (type.namespaced && namespace === undefined) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    const ctype = String(req.headers['content-type'] ?? 'application/json');
    switch (req.method) {
      case 'GET':
        return send(res, 200, this.registry.get(t));
      case 'PUT':
        return send(res, 200, this.registry.update(t, parseBody(body, ctype), manager));
      case 'PATCH': {
        const existed = this.store.get(type, t.namespace, t.name) !== undefined;
        const out = this.registry.patch(t, parseBody(body, ctype), ctype, manager, q.get('force') === 'true');
        return send(res, existed ? 200 : 201, out);
      }
      case 'DELETE': {
        let precondition: string | undefined;
        const opts = body.trim() ? parseBody(body, 'application/json') : null;
        if (isObject(opts) && isObject(opts['preconditions']) && opts['preconditions']['resourceVersion'] !== undefined) precondition = String(opts['preconditions']['resourceVersion']);
        const { object, gone } = this.registry.delete(t, precondition);
        if (!gone || type.kind === 'Pod') return send(res, 200, object);
        return send(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name: t.name, group: type.group, kind: type.plural, uid: metaOf(object)['uid'] ?? '' } });
      }
      default:
        throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    }
  }

  /** the RBAC stand-in: a request matching a `forbid` rule gets the real server's 403 Status */
  private authorize(method: string, q: URLSearchParams, type: ResourceType, namespace: string | undefined, collection: boolean): void {
    if (this.forbid.length === 0) return;
    const watch = q.get('watch') === '1' || q.get('watch') === 'true';
    const verb =
      method === 'GET'
        ? watch
          ? 'watch'
          : collection
            ? 'list'
            : 'get'
        : method === 'POST'
          ? 'create'
          : method === 'PUT'
            ? 'update'
            : method === 'PATCH'
              ? 'patch'
              : collection
                ? 'deletecollection'
                : 'delete';
    if (!this.forbid.some((r) => r.verb === verb && r.resource === type.plural && (r.namespace === undefined || r.namespace === namespace))) return;
    const user = this.opts.user ?? 'system:serviceaccount:meshfed:meshfed-agent';
    const scope = namespace === undefined ? 'at the cluster scope' : `in the namespace "${namespace}"`;
    throw new ApiError(
      403,
      'Forbidden',
      `${type.plural}${type.group ? `.${type.group}` : ''} is forbidden: User "${user}" cannot ${verb} resource "${type.plural}" in API group "${type.group}" ${scope}`,
      { group: type.group, kind: type.plural },
    );
  }

  private matcher(q: URLSearchParams): (o: JsonObject) => boolean {
    const labels = parseLabelSelector(q.get('labelSelector') ?? '');
    const fields = parseFieldSelector(q.get('fieldSelector') ?? '');
    return (o) => labels(labelsOf(o)) && fields(o);
  }

  private list(req: http.IncomingMessage, res: http.ServerResponse, type: ResourceType, ns: string | undefined, q: URLSearchParams): void {
    const match = this.matcher(q);
    let listRv = this.store.resourceVersion;
    let items = this.store.listShared(type, ns, match);
    const cont = q.get('continue');
    if (cont) {
      let token: { rv: number; after: string };
      try {
        token = JSON.parse(Buffer.from(cont, 'base64url').toString()) as { rv: number; after: string };
      } catch {
        throw new ApiError(400, 'BadRequest', 'continue key is not valid');
      }
      if (token.rv < this.store.oldestWatchable)
        throw new ApiError(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
      listRv = token.rv;
      items = items.filter((o) => `${namespaceOf(o)}/${nameOf(o)}` > token.after);
    }
    const limit = Number(q.get('limit') ?? 0);
    const listMeta: JsonObject = { resourceVersion: String(listRv) };
    if (limit > 0 && items.length > limit) {
      const last = items[limit - 1]!;
      listMeta['continue'] = Buffer.from(JSON.stringify({ rv: listRv, after: `${namespaceOf(last)}/${nameOf(last)}` })).toString('base64url');
      listMeta['remainingItemCount'] = items.length - limit;
      items = items.slice(0, limit);
    }
    const page = items.map((o) => clone(o));
    if (wantsTable(req)) return send(res, 200, tableOf(page, listMeta));
    // built-in kinds' list items carry no apiVersion/kind on the wire; custom resources' do
    if (!type.custom) {
      for (const o of page) {
        delete o['apiVersion'];
        delete o['kind'];
      }
    }
    send(res, 200, { kind: `${type.kind}List`, apiVersion: apiVersionOf(type), metadata: listMeta, items: page });
  }

  private watch(req: http.IncomingMessage, res: http.ServerResponse, type: ResourceType, ns: string | undefined, q: URLSearchParams): void {
    const rvParam = q.get('resourceVersion');
    const from = rvParam === null || rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    if (from !== undefined && !Number.isInteger(from)) throw new ApiError(400, 'BadRequest', `invalid resourceVersion "${rvParam}"`);
    const table = wantsTable(req);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'cache-control': 'no-cache' });
    res.flushHeaders();
    let stopped = false;
    let unsubscribe = (): void => {};
    const w: OpenWatch = {
      res,
      type,
      bookmarks: q.get('allowWatchBookmarks') === 'true' || q.get('allowWatchBookmarks') === '1',
      send: (evType, obj) => {
        if (stopped) return;
        let object: Json = obj;
        if (evType === 'BOOKMARK') object = { kind: type.kind, apiVersion: apiVersionOf(type), ...obj };
        else if (table && evType !== 'ERROR') object = tableOf([obj], { resourceVersion: String(metaOf(obj)['resourceVersion'] ?? '') });
        res.write(`${JSON.stringify({ type: evType, object })}\n`);
      },
      stop: () => {
        if (stopped) return;
        stopped = true;
        unsubscribe();
        this.watches.delete(w);
        clearTimeout(timeout);
        res.end();
      },
    };
    const seconds = Number(q.get('timeoutSeconds') ?? 0);
    const timeout = seconds > 0 ? setTimeout(() => w.stop(), seconds * 1000) : undefined;
    req.on('close', () => w.stop());
    const match = this.matcher(q);
    try {
      unsubscribe = this.store.watch({ resource: type, namespace: ns, matches: match, send: (t, o) => w.send(t, o) }, from);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      w.send('ERROR', statusBody(err));
      w.stop();
      return;
    }
    this.watches.add(w);
  }
}

/**
 * A group-version's OpenAPI v3 document with no schemas: only the item paths, each
 * PATCH naming its kind and the fieldValidation parameter, which is how kubectl
 * learns that the server validates fields (so it asks for no client-side schema).
 */
function openApiV3(gv: string, types: readonly ResourceType[]): JsonObject {
  const paths: JsonObject = {};
  const param = { name: 'fieldValidation', in: 'query', schema: { type: 'string', uniqueItems: true } };
  for (const t of types) {
    if ((t.group ? `apis/${t.group}/${t.version}` : `api/${t.version}`) !== gv) continue;
    const gvk = { group: t.group, version: t.version, kind: t.kind };
    const base = `/${gv}${t.namespaced ? '/namespaces/{namespace}' : ''}/${t.plural}`;
    const op = { 'x-kubernetes-group-version-kind': gvk, 'x-kubernetes-action': 'patch', parameters: [param], responses: {} };
    paths[`${base}/{name}`] = { patch: op, put: { ...op, 'x-kubernetes-action': 'put' } };
    paths[base] = { post: { ...op, 'x-kubernetes-action': 'post' } };
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes', version: 'v1.31.0' }, paths, components: { schemas: {} } };
}

/** gnostic openapi_v2.Document{swagger: "2.0", info: {title: "Kubernetes", version: "v1.31.0"}}: no schemas */
const OPENAPI_V2_PROTOBUF = ((): Buffer => {
  const str = (field: number, text: string): Buffer => Buffer.concat([Buffer.from([(field << 3) | 2, Buffer.byteLength(text)]), Buffer.from(text)]);
  const info = Buffer.concat([str(1, 'Kubernetes'), str(2, 'v1.31.0')]);
  return Buffer.concat([str(1, '2.0'), Buffer.from([(2 << 3) | 2, info.length]), info]);
})();

function groupVersions(types: readonly ResourceType[]): string[] {
  return [...new Set(types.filter((t) => t.group !== '').map((t) => `${t.group}/${t.version}`))];
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
