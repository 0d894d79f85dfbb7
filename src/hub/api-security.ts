// The hub API's transport and request security, apart from routing: its TLS
// server certificate (from the mesh CA, renewed at half-life and on root
// changes, or one the user supplies), the admin credential a first start
// writes and the cross-site checks every request passes (Host, Origin, content
// type of writes). The audit log is src/audit.
//
// Invariants: the certificate's key stays in memory; the admin config file is
// 0600 and its token is never logged (the log says where the file is); a
// request that fails a cross-site check changes nothing.
import type { IncomingMessage } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { CredentialStore } from '../auth/credentials.js';
import { SUPERUSER_GROUP } from '../auth/authorizer.js';
import { renewalTime } from '../ca/index.js';
import { writeFileDurable } from '../util/files.js';
import { errorMessage, MeshfedError } from '../util/errors.js';
import { logger } from '../util/log.js';
import type { HubTrust } from './trust.js';

const log = logger('hub.api');
const ADMIN_TOKEN_TTL_MS = 365 * 86_400_000;

/** TLS material of the API server. */
export interface ApiTlsMaterial {
  cert: string;
  key: string;
  /** What clients trust: the mesh roots, or the user's CA. */
  caPem: string;
  /** What client certificates must chain to (the mesh roots), when not caPem (a user-supplied API certificate). */
  clientCaPem?: string;
}

/** A user-supplied API certificate (--api-cert/--api-key); clients need its CA (--api-ca, or the system's). */
export interface UserApiCertificate {
  certPem: string;
  keyPem: string;
}

/** Host names and IPs the API answers to (and its certificate names): the listen host unless a wildcard, loopback, this host, extras. */
export function apiHosts(listenHost: string, extra: string[]): string[] {
  const wild = listenHost === '0.0.0.0' || listenHost === '::' || listenHost === '';
  return [...new Set([...(wild ? [] : [listenHost]), 'localhost', '127.0.0.1', '::1', hostname(), ...extra])];
}

/**
 * The API's certificate from the mesh CA: issued now, re-issued at half-life
 * and whenever the trust bundle or signer changes (root rotation), and put
 * into the running server.
 */
export class ApiCertificate {
  private material!: ApiTlsMaterial;
  private timer: NodeJS.Timeout | undefined;
  private server: HttpsServer | undefined;

  private constructor(
    private readonly trust: HubTrust,
    private readonly hosts: string[],
  ) {}

  static async issue(trust: HubTrust, hosts: string[]): Promise<ApiCertificate> {
    const c = new ApiCertificate(trust, hosts);
    await c.renew('start');
    trust.onChange(() => void c.renew('the trust bundle changed'));
    return c;
  }

  get tls(): ApiTlsMaterial {
    return this.material;
  }

  attach(server: HttpsServer): void {
    this.server = server;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
  }

  private async renew(why: string): Promise<void> {
    try {
      const c = await this.trust.issueApiCertificate(this.hosts);
      const caPem = this.trust.bundlePem();
      this.material = { cert: c.chainPem, key: c.keyPem, caPem };
      // `ca` is also what user client certificates must chain to: rotation updates both.
      this.server?.setSecureContext({ cert: c.chainPem, key: c.keyPem, ca: caPem });
      if (this.timer) clearTimeout(this.timer);
      const at = renewalTime(c.notBefore, c.notAfter).getTime();
      this.timer = setTimeout(() => void this.renew('half-life'), Math.max(1000, Math.min(at - Date.now(), 2 ** 31 - 1)));
      this.timer.unref();
      if (why !== 'start') log.info('renewed the hub API certificate', { why, notAfter: c.notAfter.toISOString() });
    } catch (err) {
      if (why === 'start') throw err;
      log.error('cannot renew the hub API certificate', { error: errorMessage(err) });
    }
  }
}

/**
 * On a first start (no credentials yet), the one admin credential: a token for
 * user "admin" in the superuser group, written as a CLI config file
 * `<dataDir>/admin.meshfed.yaml` (0600) with the hub URL and the CA bundle.
 */
export async function writeAdminCredential(dataDir: string, credentials: CredentialStore, hubUrl: string, caPem: string | undefined): Promise<string> {
  const { token, info } = await credentials.create({ user: 'admin', groups: [SUPERUSER_GROUP], ttlMs: ADMIN_TOKEN_TTL_MS });
  const file = join(dataDir, 'admin.meshfed.yaml');
  const context: Record<string, string> = { name: 'admin', hub: hubUrl, token };
  if (caPem) context.ca = caPem;
  const config = { 'current-context': 'admin', contexts: [context] };
  await writeFileDurable(file, `# meshfed CLI config: the hub's first admin credential (token ${info.id}, expires ${info.expiresAt}). Keep it secret.\n` + stringify(config), 0o600);
  log.info('wrote the admin credential (a CLI config: MESHFED_CONFIG=<file> meshfed ...); it is shown nowhere else', { file, tokenId: info.id, expiresAt: info.expiresAt });
  return file;
}

/** Methods that change state: they need a JSON or YAML body type (no simple-request content types). */
export function isWrite(method: string | undefined): boolean {
  return method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
}

const WRITE_TYPES = /^(application\/json|application\/(x-)?yaml|text\/yaml|application\/merge-patch\+json)\s*(;|$)/i;

/**
 * The cross-site checks, before anything else: Host must name this hub (DNS
 * rebinding), a browser's Origin must be the hub itself, and a write must
 * carry a JSON or YAML content type (a form, multipart or text/plain POST is
 * what a foreign web page can send without a preflight). Throws 403/415-style
 * refusals naming what is wrong.
 */
export function checkCrossSite(req: IncomingMessage, hosts: Set<string>, port: number, scheme: 'https' | 'http'): void {
  const host = req.headers.host;
  if (!host) throw new MeshfedError('forbidden', 'the Host header is missing', { reason: 'BadHost' });
  const hostName = hostOf(host);
  if (hostName === undefined || !hosts.has(hostName)) {
    throw new MeshfedError('forbidden', `Host "${host}" is not this hub (it answers to ${[...hosts].join(', ')}; add a name with --api-san)`, { reason: 'BadHost' });
  }
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== 'null') {
    let ok = false;
    try {
      const o = new URL(origin);
      const oPort = Number(o.port || (o.protocol === 'https:' ? 443 : 80));
      ok = o.protocol === `${scheme}:` && hosts.has(o.hostname.replace(/^\[|\]$/g, '')) && oPort === port;
    } catch {
      ok = false;
    }
    if (!ok) throw new MeshfedError('forbidden', `cross-site request refused: Origin ${origin} is not this hub`, { reason: 'CrossSite' });
  } else if (origin === 'null') {
    throw new MeshfedError('forbidden', 'cross-site request refused: Origin null', { reason: 'CrossSite' });
  }
  if (isWrite(req.method)) {
    const type = req.headers['content-type'];
    const hasBody = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0';
    const chunked = req.headers['transfer-encoding'] !== undefined;
    if ((type !== undefined || hasBody || chunked) && !WRITE_TYPES.test(type ?? '')) {
      throw new MeshfedError('forbidden', `a write needs Content-Type application/json or application/yaml, not "${type ?? '(none)'}"`, { reason: 'BadContentType' });
    }
  }
}

/** The host name of a Host header ("a:1", "[::1]:2", "a"), lowercased; undefined when malformed. */
function hostOf(host: string): string | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(:[0-9]+)?$/.exec(host.trim());
  if (!m) return undefined;
  return m[1]!.replace(/^\[|\]$/g, '').toLowerCase();
}
