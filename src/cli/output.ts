// How the CLI prints: tables for people, JSON or YAML for machines, and
// kind/name lines for scripts. A list is one `kind: List` document (listOf).
import { stringify } from 'yaml';
import { API_VERSION } from '../api/index.js';
import { MeshfedError } from '../util/errors.js';

export type OutputFormat = 'table' | 'json' | 'yaml' | 'wide' | 'name';

/** `-o`; `name` (kind/name per line) only where the command lists objects (`withName`; get also takes jsonpath=, src/cli/get.ts). */
export function parseFormat(v: string | undefined, withName = false): OutputFormat {
  const f = (v ?? 'table').toLowerCase();
  if (f === 'table' || f === 'json' || f === 'yaml' || f === 'wide' || (withName && f === 'name')) return f;
  throw new MeshfedError('usage', `-o: unknown output format "${v}" (table, wide, json, yaml${withName ? ', name, jsonpath=TEMPLATE' : ''})`);
}

/**
 * Several objects as one document, as kubectl prints them: `kind: List` with
 * `items`, which `meshfed apply -f` takes back (src/api/parse.ts flattens it).
 */
export function listOf<T>(items: T[]): { apiVersion: string; kind: 'List'; items: T[] } {
  return { apiVersion: API_VERSION, kind: 'List', items };
}

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

export function print(data: unknown, format: OutputFormat, asTable: () => string): void {
  if (format === 'json') process.stdout.write(JSON.stringify(data, null, 2) + '\n');
  else if (format === 'yaml') process.stdout.write(stringify(data));
  else process.stdout.write(asTable());
}

export function age(iso: string | undefined): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}
