// Parses YAML or JSON input (several documents per file) into validated API objects.
// Either every document is valid and the whole list is returned, or nothing is:
// callers can never apply half a file.
import { parseAllDocuments } from 'yaml';
import { API_VERSION, type ApiObject } from './meta.js';
import type { FieldError } from './kind.js';
import type { KindRegistry } from './registry.js';
import { MeshfedError } from '../util/errors.js';

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
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const out: unknown[] = [];
  const problems: DocumentError[] = [];
  (Array.isArray(docs) ? docs : [docs]).forEach((doc, i) => {
    if (doc.errors.length > 0) {
      problems.push({ document: i, source, errors: doc.errors.map((e) => ({ path: '/', message: `malformed YAML: ${e.message}` })) });
      return;
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) return; // empty document, e.g. a trailing ---
    if (Array.isArray(value)) out.push(...value);
    else if (isList(value)) out.push(...value.items);
    else out.push(value);
  });
  if (problems.length > 0) throw new InvalidInputError(problems);
  return out;
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
