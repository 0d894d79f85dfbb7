// Envoy v3 protos, loaded once with protobufjs from the copies vendored by
// @grpc/grpc-js-xds, and a STRICT encoder: protobufjs `fromObject` silently drops
// unknown fields, so a misspelled field would become a silently missing feature.
// encodeResource walks the plain object against the message type first and
// throws with the full field path.
import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';
import type { XdsResource } from '../xdsapi/index.js';
import { closest } from '../util/suggest.js';

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

/** Envoy bootstrap protos: loaded into the same root on first use (proxyless-only agents never need them). */
const BOOTSTRAP_FILES = ['envoy/config/bootstrap/v3/bootstrap.proto', 'envoy/extensions/upstreams/http/v3/http_protocol_options.proto'];
let bootstrapLoaded = false;

export function loadBootstrapProtos(): protobuf.Root {
  const r = protoRoot();
  if (!bootstrapLoaded) {
    r.loadSync(BOOTSTRAP_FILES, { keepCase: true });
    r.resolveAll();
    bootstrapLoaded = true;
  }
  return r;
}

/**
 * Strictly encodes a message written in proto3 JSON form, the form Envoy reads a
 * bootstrap file in (durations as "1s", Struct as a plain object, wrappers as
 * bare values, Any as { '@type', ...fields }): converts those well-known types to
 * protobufjs' object form, then checks every field like encodeResource does.
 * Field names must be the proto (snake_case) names.
 */
export function encodeJsonMessage(typeName: string, json: unknown, what = typeName): Uint8Array {
  const type = protoRoot().lookupType(typeName);
  const obj = fromProto3Json(type, json, '', what);
  checkMessage(type, obj, '', what);
  return type.encode(type.fromObject(obj as Record<string, unknown>)).finish();
}

const WRAPPERS = new Set(['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map((t) => `.google.protobuf.${t}Value`));
/** Well-known types whose proto3 JSON form is not an object of their fields: inside an Any they sit in "value". */
const SPECIAL_JSON = new Set(['.google.protobuf.Duration', '.google.protobuf.Struct', '.google.protobuf.Value', '.google.protobuf.ListValue', ...WRAPPERS]);

function fromProto3Json(type: protobuf.Type, v: unknown, at: string, what: string): unknown {
  const name = type.fullName;
  if (name === '.google.protobuf.Duration') {
    const m = typeof v === 'string' ? /^(-?)(\d+)(?:\.(\d{1,9}))?s$/.exec(v) : null;
    if (!m) fail(what, at, `expected a duration like "1.5s", got ${describe(v)}`);
    const sign = m[1] ? -1 : 1;
    const nanos = m[3] ? Number(m[3].padEnd(9, '0')) : 0;
    return nanos ? { seconds: sign * Number(m[2]), nanos: sign * nanos } : { seconds: sign * Number(m[2]) };
  }
  if (WRAPPERS.has(name)) return { value: v };
  if (name === '.google.protobuf.Struct') {
    if (!isPlainObject(v)) fail(what, at, `expected an object (Struct), got ${describe(v)}`);
    return { fields: Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonValue(x)])) };
  }
  if (name === '.google.protobuf.Value') return jsonValue(v);
  if (name === '.google.protobuf.ListValue') {
    if (!Array.isArray(v)) fail(what, at, `expected an array (ListValue), got ${describe(v)}`);
    return { values: v.map(jsonValue) };
  }
  if (!isPlainObject(v)) return v; // checkMessage reports it
  if (name === '.google.protobuf.Any') {
    const url = v['@type'];
    if (typeof url !== 'string') return v;
    let inner: protobuf.Type;
    try {
      inner = typeForUrl(url);
    } catch {
      return v; // checkMessage names the unknown type
    }
    const { ['@type']: _u, ...fields } = v;
    if (SPECIAL_JSON.has(inner.fullName)) return { '@type': url, ...(fromProto3Json(inner, fields.value, `${at}.value`, what) as object) };
    return { '@type': url, ...(fromProto3Json(inner, fields, at, what) as object) };
  }
  const out: Record<string, unknown> = {};
  for (const [key, x] of Object.entries(v)) {
    const field = type.fields[key];
    const fpath = at ? `${at}.${key}` : key;
    const rt = field?.resolvedType;
    if (!field || !(rt instanceof protobuf.Type) || x === null || x === undefined) {
      out[key] = x; // scalars, enums and unknown fields as they are: checkMessage judges them
    } else if (field.map && isPlainObject(x)) {
      out[key] = Object.fromEntries(Object.entries(x).map(([k, mv]) => [k, fromProto3Json(rt, mv, `${fpath}[${JSON.stringify(k)}]`, what)]));
    } else if (field.repeated && Array.isArray(x)) {
      out[key] = x.map((item, i) => fromProto3Json(rt, item, `${fpath}[${i}]`, what));
    } else {
      out[key] = fromProto3Json(rt, x, fpath, what);
    }
  }
  return out;
}

/** google.protobuf.Value in object form. Field names as the loaded type spells them (protobufjs' bundled copy is camelCase). */
function jsonValue(v: unknown): Record<string, unknown> {
  const f = (snake: string): string => {
    const fields = protoRoot().lookupType('google.protobuf.Value').fields;
    return snake in fields ? snake : snake.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
  };
  if (v === null) return { [f('null_value')]: 'NULL_VALUE' };
  if (typeof v === 'number') return { [f('number_value')]: v };
  if (typeof v === 'string') return { [f('string_value')]: v };
  if (typeof v === 'boolean') return { [f('bool_value')]: v };
  if (Array.isArray(v)) return { [f('list_value')]: { values: v.map(jsonValue) } };
  if (isPlainObject(v)) return { [f('struct_value')]: { fields: Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonValue(x)])) } };
  throw new Error(`not a JSON value: ${describe(v)}`);
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
  const best = closest(key, names);
  return best ? `; did you mean "${best}"?` : '';
}

let adsDefinition: grpc.ServiceDefinition | undefined;
/**
 * The AggregatedDiscoveryService definition as proto-loader builds it from
 * Envoy's ads.proto (snake_case fields), loaded once: the agent's server, the
 * tests' raw client and the benchmark's clients and floor server all use it.
 */
export function adsServiceDefinition(): grpc.ServiceDefinition {
  if (!adsDefinition) {
    const pkg = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: xdsIncludeDirs() });
    // proto-loader's ServiceDefinition is structurally grpc-js's; the types come from two packages.
    adsDefinition = pkg['envoy.service.discovery.v3.AggregatedDiscoveryService'] as unknown as grpc.ServiceDefinition;
  }
  return adsDefinition;
}
