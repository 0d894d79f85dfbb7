// One definition per kind: its schema yields the TypeScript type (Static), the
// validator (errors name the field path) and the JSON Schema that becomes the
// CRD's openAPIV3Schema. Kind-specific checks that JSON Schema cannot express
// live beside it in `validateObject`. Schema errors are told in words
// (schemaError): a pattern by its schema's `patternMessage`, never the regular
// expression; an unknown field with the nearest allowed one ("did you mean").
import { Type, type Static, type TObject, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import { API_VERSION, metaErrors, ObjectMeta } from './meta.js';
import { closest } from '../util/suggest.js';

export interface FieldError {
  /** JSON pointer into the object, e.g. /spec/zones/0 */
  path: string;
  message: string;
}

// Method syntax on purpose: a KindDef of one kind must be usable where any
// KindDef is expected (registries, plugin lists), which needs bivariance here.
export interface Column<O> {
  header: string;
  value(o: O): string;
}

export interface KindOptions<K extends string, S extends TObject, St extends TSchema> {
  kind: K;
  plural: string;
  shortNames?: string[];
  /** Namespaced objects carry metadata.namespace. */
  namespaced: boolean;
  /** Discovered kinds are reported by agents and read-only through the API. */
  discovered: boolean;
  spec: S;
  status: St;
  columns: Column<KindObject<K, S, St>>[];
  validateObject?(o: KindObject<K, S, St>): FieldError[];
}

export interface KindObject<K extends string, S extends TSchema, St extends TSchema> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: ObjectMeta;
  spec: Static<S>;
  status?: Static<St>;
}

export interface KindDef<K extends string = string, S extends TObject = TObject, St extends TSchema = TSchema> extends KindOptions<K, S, St> {
  /** Schema of the whole object (envelope, spec, status). */
  schema: TObject;
  /** Type carrier only: `typeof XKind.$object` is the object type. */
  $object: KindObject<K, S, St>;
  /**
   * Applies schema defaults and validates. Returns the defaulted object, or the
   * list of field errors; never a half-valid object.
   */
  check(input: unknown): { ok: true; value: KindObject<K, S, St> } | { ok: false; errors: FieldError[] };
}

export function defineKind<K extends string, S extends TObject, St extends TSchema>(opts: KindOptions<K, S, St>): KindDef<K, S, St> {
  const schema = Type.Object(
    {
      apiVersion: Type.Literal(API_VERSION),
      kind: Type.Literal(opts.kind),
      metadata: ObjectMeta,
      spec: opts.spec,
      status: Type.Optional(opts.status),
    },
    { additionalProperties: false },
  );
  const compiled = TypeCompiler.Compile(schema);
  return {
    ...opts,
    schema,
    $object: undefined as unknown as KindObject<K, S, St>,
    check(input) {
      // Defaults are applied to a copy so a rejected input is never mutated.
      const value = Value.Default(schema, structuredClone(input)) as unknown;
      const errors: FieldError[] = [];
      for (const e of compiled.Errors(value)) {
        errors.push(schemaError(e));
        if (errors.length >= 20) break;
      }
      if (errors.length > 0) return { ok: false, errors: dedupe(errors) };
      const obj = value as KindObject<K, S, St>;
      errors.push(...metaErrors(obj.metadata));
      if (opts.namespaced && !obj.metadata.namespace) {
        errors.push({ path: '/metadata/namespace', message: `${opts.kind} is namespaced: metadata.namespace is required` });
      }
      errors.push(...(opts.validateObject?.(obj) ?? []));
      return errors.length > 0 ? { ok: false, errors } : { ok: true, value: obj };
    },
  };
}

// TypeBox reports a union failure once per branch; keep the first per path.
function dedupe(errors: FieldError[]): FieldError[] {
  const seen = new Set<string>();
  return errors.filter((e) => (seen.has(e.path) ? false : (seen.add(e.path), true)));
}

/** "/spec/routes/0/split" -> "spec.routes[0].split", as Kubernetes names fields. */
export function fieldName(path: string): string {
  const parts = path
    .split('/')
    .filter((p) => p !== '')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  return parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '') || '(object)';
}

/**
 * One schema error in words: a pattern failure says what the value must be
 * (the schema's `patternMessage`), an unknown field names the nearest allowed
 * field of that object, or lists them when none is near.
 */
export function schemaError(e: ValueError): FieldError {
  const path = e.path || '/';
  const schema = e.schema as { patternMessage?: unknown; properties?: Record<string, unknown> };
  if (e.type === ValueErrorType.StringPattern && typeof schema.patternMessage === 'string') {
    return { path, message: `${JSON.stringify(e.value)} ${schema.patternMessage}` };
  }
  if (e.type === ValueErrorType.ObjectAdditionalProperties) {
    const field = (path.split('/').pop() ?? '').replace(/~1/g, '/').replace(/~0/g, '~');
    const allowed = Object.keys(schema.properties ?? {});
    const near = closest(field, allowed);
    const hint = near ? `did you mean "${near}"?` : allowed.length ? `allowed: ${allowed.join(', ')}` : 'this object has no fields';
    return { path, message: `unknown field "${field}"; ${hint}` };
  }
  return { path, message: e.message };
}
