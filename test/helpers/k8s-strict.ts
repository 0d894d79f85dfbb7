// A strict unknown-field check of Kubernetes objects against the schemas the
// kubernetes-models packages ship. Their validators (`.validate()`) are ajv
// code compiled from Kubernetes' OpenAPI schemas and, like those schemas, do
// not reject fields they do not declare; a real API server drops such a field
// (or, with kubectl's --validate=strict, refuses it). kubernetes-models ships
// no JSON schema files, only those compiled validators and, per type, a .d.ts
// generated from the same OpenAPI definitions: the interface of each type
// lists exactly its properties and their types. This walks an object against
// those interfaces and reports every field a type does not declare, by path.
//
// Understood type forms (all the generator emits): string/number/boolean and
// literal unions (leaves), Array<T>, { [key: string]: T } (maps), named types
// (resolved through the file's imports, or in the same file), aliases
// (`export declare type X = string | number`), and empty interfaces, which
// the OpenAPI gives for free-form JSON (anything goes below them).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

type Type = { t: 'leaf' } | { t: 'open' } | { t: 'array'; item: Type } | { t: 'map'; value: Type } | { t: 'object'; props: Map<string, () => Type> } | { t: 'union'; members: Type[] };

interface DtsFile {
  path: string;
  text: string;
  imports: Map<string, string>;
}

const files = new Map<string, DtsFile>();
const types = new Map<string, Type>();

function load(path: string): DtsFile {
  let f = files.get(path);
  if (f) return f;
  const text = readFileSync(path, 'utf8');
  const imports = new Map<string, string>();
  for (const m of text.matchAll(/^import \{ ([^}]+) \} from "([^"]+)";$/gm)) {
    const spec = m[2]!;
    if (spec === '@kubernetes-models/base') continue;
    const target = spec.startsWith('.') ? join(dirname(path), `${spec}.d.ts`) : packageFile(spec, dirname(path));
    for (const name of m[1]!.split(',').map((s) => s.trim())) imports.set(name, target);
  }
  f = { path, text, imports };
  files.set(path, f);
  return f;
}

/**
 * `pkg/sub/path` as a .d.ts file. The packages' export maps do not expose their .d.ts files to require.resolve,
 * so the package is found by its entry point (index.js at its root) and the subpath joined to it.
 */
function packageFile(spec: string, from: string): string {
  const parts = spec.split('/');
  const n = spec.startsWith('@') ? 2 : 1;
  const pkg = parts.slice(0, n).join('/');
  return join(dirname(require.resolve(pkg, { paths: [from] })), ...parts.slice(n)) + '.d.ts';
}

/** The body of `export interface NAME ... {` (up to its closing brace at column 0), or undefined. */
function interfaceBody(f: DtsFile, name: string): string | undefined {
  const start = f.text.search(new RegExp(`^export interface ${name}\\b[^{]*\\{$`, 'm'));
  if (start < 0) return undefined;
  const open = f.text.indexOf('{\n', start) + 2;
  const end = f.text.indexOf('\n}\n', open);
  return f.text.slice(open, end + 1);
}

/** Splits the top level of a type expression at `sep` (outside <>, {}, and quotes). */
function splitTop(s: string, sep: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote = false;
  let cur = '';
  for (const ch of s) {
    if (ch === '"') quote = !quote;
    if (!quote) {
      if (ch === '<' || ch === '{' || ch === '(') depth++;
      if (ch === '>' || ch === '}' || ch === ')') depth--;
      if (depth === 0 && ch === sep) {
        parts.push(cur);
        cur = '';
        continue;
      }
    }
    cur += ch;
  }
  parts.push(cur);
  return parts.map((p) => p.trim()).filter(Boolean);
}

function parseType(f: DtsFile, expr: string): Type {
  const e = expr.trim();
  const union = splitTop(e, '|');
  if (union.length > 1) {
    const members = union.map((m) => parseType(f, m));
    return members.every((m) => m.t === 'leaf') ? { t: 'leaf' } : { t: 'union', members };
  }
  if (/^(string|number|boolean|null|"[^"]*"|-?[0-9.]+|true|false)$/.test(e)) return { t: 'leaf' };
  if (e === 'any' || e === 'unknown' || e === 'object') return { t: 'open' };
  const arr = /^Array<(.*)>$/s.exec(e);
  if (arr) return { t: 'array', item: parseType(f, arr[1]!) };
  const map = /^\{\s*\[key: string\]: (.*?);?\s*\}$/s.exec(e);
  if (map) return { t: 'map', value: parseType(f, map[1]!) };
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(e)) return named(f, e);
  throw new Error(`k8s-strict: a type form this checker does not know: ${e} (in ${f.path})`);
}

/** A named type: an interface or alias in this file (by local name or exported alias), else through an import. */
function named(f: DtsFile, name: string): Type {
  const key = `${f.path}#${name}`;
  const known = types.get(key);
  if (known) return known;
  const target = f.imports.get(name);
  if (target) {
    const t = named(load(target), name);
    types.set(key, t);
    return t;
  }
  const local = new RegExp(`export \\{ (\\w+) as ${name},`).exec(f.text)?.[1] ?? name;
  const alias = new RegExp(`^export declare type ${local} = (.*);$`, 'm').exec(f.text);
  if (alias) {
    const t = parseType(f, alias[1]!);
    types.set(key, t);
    return t;
  }
  const body = interfaceBody(f, local);
  if (body === undefined) throw new Error(`k8s-strict: no type ${name} in ${f.path}`);
  const props = new Map<string, () => Type>();
  const obj: Type = props.size === 0 && !/^ {4}"/m.test(body) ? { t: 'open' } : { t: 'object', props };
  types.set(key, obj); // before the properties: types refer to themselves (JSONSchemaProps)
  const decl = /^ {4}"([^"]+)"\??: /gm;
  let m: RegExpExecArray | null;
  while ((m = decl.exec(body))) {
    const from = m.index + m[0].length;
    // The type runs to the first `;` at depth 0 that ends a line.
    let depth = 0;
    let i = from;
    for (; i < body.length; i++) {
      const ch = body[i];
      if (ch === '{' || ch === '<') depth++;
      if (ch === '}' || ch === '>') depth--;
      if (ch === ';' && depth === 0 && body[i + 1] === '\n') break;
    }
    const expr = body.slice(from, i);
    let cached: Type | undefined;
    props.set(m[1]!, () => (cached ??= parseType(f, expr)));
  }
  return obj;
}

/** The .d.ts of a top-level kind (`apps/v1` Deployment -> kubernetes-models/apps/v1/Deployment.d.ts). */
function kindFile(apiVersion: string, kind: string): DtsFile {
  const dir = apiVersion.includes('/') ? apiVersion : `v1`;
  return load(packageFile(`kubernetes-models/${dir}/${kind}`, dirname(fileURLToPath(import.meta.url))));
}

function walk(value: unknown, type: Type, path: string, out: string[]): void {
  if (value === null || value === undefined) return;
  switch (type.t) {
    case 'leaf':
    case 'open':
      return;
    case 'array':
      if (Array.isArray(value)) value.forEach((v, i) => walk(v, type.item, `${path}[${i}]`, out));
      return;
    case 'map':
      if (typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(v, type.value, `${path}.${k}`, out);
      return;
    case 'union': {
      const pick = type.members.find((m) => (Array.isArray(value) ? m.t === 'array' : typeof value === 'object' ? m.t === 'object' || m.t === 'map' || m.t === 'open' : m.t === 'leaf'));
      if (pick) walk(value, pick, path, out);
      return;
    }
    case 'object':
      if (typeof value !== 'object' || Array.isArray(value)) return;
      for (const [k, v] of Object.entries(value)) {
        const p = type.props.get(k);
        if (!p) out.push(`${path ? `${path}.` : ''}${k}`);
        else walk(v, p(), path ? `${path}.${k}` : k, out);
      }
  }
}

/** Every field of a Kubernetes object its type does not declare, as paths (e.g. `spec.template.spec.containers[0].imagePullPolcy`). */
export function unknownFields(obj: { apiVersion: string; kind: string }): string[] {
  const f = kindFile(obj.apiVersion, obj.kind);
  const local = new RegExp(`export \\{ (\\w+) as \\w+, ${obj.kind} as `).exec(f.text)?.[1] ?? `I${obj.kind}`;
  const out: string[] = [];
  walk(obj, named(f, local), '', out);
  return out;
}
