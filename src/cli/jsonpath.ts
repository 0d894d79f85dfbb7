// `-o jsonpath=TEMPLATE`: kubectl's JSONPath subset, bounded. A template is
// text with {expressions}:
//   {.a.b}  {.items[*].metadata.name}  {.spec.x[0].y}  {.a['k.with.dots']}
//   {range .items[*]}...{end}   {"\n"} {"\t"} (string literals)   {@} (the current value)
// Several results of one expression print space-separated (as kubectl); a
// string prints bare, anything else as JSON. A missing field prints nothing
// (kubectl --allow-missing-template-keys, its default). Anything outside the
// subset (filters, slices, recursive descent) is a usage error naming the
// template and what is wrong. Pure.
import { MeshfedError } from '../util/errors.js';

type Step = { field: string } | { index: number } | { all: true };
type Node = { text: string } | { path: Step[] } | { range: Step[]; body: Node[] };

/** Templates longer than this are refused (a flag, not a program). */
const MAX_TEMPLATE_CHARS = 2048;

export interface JsonPathTemplate {
  source: string;
  nodes: Node[];
}

export function parseJsonPath(source: string): JsonPathTemplate {
  const bad = (why: string) => new MeshfedError('usage', `-o jsonpath: template "${source}": ${why}`);
  if (source.length > MAX_TEMPLATE_CHARS) throw bad(`longer than ${MAX_TEMPLATE_CHARS} characters`);
  // kubectl accepts a bare path without braces too (`jsonpath=.metadata.name`).
  const text = source.includes('{') ? source : `{${source}}`;
  const stack: Node[][] = [[]];
  const ranges: Step[][] = [];
  let i = 0;
  while (i < text.length) {
    const open = text.indexOf('{', i);
    if (open < 0) {
      stack.at(-1)!.push({ text: text.slice(i) });
      break;
    }
    if (open > i) stack.at(-1)!.push({ text: text.slice(i, open) });
    const close = closingBrace(text, open);
    if (close < 0) throw bad('"{" without "}"');
    const expr = text.slice(open + 1, close).trim();
    i = close + 1;
    if (expr === 'end') {
      const body = stack.pop();
      const path = ranges.pop();
      if (!body || !path || stack.length === 0) throw bad('{end} without {range}');
      stack.at(-1)!.push({ range: path, body });
    } else if (expr.startsWith('range ')) {
      ranges.push(parsePath(expr.slice(6).trim(), bad));
      stack.push([]);
    } else if (expr.startsWith('"')) {
      stack.at(-1)!.push({ text: stringLiteral(expr, bad) });
    } else stack.at(-1)!.push({ path: parsePath(expr, bad) });
  }
  if (ranges.length > 0) throw bad('{range} without {end}');
  return { source, nodes: stack[0]! };
}

/** The index of the "}" closing the "{" at `open` (string literals may hold braces). */
function closingBrace(text: string, open: number): number {
  let inString = false;
  for (let j = open + 1; j < text.length; j++) {
    const c = text[j];
    if (inString) {
      if (c === '\\') j++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '}') return j;
  }
  return -1;
}

function stringLiteral(expr: string, bad: (why: string) => MeshfedError): string {
  try {
    const v: unknown = JSON.parse(expr);
    if (typeof v === 'string') return v;
  } catch {
    // named below
  }
  throw bad(`${expr} is not a string literal`);
}

function parsePath(expr: string, bad: (why: string) => MeshfedError): Step[] {
  let p = expr;
  if (p.startsWith('$')) p = p.slice(1);
  if (p === '@' || p === '') return [];
  if (p.startsWith('@')) p = p.slice(1);
  if (!p.startsWith('.') && !p.startsWith('[')) throw bad(`"${expr}" does not start with "." (e.g. {.metadata.name})`);
  const steps: Step[] = [];
  const re = /\.([A-Za-z0-9_-]+)|\[\*\]|\[([0-9]+)\]|\['([^']*)'\]|\.\*|\["([^"]*)"\]/y;
  let at = 0;
  while (at < p.length) {
    re.lastIndex = at;
    const m = re.exec(p);
    if (!m) throw bad(`"${expr}": cannot read "${p.slice(at)}" (supported: .field, [N], [*], ['key'])`);
    if (m[1] !== undefined) steps.push({ field: m[1] });
    else if (m[2] !== undefined) steps.push({ index: Number(m[2]) });
    else if (m[3] !== undefined) steps.push({ field: m[3] });
    else if (m[4] !== undefined) steps.push({ field: m[4] });
    else steps.push({ all: true });
    at = re.lastIndex;
  }
  return steps;
}

/** Every value the path reaches from `root` (none when a field is missing). */
function evaluate(root: unknown, steps: Step[]): unknown[] {
  let values: unknown[] = [root];
  for (const s of steps) {
    const next: unknown[] = [];
    for (const v of values) {
      if ('all' in s) {
        if (Array.isArray(v)) next.push(...(v as unknown[]));
        else if (v !== null && typeof v === 'object') next.push(...Object.values(v));
      } else if ('index' in s) {
        if (Array.isArray(v) && s.index < v.length) next.push(v[s.index]);
      } else if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.prototype.hasOwnProperty.call(v, s.field)) {
        next.push((v as Record<string, unknown>)[s.field]);
      }
    }
    values = next;
  }
  return values;
}

function show(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function render(nodes: Node[], current: unknown): string {
  let out = '';
  for (const n of nodes) {
    if ('text' in n) out += n.text;
    else if ('path' in n) out += evaluate(current, n.path).map(show).join(' ');
    else for (const item of evaluate(current, n.range)) out += render(n.body, item);
  }
  return out;
}

/** The template applied to `data` (an object, or a `kind: List`). */
export function executeJsonPath(t: JsonPathTemplate, data: unknown): string {
  return render(t.nodes, data);
}
