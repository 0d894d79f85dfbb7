// Kubernetes API failures as MeshfedErrors. Every caller says what it asked
// (verb, resource, group, namespace), so a refusal can name the exact
// permission it lacks even when the server's answer carries no body (a watch
// refused with a bare 403). Accepts what @kubernetes/client-node throws: the
// generated clients' ApiException (code, body: a Status as text or object),
// Watch's Error with statusCode, and network errors (FetchError, with `code`
// such as ECONNREFUSED). Pure: no I/O. Generic: discovery and the MCS writer
// both use it.
import { MeshfedError, errorMessage, type ErrorCode } from '../util/errors.js';

/** What was asked of the API server. `namespace` unset: the cluster scope (or all namespaces). */
export interface KubeRequest {
  verb: 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';
  /** API group: '' for core. */
  group: string;
  /** Plural resource, e.g. "pods", "serviceexports". */
  resource: string;
  namespace?: string;
  /** Object name, for get/update/patch/delete. */
  name?: string;
}

/** A Kubernetes Status body, the fields we read. */
export interface KubeStatus {
  code?: number;
  reason?: string;
  message?: string;
}

/** The permission a request needs, as a ClusterRole rule reads (for messages and status). */
export interface KubePermission {
  verb: string;
  resource: string;
  group: string;
  /** '' : the cluster scope. */
  namespace: string;
}

export function permissionOf(req: KubeRequest): KubePermission {
  return { verb: req.verb, resource: req.resource, group: req.group, namespace: req.namespace ?? '' };
}

export function describePermission(p: KubePermission): string {
  return `${p.verb} ${p.resource} in API group "${p.group}" ${p.namespace ? `in namespace "${p.namespace}"` : 'at the cluster scope'}`;
}

function describeRequest(req: KubeRequest): string {
  const obj = req.name ? `${req.resource}/${req.name}` : req.resource;
  const group = req.group ? `.${req.group}` : '';
  return `${req.verb} ${obj}${group}${req.namespace ? ` in namespace ${req.namespace}` : ''}`;
}

/** The HTTP status and Status body of a client-node error, when it has one. */
export function statusOf(err: unknown): { code?: number; status?: KubeStatus } {
  if (typeof err !== 'object' || err === null) return {};
  const e = err as { code?: unknown; statusCode?: unknown; body?: unknown };
  const code = typeof e.code === 'number' ? e.code : typeof e.statusCode === 'number' ? e.statusCode : undefined;
  let body: unknown = e.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      body = undefined;
    }
  }
  const out: { code?: number; status?: KubeStatus } = {};
  if (code !== undefined) out.code = code;
  if (typeof body === 'object' && body !== null && (body as { kind?: unknown }).kind === 'Status') {
    const b = body as Record<string, unknown>;
    const s: KubeStatus = {};
    if (typeof b['code'] === 'number') s.code = b['code'];
    if (typeof b['reason'] === 'string') s.reason = b['reason'];
    if (typeof b['message'] === 'string') s.message = b['message'].slice(0, 1000);
    out.status = s;
  }
  return out;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'UND_ERR_SOCKET', 'ERR_STREAM_PREMATURE_CLOSE']);

/** True when the error says the API server could not be reached (rather than answered). */
export function isUnreachable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; errno?: unknown; type?: unknown; cause?: unknown };
  if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return true;
  if (typeof e.errno === 'string' && NETWORK_CODES.has(e.errno)) return true;
  if (e.type === 'system' || e.type === 'request-timeout') return true;
  return e.cause !== undefined && e.cause !== err && isUnreachable(e.cause);
}

/**
 * The MeshfedError for a failed request. A 403 is `forbidden` and names the
 * missing permission (details: KubePermission) and where to grant it; 401
 * `unauthenticated`; 404 `not-found`; 409 `conflict`; 410 `gone`; 422/400
 * `invalid`; an unreachable server or a 5xx `unavailable`.
 */
export function kubeError(err: unknown, req: KubeRequest, grantIn = "the agent's ClusterRole"): MeshfedError {
  if (err instanceof MeshfedError) return err;
  const { code, status } = statusOf(err);
  const server = status?.message;
  const what = describeRequest(req);
  if (code === 403) {
    const p = permissionOf(req);
    const msg = `forbidden: cannot ${describePermission(p)}${server ? ` (the API server says: ${server})` : ''}; grant "${p.verb}" on "${p.resource}" (apiGroups: ["${p.group}"]) in ${grantIn}`;
    return new MeshfedError('forbidden', msg, { reason: 'Forbidden', details: p, cause: err });
  }
  if (code === undefined && isUnreachable(err)) return new MeshfedError('unavailable', `${what}: the API server cannot be reached: ${errorMessage(err).split('\n')[0]}`, { cause: err });
  const byCode: Record<number, ErrorCode> = { 400: 'invalid', 401: 'unauthenticated', 404: 'not-found', 409: 'conflict', 410: 'gone', 422: 'invalid', 429: 'rate-limited' };
  const mc: ErrorCode = code === undefined ? 'unavailable' : (byCode[code] ?? (code >= 500 ? 'unavailable' : 'internal'));
  // ApiException's own message holds the headers: use the Status message, else the first line.
  const detail = server ?? errorMessage(err).split('\n')[0]!.slice(0, 300);
  const prefix = code === undefined ? '' : `HTTP ${code}${status?.reason ? ` ${status.reason}` : ''}: `;
  return new MeshfedError(mc, `${what}: ${prefix}${detail}`, { cause: err, ...(status?.reason ? { reason: status.reason } : {}) });
}
