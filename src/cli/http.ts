// HTTP calls from the CLI (and the demo fleet) to the hub or an agent, with
// errors a person can act on. HTTPS with the context's CA bundle and the
// context's credential (src/cli/config.ts): Node's global fetch cannot take a
// CA, so calls go through node:http/node:https and answer a standard Response.
// Every failure is a MeshfedError whose code gives the exit code (docs/cli.md):
// unreachable (no answer, or no answer in 15 s) is `unavailable` (3); an error
// answer keeps the API's message, reason and details, and its status decides the
// code: 401 and 403 are `unauthenticated`/`forbidden` (6), 404 `not-found` (4),
// 409 `conflict` (5), every other status fails (1). A watch (streamLines) is
// NDJSON read line by line, with no timeout once the answer has started.
// Several hub URLs (replicas; comma-separated in --hub, MESHFED_HUB or the
// context's hub): a call goes to the first, and moves to the next only when
// one gives no answer (refused, timed out) or answers 503 (not ready); any
// other answer, 4xx included, is the answer.
import { request as httpRequest, type IncomingHttpHeaders, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { codeOfHttpStatus, errorMessage, MeshfedError, type ErrorCode, type ErrorOptions } from '../util/errors.js';
import { currentContext, pemOf } from './config.js';
import { apiUrlsFlag } from './flags.js';

const DEFAULT_HUB = 'https://127.0.0.1:7400';
const DEFAULT_AGENT = 'http://127.0.0.1:15011';

/** How to reach an API: its CA bundle and the credential to present. */
export interface ApiCredentials {
  ca?: string;
  token?: string;
  cert?: string;
  key?: string;
}

export interface ApiFetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
}

/**
 * fetch() with a CA bundle, a client certificate and a bearer token. A body
 * without a content type is sent as application/json (the APIs refuse the
 * simple-request types a foreign web page could send).
 */
export function apiFetch(url: string | URL, init: ApiFetchInit = {}, creds: ApiCredentials = {}): Promise<Response> {
  const u = new URL(url);
  const opts = requestOptions(u, init, creds);
  return new Promise((resolve, reject) => {
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const status = res.statusCode ?? 500;
        const body = status === 204 || status === 304 ? null : Buffer.concat(chunks);
        resolve(new Response(body, { status, statusText: res.statusMessage ?? '', headers: headersOf(res.headers) }));
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(init.body);
  });
}

function requestOptions(u: URL, init: ApiFetchInit, creds: ApiCredentials): RequestOptions & { ca?: string; cert?: string; key?: string } {
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  const lower = new Set(Object.keys(headers).map((h) => h.toLowerCase()));
  if (creds.token && !lower.has('authorization')) headers.authorization = `Bearer ${creds.token}`;
  if (init.body !== undefined && !lower.has('content-type')) headers['content-type'] = 'application/json';
  if (init.body !== undefined) headers['content-length'] = String(Buffer.byteLength(init.body));
  const opts: RequestOptions & { ca?: string; cert?: string; key?: string } = { method: init.method ?? 'GET', headers, timeout: init.timeoutMs ?? 15_000 };
  if (u.protocol === 'https:') {
    if (creds.ca) opts.ca = creds.ca;
    if (creds.cert) opts.cert = creds.cert;
    if (creds.key) opts.key = creds.key;
  }
  return opts;
}

function headersOf(h: IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [k, v] of Object.entries(h)) {
    if (Array.isArray(v)) for (const x of v) out.append(k, x);
    else if (v !== undefined) out.set(k, v);
  }
  return out;
}

/**
 * Where a CLI call goes and with what: the flag (or env) URL, else the
 * context's; the context's CA and credential. Every address, wherever it came
 * from, may be a URL or HOST:PORT (flags.ts apiUrlFlag).
 */
export function target(what: 'hub' | 'agent', given: string | undefined): { base: string; bases: string[]; creds: ApiCredentials } {
  const { base, creds } = rawTarget(what, given);
  const env = what === 'hub' ? 'MESHFED_HUB' : 'MESHFED_AGENT';
  const source = given !== undefined ? `--${what}` : process.env[env] !== undefined ? env : `the context's ${what}`;
  const bases = apiUrlsFlag(base, what, source);
  return { base: bases.join(','), bases, creds };
}

/** A URL of `path` under `base`. */
function urlOf(base: string, path: string): URL {
  return new URL(path, base.endsWith('/') ? base : base + '/');
}

/** The code (or message) of a failed connection, for "cannot reach" messages. */
function causeOf(err: unknown): string {
  return (err as { code?: string }).code ?? errorMessage(err);
}

function rawTarget(what: 'hub' | 'agent', base: string | undefined): { base: string; creds: ApiCredentials } {
  const ctx = currentContext();
  const creds: ApiCredentials = {};
  if (what === 'hub') {
    if (ctx?.ca) creds.ca = pemOf(ctx.ca, 'ca');
    if (ctx?.token) creds.token = ctx.token;
    if (ctx?.cert && ctx.key) {
      creds.cert = pemOf(ctx.cert, 'cert');
      creds.key = pemOf(ctx.key, 'key');
    }
    return { base: base ?? process.env.MESHFED_HUB ?? ctx?.hub ?? DEFAULT_HUB, creds };
  }
  const token = process.env.MESHFED_AGENT_TOKEN ?? ctx?.agentToken;
  if (token) creds.token = token;
  return { base: base ?? process.env.MESHFED_AGENT ?? ctx?.agent ?? DEFAULT_AGENT, creds };
}

export async function request<T>(given: string | undefined, what: 'hub' | 'agent', method: string, path: string, body?: { text: string; contentType: string }): Promise<T> {
  const { bases, creds } = target(what, given);
  const init: ApiFetchInit = { method };
  if (body) {
    init.body = body.text;
    init.headers = { 'content-type': body.contentType };
  }
  const failed: string[] = [];
  let res: Response | undefined;
  let lastErr: unknown;
  for (const [i, base] of bases.entries()) {
    try {
      res = await apiFetch(urlOf(base, path), init, creds);
    } catch (err) {
      failed.push(`${base} (${causeOf(err)})`);
      lastErr = err;
      continue;
    }
    // Not ready (starting, stopping, its store unreachable): another replica may be.
    if (res.status === 503 && i < bases.length - 1) {
      failed.push(`${base} (503 ${res.statusText})`);
      await res.text();
      res = undefined;
      continue;
    }
    break;
  }
  if (!res) throw new MeshfedError('unavailable', `cannot reach the ${what} at ${failed.join(', ')}`, { cause: lastErr });
  const text = await res.text();
  const parsed = parseAnswer(text);
  if (!res.ok) throw answerError(what, res.status, res.statusText, parsed);
  return parsed as T;
}

function parseAnswer(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return { error: text };
  }
}

/** The MeshfedError of an error answer: the API's message, reason and details. */
function answerError(what: 'hub' | 'agent', status: number, statusText: string, parsed: unknown): MeshfedError {
  const answer = parsed as ErrorBody | undefined;
  const opts: ErrorOptions = {};
  if (typeof answer?.reason === 'string') opts.reason = answer.reason;
  if (answer?.details !== undefined) opts.details = answer.details;
  let message = answer?.error ?? `${status} ${statusText}`;
  if (status === 401) message += what === 'hub' ? ' (credential: the context of MESHFED_CONFIG or --context)' : " (credential: MESHFED_AGENT_TOKEN or the context's agentToken)";
  return new MeshfedError(codeOfAnswer(status), message, opts);
}

/**
 * A GET whose answer is newline-delimited JSON (a watch): `onLine` gets each
 * parsed line as it arrives; resolves when the server ends the stream. No
 * timeout once the answer started (a quiet watch is not a dead one); an error
 * answer throws as request() does.
 */
export async function streamLines(given: string | undefined, what: 'hub' | 'agent', path: string, onLine: (line: unknown) => void): Promise<void> {
  const { bases, creds } = target(what, given);
  const failed: string[] = [];
  for (const base of bases) {
    const r = await streamFrom(base, what, path, creds, onLine);
    if (r.ended) return;
    failed.push(`${base} (${causeOf(r.unreachable)})`);
    if (base === bases[bases.length - 1]) throw new MeshfedError('unavailable', `cannot reach the ${what} at ${failed.join(', ')}`, { cause: r.unreachable });
  }
}

/** One watch from `base`: true once it ended; the error when no answer came (the caller tries the next base). */
function streamFrom(base: string, what: 'hub' | 'agent', path: string, creds: ApiCredentials, onLine: (line: unknown) => void): Promise<{ ended: true } | { ended: false; unreachable: unknown }> {
  const u = urlOf(base, path);
  const opts = requestOptions(u, {}, creds);
  let answered = false;
  return new Promise((resolve, reject) => {
    const unreachable = (err: unknown) => reject(new MeshfedError('unavailable', `cannot reach the ${what} at ${base} (${causeOf(err)})`, { cause: err }));
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, opts, (res) => {
      req.setTimeout(0);
      const status = res.statusCode ?? 500;
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        if (status >= 300) return;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          let parsed: unknown;
          try {
            parsed = JSON.parse(line);
          } catch {
            req.destroy();
            return reject(new MeshfedError('internal', `the ${what} at ${base} sent a watch line that is not JSON: ${line.slice(0, 80)}`));
          }
          onLine(parsed);
        }
      });
      res.on('error', unreachable);
      res.on('end', () => (status >= 300 ? reject(answerError(what, status, res.statusMessage ?? '', parseAnswer(buf))) : resolve({ ended: true })));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    // No answer at all: the caller moves on to the next base.
    req.on('error', (err) => (answered ? unreachable(err) : resolve({ ended: false, unreachable: err })));
    req.on('response', () => (answered = true));
    req.end();
  });
}

/** The body of an API error answer (hub and agent alike). */
interface ErrorBody {
  error?: string;
  reason?: string;
  details?: unknown;
}

/**
 * The code of an error answer: not-found, conflict, and the denials
 * (unauthenticated, forbidden: exit 6) have exit codes of their own in
 * docs/cli.md; any other status (503 included) fails the command with 1.
 */
function codeOfAnswer(status: number): ErrorCode {
  const code = codeOfHttpStatus(status);
  if (code === 'not-found' || code === 'conflict' || code === 'unauthenticated' || code === 'forbidden') return code;
  return status >= 500 ? 'internal' : 'invalid';
}
