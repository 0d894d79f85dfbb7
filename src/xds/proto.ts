// Envoy v3 protos, loaded once with protobufjs from the copies vendored by
// @grpc/grpc-js-xds, and a STRICT encoder: protobufjs `fromObject` silently drops
// unknown fields, so a misspelled field would become a silently missing feature.
// encodeResource walks the plain object against the message type first and
// throws with the full field path.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';
import type { XdsResource } from '../translate/xds/types.js';

const require = createRequire(import.meta.url);

/** Include dirs for Envoy/xDS protos (also used by proto-loader for ads.proto). */
export function xdsIncludeDirs(): string[] {
  const pkg = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
  const dirs = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(pkg, 'deps', d));
  // google/protobuf/descriptor.proto (imported by validate.proto) ships with protobufjs.
  dirs.push(path.dirname(require.resolve('protobufjs/package.json')));
  return dirs;
}

/** Files whose types resources (and Any payloads in them) may use. */
const PROTO_FILES = [
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/service/discovery/v3/discovery.proto',
  // Loaded now so upcoming policies (mTLS, RBAC, fault injection) encode without changes here.
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
];

let root: protobuf.Root | undefined;

/** The protobufjs root (keepCase: field names are snake_case), loaded on first use. */
export function protoRoot(): protobuf.Root {
  if (root) return root;
  const dirs = xdsIncludeDirs();
  const r = new protobuf.Root();
  r.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const d of dirs) {
      const full = path.join(d, target);
      if (fsExists(full)) return full;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  r.loadSync(PROTO_FILES, { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

const existsCache = new Map<string, boolean>();
function fsExists(p: string): boolean {
  let v = existsCache.get(p);
  if (v === undefined) {
    v = existsSync(p);
    existsCache.set(p, v);
  }
  return v;
}

/** Message type for a type URL (anything after the last '/'). */
export function typeForUrl(typeUrl: string): protobuf.Type {
  const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
  try {
    return protoRoot().lookupType(name);
  } catch {
    throw new Error(`no protobuf message type for type URL "${typeUrl}"`);
  }
}

/** Encodes a resource to the bytes of its Any value; throws on any field that is not in the schema. */
export function encodeResource(r: XdsResource): { typeUrl: string; value: Uint8Array } {
  const type = typeForUrl(r.typeUrl);
  checkMessage(type, r.message, '', `${type.name} "${r.name}"`);
  const value = type.encode(type.fromObject(r.message)).finish();
  return { typeUrl: r.typeUrl, value };
}

/** Decodes bytes of `typeUrl` to a plain object (Any fields expanded to { '@type', ... }); for tests and dumps. */
export function decodeResource(typeUrl: string, bytes: Uint8Array): Record<string, unknown> {
  const type = typeForUrl(typeUrl);
  // json: true expands Any into { '@type': url, ...fields }, the form encodeResource accepts.
  return type.toObject(type.decode(bytes), { json: true, enums: String, longs: Number, bytes: String });
}

/** Checks a plain object against a message type without encoding it; throws like encodeResource. */
export function checkMessage(type: protobuf.Type, value: unknown, at: string, what: string): void {
  if (!isPlainObject(value)) fail(what, at, `expected an object (message ${bare(type)}), got ${describe(value)}`);
  if (type.fullName === '.google.protobuf.Any') return checkAny(value, at, what);
  const oneofSet = new Map<string, string>();
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined || v === null) continue; // unset, as fromObject treats it
    const field = type.fields[key];
    const fpath = at ? `${at}.${key}` : key;
    if (!field) fail(what, fpath, `unknown field "${key}" in ${bare(type)}${suggest(type, key)}`);
    if (field.partOf) {
      const other = oneofSet.get(field.partOf.name);
      if (other !== undefined) fail(what, fpath, `"${key}" and "${other}" are both set but belong to oneof ${field.partOf.name}`);
      oneofSet.set(field.partOf.name, key);
    }
    if (field.map) {
      if (!isPlainObject(v)) fail(what, fpath, `expected an object (map), got ${describe(v)}`);
      for (const [k, mv] of Object.entries(v)) checkValue(field, mv, `${fpath}[${JSON.stringify(k)}]`, what);
    } else if (field.repeated) {
      if (!Array.isArray(v)) fail(what, fpath, `expected an array (repeated ${field.type}), got ${describe(v)}`);
      v.forEach((item, i) => checkValue(field, item, `${fpath}[${i}]`, what));
    } else {
      checkValue(field, v, fpath, what);
    }
  }
}

function checkAny(value: Record<string, unknown>, at: string, what: string): void {
  const url = value['@type'];
  if (url === undefined) {
    // Raw form { type_url, value: bytes }: checked as an ordinary message.
    for (const key of Object.keys(value)) {
      if (key !== 'type_url' && key !== 'value') fail(what, at ? `${at}.${key}` : key, `unknown field "${key}" in Any without "@type"`);
    }
    return;
  }
  if (typeof url !== 'string' || !url.includes('/')) fail(what, `${at}.@type`, `expected a type URL, got ${describe(url)}`);
  let inner: protobuf.Type;
  try {
    inner = typeForUrl(url);
  } catch (e) {
    fail(what, `${at}.@type`, (e as Error).message);
  }
  const { ['@type']: _ignored, ...fields } = value;
  checkMessage(inner, fields, at, what);
}

function checkValue(field: protobuf.Field, v: unknown, at: string, what: string): void {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) return checkMessage(rt, v, at, what);
  if (rt instanceof protobuf.Enum) {
    const ok = typeof v === 'string' ? Object.hasOwn(rt.values, v) : typeof v === 'number' && Object.hasOwn(rt.valuesById, v);
    if (!ok) fail(what, at, `${describe(v)} is not a value of enum ${bare(rt)} (${Object.keys(rt.values).join(', ')})`);
    return;
  }
  let ok: boolean;
  switch (field.type) {
    case 'string':
      ok = typeof v === 'string';
      break;
    case 'bool':
      ok = typeof v === 'boolean';
      break;
    case 'double':
    case 'float':
      ok = typeof v === 'number';
      break;
    case 'int32':
    case 'sint32':
    case 'sfixed32':
      ok = Number.isInteger(v) && (v as number) >= -(2 ** 31) && (v as number) < 2 ** 31;
      break;
    case 'uint32':
    case 'fixed32':
      ok = Number.isInteger(v) && (v as number) >= 0 && (v as number) < 2 ** 32;
      break;
    case 'int64':
    case 'sint64':
    case 'sfixed64':
    case 'uint64':
    case 'fixed64':
      ok = Number.isSafeInteger(v) || (typeof v === 'string' && /^-?\d+$/.test(v)) || typeof v === 'bigint';
      break;
    case 'bytes':
      ok = v instanceof Uint8Array || typeof v === 'string';
      break;
    default:
      ok = false;
  }
  if (!ok) fail(what, at, `expected ${field.type}, got ${describe(v)}`);
}

function fail(what: string, at: string, message: string): never {
  throw new Error(`${what}: ${at || '(top level)'}: ${message}`);
}

function bare(t: protobuf.ReflectionObject): string {
  return t.fullName.replace(/^\./, '');
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

/** "; did you mean ..." for camelCase spellings and near misses. */
function suggest(type: protobuf.Type, key: string): string {
  const names = Object.keys(type.fields);
  const snake = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  if (names.includes(snake)) return `; did you mean "${snake}"? (fields are snake_case)`;
  let best: string | undefined;
  let bestD = 3;
  for (const n of names) {
    const d = editDistance(n, key);
    if (d < bestD) [best, bestD] = [n, d];
  }
  return best ? `; did you mean "${best}"?` : '';
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}
