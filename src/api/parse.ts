// Parses YAML or JSON input (several documents per file) into validated API objects.
// Either every document is valid and the whole list is returned, or nothing is:
// callers can never apply half a file.
// Bounded, so no input costs more than its size: at most MAX_DOCUMENTS YAML
// documents and MAX_OBJECTS objects, nesting at most MAX_DEPTH levels (checked
// on the raw text before any parser recurses, and on the parsed values), and
// YAML aliases at most MAX_ALIAS_COUNT (an alias bomb) and all defined. JSON
// (text starting with { or [) is read by JSON.parse, not the YAML parser.
// Each refusal is a 400 naming the bound.
import { parseAllDocuments } from 'yaml';
import { API_VERSION, type ApiObject } from './meta.js';
import type { FieldError } from './kind.js';
import type { KindRegistry } from './registry.js';
import { errorMessage, MeshfedError } from '../util/errors.js';
import { checkDepth, MAX_DEPTH } from '../util/http-body.js';

/** YAML documents in one input at most. */
export const MAX_DOCUMENTS = 1000;
/** Objects in one input (one request) at most. */
export const MAX_OBJECTS = 1000;
/** Alias references resolved per document at most (yaml's guard against alias bombs). */
export const MAX_ALIAS_COUNT = 100;

export interface DocumentError {
  /** 0-based document index in the input */
  document: number;
  source: string;
  /** what the document says it is, when that much could be read */
  object?: string;
  errors: FieldError[];
}

/** Input with invalid documents; `problems` names document, object and field of each. */
export class InvalidInputError extends MeshfedError {
  constructor(readonly problems: DocumentError[]) {
    super('invalid', formatProblems(problems), { reason: 'Invalid', details: problems });
  }
}

export function formatProblems(problems: DocumentError[]): string {
  return problems
    .map((p) => {
      const what = p.object ? ` (${p.object})` : '';
      const lines = p.errors.map((e) => `  ${e.path}: ${e.message}`);
      return `${p.source} document ${p.document + 1}${what}:\n${lines.join('\n')}`;
    })
    .join('\n');
}

/** Splits text into raw documents (YAML is a superset of JSON; a JSON array or List is flattened). */
export function parseDocuments(text: string, source = 'input'): unknown[] {
  checkTextBounds(text, source);
  const json = parseJson(text, source);
  const values: unknown[] = json !== undefined ? [json] : parseYaml(text, source);
  const out: unknown[] = [];
  for (const value of values) {
    if (value === null || value === undefined) continue; // empty document, e.g. a trailing ---
    if (Array.isArray(value)) out.push(...(value as unknown[]));
    else if (isList(value)) out.push(...value.items);
    else out.push(value);
    if (out.length > MAX_OBJECTS) throw bound(source, `more than ${MAX_OBJECTS} objects in one request: split it`, 'TooManyObjects', { maxObjects: MAX_OBJECTS });
  }
  return out;
}

function bound(source: string, message: string, reason: string, details: Record<string, number>): MeshfedError {
  return new MeshfedError('invalid', `${source}: ${message}`, { reason, details });
}

/**
 * Cheap scans of the raw text, before a parser runs: document separators and
 * the nesting of flow collections ([ and { outside quoted strings). Parsers
 * recurse per level, so a deep input is refused here, not after seconds.
 */
function checkTextBounds(text: string, source: string): void {
  let documents = 1;
  for (let i = text.indexOf('---'); i >= 0; i = text.indexOf('---', i + 3)) {
    if (i === 0 || text.charCodeAt(i - 1) === 10) documents++;
    if (documents > MAX_DOCUMENTS) throw bound(source, `more than ${MAX_DOCUMENTS} YAML documents in one request`, 'TooManyDocuments', { maxDocuments: MAX_DOCUMENTS });
  }
  let depth = 0;
  let topLevelObjects = 0; // objects directly in a top-level [ ]: a JSON array of objects, counted before JSON.parse
  let quote = 0; // the open quote character, 0 outside a string
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (quote) {
      if (c === 92 /* \ */ && quote === 34) i++;
      else if (c === quote) quote = 0;
    } else if (c === 34 /* " */) quote = c;
    else if (c === 39 /* ' */ && (i === 0 || /[\s[{,:]/.test(text[i - 1]!)))
      quote = c; // a YAML quoted scalar, not don't
    else if (c === 91 /* [ */ || c === 123 /* { */) {
      if (c === 123 && depth === 1 && text.charCodeAt(0) === 91 && ++topLevelObjects > MAX_OBJECTS) {
        throw bound(source, `more than ${MAX_OBJECTS} objects in one request: split it`, 'TooManyObjects', { maxObjects: MAX_OBJECTS });
      }
      if (++depth > MAX_DEPTH) throw bound(source, `nested deeper than ${MAX_DEPTH} levels`, 'TooDeep', { maxDepth: MAX_DEPTH });
    } else if (c === 93 /* ] */ || c === 125 /* } */) depth = Math.max(0, depth - 1);
  }
}

/** JSON text read with JSON.parse (fast, no recursion cost beyond the bounds); undefined when not JSON. */
function parseJson(text: string, source: string): unknown {
  const first = text.trimStart()[0];
  if (first !== '{' && first !== '[') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined; // YAML flow syntax, or broken JSON: the YAML parser names the problem
  }
  depthOrProblem(value, source, 0);
  return value;
}

function parseYaml(text: string, source: string): unknown[] {
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const problems: DocumentError[] = [];
  const values: unknown[] = [];
  (Array.isArray(docs) ? docs : [docs]).forEach((doc, i) => {
    if (doc.errors.length > 0) {
      problems.push({ document: i, source, errors: doc.errors.map((e) => ({ path: '/', message: `malformed YAML: ${e.message}` })) });
      return;
    }
    let value: unknown;
    try {
      // Throws a ReferenceError for an undefined alias or more than maxAliasCount alias expansions.
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      problems.push({ document: i, source, errors: [{ path: '/', message: `malformed YAML: ${yamlProblem(err)}` }] });
      return;
    }
    depthOrProblem(value, source, i);
    values.push(value);
  });
  if (problems.length > 0) throw new InvalidInputError(problems);
  return values;
}

function yamlProblem(err: unknown): string {
  const m = errorMessage(err);
  if (/excessive alias count/i.test(m)) return `too many alias expansions (at most ${MAX_ALIAS_COUNT} per document): ${m}`;
  return m;
}

function depthOrProblem(value: unknown, source: string, document: number): void {
  // A MeshfedError (400, reason TooDeep) naming the bound.
  checkDepth(value, `${source} document ${document + 1}`);
}

function isList(v: unknown): v is { items: unknown[] } {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'List' && Array.isArray((v as { items?: unknown }).items);
}

/** Validates raw documents against their kinds; all or nothing. */
export function validateDocuments(kinds: KindRegistry, raw: unknown[], source = 'input'): ApiObject[] {
  const problems: DocumentError[] = [];
  const objects: ApiObject[] = [];
  raw.forEach((doc, i) => {
    const r = validateObject(kinds, doc);
    if (r.ok) objects.push(r.value);
    else problems.push({ document: i, source, object: r.object, errors: r.errors });
  });
  if (problems.length > 0) throw new InvalidInputError(problems);
  return objects;
}

export function validateObject(kinds: KindRegistry, doc: unknown): { ok: true; value: ApiObject } | { ok: false; object?: string; errors: FieldError[] } {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return { ok: false, errors: [{ path: '/', message: 'expected an object with apiVersion, kind, metadata and spec' }] };
  }
  const d = doc as Record<string, unknown>;
  const name = (d.metadata as { name?: unknown } | undefined)?.name;
  const object = typeof d.kind === 'string' ? `${d.kind}${typeof name === 'string' ? ' ' + name : ''}` : undefined;
  if (d.apiVersion !== API_VERSION) {
    return { ok: false, object, errors: [{ path: '/apiVersion', message: `expected "${API_VERSION}", got ${JSON.stringify(d.apiVersion)}` }] };
  }
  if (typeof d.kind !== 'string') return { ok: false, object, errors: [{ path: '/kind', message: 'kind is required' }] };
  const def = kinds.find(d.kind);
  if (!def || def.kind !== d.kind) {
    return { ok: false, object, errors: [{ path: '/kind', message: `unknown kind "${d.kind}"; known kinds: ${kinds.names().join(', ')}` }] };
  }
  const r = def.check(doc);
  return r.ok ? { ok: true, value: r.value as ApiObject } : { ok: false, object, errors: r.errors };
}

export function parseAndValidate(kinds: KindRegistry, text: string, source = 'input'): ApiObject[] {
  return validateDocuments(kinds, parseDocuments(text, source), source);
}

/** Documents validated per slice by the async variants: the event loop runs between slices. */
const SLICE = 100;

/** validateDocuments in slices of SLICE documents, yielding to the event loop between them (a server's request path). */
export async function validateDocumentsSliced(kinds: KindRegistry, raw: unknown[], source = 'input'): Promise<ApiObject[]> {
  const problems: DocumentError[] = [];
  const objects: ApiObject[] = [];
  for (let start = 0; start < raw.length; start += SLICE) {
    if (start > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    raw.slice(start, start + SLICE).forEach((doc, j) => {
      const r = validateObject(kinds, doc);
      if (r.ok) objects.push(r.value);
      else problems.push({ document: start + j, source, object: r.object, errors: r.errors });
    });
  }
  if (problems.length > 0) throw new InvalidInputError(problems);
  return objects;
}

/** parseAndValidate with validation in slices (parseDocuments is bounded by the input's size). */
export async function parseAndValidateSliced(kinds: KindRegistry, text: string, source = 'input'): Promise<ApiObject[]> {
  return validateDocumentsSliced(kinds, parseDocuments(text, source), source);
}
