// Label selectors in kubectl's syntax, parsed and matched in ONE place: the CLI
// checks `-l` with it before asking, and the hub filters lists and watches with
// it (`?labelSelector=`), so a large list is filtered where it is stored.
//   k=v  k==v  k!=v  k  !k  k in (a,b)  k notin (a,b)      comma = AND
// As Kubernetes: `k!=v` and `notin` also match objects without the key; an
// empty selector matches everything. A malformed selector is an 'invalid'
// MeshfedError naming the selector and what is wrong (the CLI makes it a usage
// error). Pure; bounded (MAX_SELECTOR_CHARS).
import { MeshfedError } from '../util/errors.js';
import { labelValueProblem, qualifiedNameProblem } from './meta.js';

export type Requirement = { key: string; op: 'exists' | 'not-exists' } | { key: string; op: 'in' | 'notin'; values: string[] };

/** Every requirement must hold (AND). */
export type LabelSelector = readonly Requirement[];

/** Longer selectors are refused: they come from URLs and flags. */
export const MAX_SELECTOR_CHARS = 4096;

export function parseSelector(text: string): LabelSelector {
  const bad = (why: string) => new MeshfedError('invalid', `label selector "${text.length > 80 ? text.slice(0, 80) + '...' : text}": ${why}`);
  if (text.length > MAX_SELECTOR_CHARS) throw bad(`longer than ${MAX_SELECTOR_CHARS} characters`);
  const out: Requirement[] = [];
  for (const part of splitTerms(text, bad)) {
    const term = part.trim();
    if (!term) {
      if (text.trim() === '') continue;
      throw bad('an empty requirement (two commas, or a comma at an end)');
    }
    out.push(parseTerm(term, bad));
  }
  return out;
}

/** Splits at commas outside parentheses. */
function splitTerms(text: string, bad: (why: string) => MeshfedError): string[] {
  const terms: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') {
      if (--depth < 0) throw bad('")" without "("');
    } else if (c === ',' && depth === 0) {
      terms.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) throw bad('"(" without ")"');
  terms.push(text.slice(start));
  return text.trim() === '' ? [] : terms;
}

function parseTerm(term: string, bad: (why: string) => MeshfedError): Requirement {
  const checkKey = (k: string): string => {
    const p = qualifiedNameProblem(k);
    if (p) throw bad(`key "${k}": ${p}`);
    return k;
  };
  const checkValue = (v: string): string => {
    const p = labelValueProblem(v);
    if (p) throw bad(`value "${v}": ${p}`);
    return v;
  };
  const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(term);
  if (set) {
    const values = set[3]!.split(',').map((v) => v.trim());
    if (values.length === 1 && values[0] === '') throw bad(`"${term}": the set of values is empty`);
    return { key: checkKey(set[1]!), op: set[2] as 'in' | 'notin', values: values.map(checkValue) };
  }
  const eq = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term);
  if (eq) return { key: checkKey(eq[1]!), op: eq[2] === '!=' ? 'notin' : 'in', values: [checkValue(eq[3]!)] };
  if (term.startsWith('!')) return { key: checkKey(term.slice(1).trim()), op: 'not-exists' };
  if (/^\S+$/.test(term) && !/[=!()]/.test(term)) return { key: checkKey(term), op: 'exists' };
  throw bad(`"${term}" is not k=v, k!=v, k, !k, "k in (a,b)" or "k notin (a,b)"`);
}

export function labelsMatch(sel: LabelSelector, labels: Readonly<Record<string, string>> | undefined): boolean {
  const l = labels ?? {};
  return sel.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    switch (r.op) {
      case 'exists':
        return has;
      case 'not-exists':
        return !has;
      case 'in':
        return has && r.values.includes(l[r.key]!);
      case 'notin':
        return !has || !r.values.includes(l[r.key]!);
    }
  });
}
