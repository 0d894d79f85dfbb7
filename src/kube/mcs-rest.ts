// The few Kubernetes REST calls the MCS importer makes (list, get, server-side
// apply, status apply, delete), over @kubernetes/client-node's KubeConfig for
// the server, TLS and credentials (applyToHTTPSOptions: the same machinery its
// generated clients use, including token files that rotate).
//
// Invariants: every request has a timeout and is aborted by stop(); a response
// body is read up to MAX_BODY bytes, never more; an API server's answer is a
// KubeApiError carrying its HTTP status, its `reason` and its message, and the
// message names the request (verb and path); a connection failure is a
// MeshfedError 'unavailable' naming the server. Lists are paged (limit/continue).
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { withoutTlsVerification } from './config.js';
import { MeshfedError, codeOfHttpStatus, errorMessage } from '../util/errors.js';

const REQUEST_TIMEOUT_MS = 15_000;
const MAX_BODY = 32 * 1024 * 1024;
const PAGE = 500;
const OPTIONS_TTL_MS = 60_000;
/** Pages of one list, at most: a bound on a list that never ends (PAGE * MAX_PAGES objects). */
const MAX_PAGES = 1000;

export const APPLY_CONTENT_TYPE = 'application/apply-patch+yaml';

/** What a Kubernetes API server answered with an error Status. */
export class KubeApiError extends MeshfedError {
  constructor(
    readonly status: number,
    /** The Status' reason (NotFound, Conflict, Forbidden, ...). */
    readonly kubeReason: string,
    message: string,
  ) {
    super(codeOfHttpStatus(status), message, { reason: kubeReason || undefined });
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 404;
}

export interface KubeListed {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; generation?: number; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string };
  [field: string]: unknown;
}

export class KubeRest {
  private readonly kc: KubeConfig;
  private readonly server: string;
  private readonly inflight = new Set<http.ClientRequest>();
  private options: { opts: https.RequestOptions; at: number } | undefined;

  constructor(kubeConfig: KubeConfig) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new MeshfedError('invalid', `the kubeconfig has no cluster for its current context "${kubeConfig.getCurrentContext()}"`);
    this.server = cluster.server.replace(/\/+$/, '');
    // client-node refuses a plain-http server unless TLS verification is "skipped";
    // for http (kubectl proxy, a test API server) there is no TLS to verify.
    this.kc = this.server.startsWith('http:') && !cluster.skipTLSVerify ? withoutTlsVerification(kubeConfig) : kubeConfig;
  }

  get serverUrl(): string {
    return this.server;
  }

  /** Aborts every request in flight (they fail with 'unavailable'). */
  abortAll(): void {
    for (const r of this.inflight) r.destroy(new Error('stopped'));
  }

  /** Every object of a list (all namespaces when the path says so), following `continue`. */
  async list(path: string, labelSelector?: string): Promise<KubeListed[]> {
    const items: KubeListed[] = [];
    let cont = '';
    for (let page = 0; page < MAX_PAGES; page++) {
      const q = new URLSearchParams({ limit: String(PAGE) });
      if (labelSelector) q.set('labelSelector', labelSelector);
      if (cont) q.set('continue', cont);
      const body = (await this.request('GET', `${path}?${q.toString()}`)) as { items?: KubeListed[]; metadata?: { continue?: string } };
      for (const o of body.items ?? []) items.push(o);
      cont = body.metadata?.continue ?? '';
      if (!cont) return items;
    }
    throw new MeshfedError('too-large', `GET ${path}: more than ${PAGE * MAX_PAGES} objects`);
  }

  async get(path: string): Promise<KubeListed> {
    return (await this.request('GET', path)) as KubeListed;
  }

  /** Server-side apply with `fieldManager`, forcing ownership of the fields it sets. */
  async apply(path: string, body: unknown, fieldManager: string): Promise<KubeListed> {
    const q = new URLSearchParams({ fieldManager, force: 'true' });
    return (await this.request('PATCH', `${path}?${q.toString()}`, JSON.stringify(body), APPLY_CONTENT_TYPE)) as KubeListed;
  }

  async delete(path: string): Promise<void> {
    await this.request('DELETE', path);
  }

  /**
   * TLS, agent and credentials from the KubeConfig, kept for OPTIONS_TTL_MS: one
   * agent (keep-alive) for a reconcile's requests, yet a rotated token file is
   * read again soon.
   */
  private async connection(): Promise<https.RequestOptions> {
    if (this.options && Date.now() - this.options.at < OPTIONS_TTL_MS) return this.options.opts;
    const opts: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    this.options = { opts, at: Date.now() };
    return opts;
  }

  private async request(method: string, path: string, body?: string, contentType?: string): Promise<unknown> {
    const url = new URL(this.server + path);
    const opts = { ...(await this.connection()), method, timeout: REQUEST_TIMEOUT_MS };
    const headers = { ...(opts.headers as Record<string, string> | undefined), accept: 'application/json' } as Record<string, string>;
    if (body !== undefined) {
      headers['content-type'] = contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    const what = `${method} ${url.pathname}`;
    const lib = url.protocol === 'http:' ? http : https;
    return new Promise((resolve, reject) => {
      const req = lib.request(url, { ...opts, headers }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY) {
            req.destroy(new Error(`response over ${MAX_BODY} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('error', (err) => reject(new MeshfedError('unavailable', `${what} on ${this.server}: ${errorMessage(err)}`)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : {};
          } catch {
            parsed = undefined;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            if (parsed === undefined) reject(new MeshfedError('internal', `${what} on ${this.server}: the answer is not JSON`));
            else resolve(parsed);
            return;
          }
          const s = (parsed ?? {}) as { message?: unknown; reason?: unknown };
          const message = typeof s.message === 'string' ? s.message : text.slice(0, 500) || `HTTP ${status}`;
          reject(new KubeApiError(status, typeof s.reason === 'string' ? s.reason : '', `${what}: the API server answered ${status}: ${message}`));
        });
      });
      this.inflight.add(req);
      req.on('close', () => this.inflight.delete(req));
      req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', (err) => reject(new MeshfedError('unavailable', `${what} on ${this.server}: ${errorMessage(err)}`)));
      req.end(body);
    });
  }
}
