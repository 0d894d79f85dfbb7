// Request bodies and JSON answers for meshfed's HTTP servers (hub and agent),
// with the bounds every request obeys:
//   - a body is at most `limit` bytes (3 MiB by default, as Kubernetes and
//     etcd): a larger declared Content-Length is refused before reading, and a
//     streamed body is refused as soon as it passes the limit (reading stops);
//   - a JSON body is an object ({} when empty): null, arrays, numbers and
//     strings answer 400 naming the problem, and so does nesting deeper than
//     MAX_DEPTH (structures that deep make later recursive work expensive);
//   - an answer sent before the request body was read to its end closes the
//     connection, so the server never drains an unwanted body.
// Refusals are MeshfedErrors (too-large 413, invalid 400); the router answers them.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { errorMessage, MeshfedError } from './errors.js';

/** Default request body limit: 3 MiB, as the Kubernetes API server and etcd. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;

/** Deepest nesting of arrays and objects accepted in a request (API objects need under 10). */
export const MAX_DEPTH = 64;

/** The body as text, or a 413 as soon as it passes `limit` bytes (the rest is not read). */
export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit, `Content-Length is ${declared}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > limit) {
      // Stop reading: the answer closes the connection (sendJson), nothing more is buffered.
      req.pause();
      throw tooLarge(limit, `more than ${limit} bytes were sent`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function tooLarge(limit: number, what: string): MeshfedError {
  return new MeshfedError('too-large', `request body too large: the limit is ${limit} bytes (${(limit / 2 ** 20).toFixed(0)} MiB) and ${what}`, {
    details: { limitBytes: limit },
  });
}

/** A JSON object body ({} when empty), or a 400 naming what is wrong. `what` names the body in messages. */
export function parseJsonObject(text: string, what = 'request body'): Record<string, unknown> {
  if (!text.trim()) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new MeshfedError('invalid', `${what} is not JSON: ${errorMessage(err)}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new MeshfedError('invalid', `${what} must be a JSON object, not ${describeJsonType(v)}`);
  }
  checkDepth(v, what);
  return v as Record<string, unknown>;
}

/** readBody then parseJsonObject. */
export async function readJsonObject(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Record<string, unknown>> {
  return parseJsonObject(await readBody(req, limit));
}

/** null, an array, a number, ...: what a JSON value is, for messages. */
export function describeJsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** The nesting depth of a parsed value is at most `max`, or a 400 naming the bound. Iterative: no stack to overflow. */
export function checkDepth(value: unknown, what = 'request body', max = MAX_DEPTH): void {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > max) throw new MeshfedError('invalid', `${what} is nested deeper than ${max} levels`, { reason: 'TooDeep', details: { maxDepth: max } });
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
}

/** A JSON answer. One sent before the request body was read to its end closes the connection. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) };
  if (!res.req.complete) headers.connection = 'close';
  res.writeHead(status, headers);
  res.end(data);
}

export interface ServerTimeouts {
  /** Whole request headers within this (slowloris). */
  headersTimeoutMs: number;
  /** Whole request (headers and body) within this. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
}

export const DEFAULT_TIMEOUTS: ServerTimeouts = { headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, keepAliveTimeoutMs: 5_000 };

/**
 * Timeouts against clients that hold connections open by sending slowly
 * (slowloris). requestTimeout bounds receiving a request, not the answer, so a
 * watch stream (a long answer) is not cut by it.
 */
export function applyServerTimeouts(server: Server, t: ServerTimeouts = DEFAULT_TIMEOUTS): Server {
  server.headersTimeout = t.headersTimeoutMs;
  server.requestTimeout = t.requestTimeoutMs;
  server.keepAliveTimeout = t.keepAliveTimeoutMs;
  return server;
}

/** Path segments, %-decoded; a malformed escape is a 400 naming the segment (decodeURIComponent throws URIError). */
export function decodePathSegments(pathname: string): string[] {
  return pathname
    .split('/')
    .filter(Boolean)
    .map((segment) => {
      try {
        return decodeURIComponent(segment);
      } catch {
        throw new MeshfedError('invalid', `path segment "${segment.slice(0, 100)}" has a malformed %-escape`, { reason: 'BadPath' });
      }
    });
}

/** A reason as one line (a probe's answer shows in `kubectl describe pod` events), at most 500 characters. */
export function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim().slice(0, 500);
}
