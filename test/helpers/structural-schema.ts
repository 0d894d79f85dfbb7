// A checker of Kubernetes' rules for a CustomResourceDefinition's
// openAPIV3Schema (apiextensions.k8s.io/v1), written after the Kubernetes
// documentation ("Specifying a structural schema", "Defaulting", "Pruning")
// and the API server's CRD validation. The kubernetes-models validator checks
// a CRD's shape but not these rules (it even accepts unknown schema keys such
// as `const`, which a real API server drops or refuses), so tests use both.
// Rules checked, each reported with its JSON path:
//   - only JSONSchemaProps keys (no `const`, `$id`, `examples`, ...); never
//     `$ref`, `$schema`, `definitions`, `dependencies`, `id`, `patternProperties`,
//     `additionalItems`; `uniqueItems` not true; `additionalProperties` not false;
//     `x-kubernetes-preserve-unknown-fields` only true; `items` one schema
//   - every node has a type (object, array, string, integer, number, boolean)
//     except with x-kubernetes-int-or-string or x-kubernetes-preserve-unknown-fields
//   - properties and additionalProperties are exclusive
//   - inside allOf/anyOf/oneOf/not: no type, description, default,
//     additionalProperties or nullable (except the two int-or-string patterns),
//     and every field or item named there is also specified outside
//   - metadata: at the root only, and only restrictions on name/generateName
//   - defaults: valid against their node and pruned (no field the schema
//     does not specify), never inside metadata
// Invariant: a schema the real server would refuse for one of these reasons
// yields at least one problem; an empty list means none of these was found.

type Node = Record<string, unknown>;

const SCHEMA_KEYS = new Set([
  'description',
  'type',
  'format',
  'title',
  'default',
  'maximum',
  'exclusiveMaximum',
  'minimum',
  'exclusiveMinimum',
  'maxLength',
  'minLength',
  'pattern',
  'maxItems',
  'minItems',
  'uniqueItems',
  'multipleOf',
  'enum',
  'maxProperties',
  'minProperties',
  'required',
  'items',
  'allOf',
  'oneOf',
  'anyOf',
  'not',
  'properties',
  'additionalProperties',
  'nullable',
  'example',
  'externalDocs',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-embedded-resource',
  'x-kubernetes-int-or-string',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-list-type',
  'x-kubernetes-map-type',
  'x-kubernetes-validations',
]);
const FORBIDDEN = ['$ref', '$schema', 'definitions', 'dependencies', 'id', 'patternProperties', 'additionalItems'];
const TYPES = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean']);
const JUNCTORS = ['allOf', 'anyOf', 'oneOf', 'not'] as const;
/** What a value validation inside a junctor may not set. */
const NOT_IN_JUNCTOR = ['type', 'description', 'default', 'additionalProperties', 'nullable'];

function isNode(v: unknown): v is Node {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Every problem of one CRD version's openAPIV3Schema, each naming its path. */
export function structuralProblems(root: unknown): string[] {
  const out: string[] = [];
  if (!isNode(root)) return ['openAPIV3Schema: not a schema object'];
  if (root.type !== 'object') out.push(`openAPIV3Schema.type: must be "object", is ${JSON.stringify(root.type)}`);
  walk(root, 'openAPIV3Schema', out, { inJunctor: false, isRoot: true });
  const meta = isNode(root.properties) ? root.properties.metadata : undefined;
  if (meta !== undefined) metadataProblems(meta, 'openAPIV3Schema.properties.metadata', out);
  return out;
}

interface Where {
  inJunctor: boolean;
  isRoot: boolean;
}

function walk(n: Node, path: string, out: string[], where: Where): void {
  for (const k of Object.keys(n)) {
    if (FORBIDDEN.includes(k)) out.push(`${path}.${k}: not allowed in a CRD schema`);
    else if (!SCHEMA_KEYS.has(k)) out.push(`${path}.${k}: not a field of JSONSchemaProps (the API server drops or refuses it)`);
  }
  if (n.uniqueItems === true) out.push(`${path}.uniqueItems: cannot be true`);
  if (n.additionalProperties === false) out.push(`${path}.additionalProperties: cannot be false (unknown fields are pruned instead)`);
  if ('x-kubernetes-preserve-unknown-fields' in n && n['x-kubernetes-preserve-unknown-fields'] !== true) out.push(`${path}.x-kubernetes-preserve-unknown-fields: must be true or absent`);
  if (n.properties !== undefined && n.additionalProperties !== undefined) out.push(`${path}: properties and additionalProperties are mutually exclusive`);
  if (Array.isArray(n.items)) out.push(`${path}.items: must be one schema, not a list`);
  if (n.type !== undefined && (typeof n.type !== 'string' || !TYPES.has(n.type))) out.push(`${path}.type: ${JSON.stringify(n.type)} is not a type`);
  const intOrString = n['x-kubernetes-int-or-string'] === true;
  if (!where.inJunctor && n.type === undefined && !intOrString && n['x-kubernetes-preserve-unknown-fields'] !== true) out.push(`${path}: no type`);
  if (intOrString && n.type !== undefined) out.push(`${path}: x-kubernetes-int-or-string takes no type`);
  if (where.inJunctor) {
    for (const k of NOT_IN_JUNCTOR) if (k in n) out.push(`${path}.${k}: not allowed inside allOf/anyOf/oneOf/not`);
  }
  if (n.default !== undefined && !where.inJunctor) for (const p of valueProblems(n, n.default, `${path}.default`)) out.push(p);

  if (isNode(n.properties)) {
    for (const [k, v] of Object.entries(n.properties)) {
      if (!isNode(v)) out.push(`${path}.properties.${k}: not a schema object`);
      else if (!(where.isRoot && k === 'metadata')) walk(v, `${path}.properties.${k}`, out, { ...where, isRoot: false });
    }
  } else if (n.properties !== undefined) out.push(`${path}.properties: not an object`);
  if (isNode(n.additionalProperties)) walk(n.additionalProperties, `${path}.additionalProperties`, out, { ...where, isRoot: false });
  if (isNode(n.items)) walk(n.items, `${path}.items`, out, { ...where, isRoot: false });

  for (const j of JUNCTORS) {
    const v = n[j];
    if (v === undefined) continue;
    const alts = j === 'not' ? [v] : Array.isArray(v) ? v : [];
    if (j !== 'not' && !Array.isArray(v)) out.push(`${path}.${j}: must be a list`);
    alts.forEach((a, i) => {
      const ap = j === 'not' ? `${path}.not` : `${path}.${j}[${i}]`;
      if (!isNode(a)) return void out.push(`${ap}: not a schema object`);
      // The int-or-string patterns: anyOf/allOf of {type: integer} and {type: string}, beside x-kubernetes-int-or-string.
      if (intOrString && (j === 'anyOf' || j === 'allOf') && Object.keys(a).length === 1 && (a.type === 'integer' || a.type === 'string')) return;
      walk(a, ap, out, { inJunctor: true, isRoot: false });
      specifiedOutside(n, a, ap, out);
    });
  }
}

/** A field or item named inside a junctor must be specified outside it too. */
function specifiedOutside(outer: Node, inner: Node, path: string, out: string[]): void {
  if (isNode(inner.properties)) {
    const known = isNode(outer.properties) ? outer.properties : {};
    for (const [k, v] of Object.entries(inner.properties)) {
      if (!(k in known)) out.push(`${path}.properties.${k}: specified inside a junctor but not outside it`);
      else if (isNode(v) && isNode(known[k])) specifiedOutside(known[k], v, `${path}.properties.${k}`, out);
    }
  }
  if (isNode(inner.items)) {
    if (!isNode(outer.items)) out.push(`${path}.items: specified inside a junctor but not outside it`);
    else specifiedOutside(outer.items, inner.items, `${path}.items`, out);
  }
  if (isNode(inner.additionalProperties) && !isNode(outer.additionalProperties)) out.push(`${path}.additionalProperties: specified inside a junctor but not outside it`);
}

/** metadata: type object at most, and restrictions on name and generateName only (type string, value validations). */
function metadataProblems(meta: unknown, path: string, out: string[]): void {
  if (!isNode(meta)) return void out.push(`${path}: not a schema object`);
  for (const k of Object.keys(meta)) {
    if (k !== 'type' && k !== 'properties') out.push(`${path}.${k}: metadata allows only restrictions on name and generateName`);
  }
  if (meta.type !== undefined && meta.type !== 'object') out.push(`${path}.type: must be "object"`);
  if (isNode(meta.properties)) {
    for (const [k, v] of Object.entries(meta.properties)) {
      if (k !== 'name' && k !== 'generateName') {
        out.push(`${path}.properties.${k}: metadata allows only restrictions on name and generateName`);
        continue;
      }
      if (!isNode(v)) continue;
      for (const f of Object.keys(v)) {
        if (f === 'default') out.push(`${path}.properties.${k}.default: no defaults in metadata`);
        else if (!['type', 'pattern', 'maxLength', 'minLength', 'enum', 'format', 'description'].includes(f)) out.push(`${path}.properties.${k}.${f}: not a restriction metadata allows`);
      }
      if (v.type !== undefined && v.type !== 'string') out.push(`${path}.properties.${k}.type: must be "string"`);
    }
  }
}

/** A value (a default) against a node: type, enum, bounds, pattern, and pruning (every field specified). */
export function valueProblems(n: Node, v: unknown, path: string): string[] {
  const out: string[] = [];
  const check = (s: Node, x: unknown, p: string): void => {
    if (x === null) {
      if (s.nullable !== true) out.push(`${p}: null, and the node is not nullable`);
      return;
    }
    if (s['x-kubernetes-int-or-string'] === true) {
      if (typeof x !== 'string' && !Number.isInteger(x)) out.push(`${p}: ${JSON.stringify(x)} is neither an integer nor a string`);
      return;
    }
    const t = s.type;
    const actual = Array.isArray(x) ? 'array' : Number.isInteger(x) ? 'integer' : typeof x;
    if (t !== undefined && !(t === actual || (t === 'number' && actual === 'integer') || (t === 'object' && actual === 'object'))) out.push(`${p}: ${JSON.stringify(x)} is not of type ${String(t)}`);
    if (Array.isArray(s.enum) && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(x))) out.push(`${p}: ${JSON.stringify(x)} is not one of ${JSON.stringify(s.enum)}`);
    if (typeof x === 'string') {
      if (typeof s.pattern === 'string' && !new RegExp(s.pattern).test(x)) out.push(`${p}: ${JSON.stringify(x)} does not match ${s.pattern}`);
      if (typeof s.maxLength === 'number' && x.length > s.maxLength) out.push(`${p}: longer than ${s.maxLength}`);
      if (typeof s.minLength === 'number' && x.length < s.minLength) out.push(`${p}: shorter than ${s.minLength}`);
    }
    if (typeof x === 'number') {
      if (typeof s.maximum === 'number' && x > s.maximum) out.push(`${p}: above ${s.maximum}`);
      if (typeof s.minimum === 'number' && x < s.minimum) out.push(`${p}: below ${s.minimum}`);
    }
    if (Array.isArray(x) && isNode(s.items)) x.forEach((item, i) => check(s.items as Node, item, `${p}[${i}]`));
    if (isNode(x)) {
      const props = isNode(s.properties) ? s.properties : undefined;
      for (const [k, val] of Object.entries(x)) {
        if (props && isNode(props[k])) check(props[k], val, `${p}.${k}`);
        else if (isNode(s.additionalProperties)) check(s.additionalProperties, val, `${p}.${k}`);
        else if (s['x-kubernetes-preserve-unknown-fields'] !== true) out.push(`${p}.${k}: not specified by the schema (a real server prunes it: the default is not pruned-valid)`);
      }
      if (Array.isArray(s.required)) for (const r of s.required) if (!(String(r) in x)) out.push(`${p}: required field ${String(r)} missing`);
    }
  };
  check(n, v, path);
  return out;
}
