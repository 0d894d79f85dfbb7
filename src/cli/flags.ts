// Flag parsers and the options several commands share (--hub, --agent, -o).
// Durations parse one way everywhere (durationFlag): 30m, 1h, 7d.
// A parser names the flag in its error, and its error carries the exit code
// docs/cli.md gives: a malformed number or duration is a usage error (2); an
// address or a file a flag names that cannot be used fails the command (1).
import { readFile } from 'node:fs/promises';
import { Option } from 'commander';
import { parseHostPort, type HostPort } from '../util/address.js';
import { errorMessage, MeshfedError } from '../util/errors.js';

// No defaults here: an unset --hub/--agent falls back to the env, then the
// config context, then the built-in address (src/cli/http.ts target()).
export function hubOption(): Option {
  return new Option(
    '--hub <url|host:port>',
    "hub API URL, or HOST:PORT for https://; several hub replicas comma-separated, tried in turn (default: env MESHFED_HUB, the context's hub, https://127.0.0.1:7400)",
  );
}

export function agentOption(): Option {
  return new Option('--agent <url|host:port>', "this cluster's agent API URL, or HOST:PORT for http:// (default: env MESHFED_AGENT, the context's agent, http://127.0.0.1:15011)");
}

/** The scheme assumed for an API address given as HOST:PORT: the hub API is HTTPS, an agent's is plain HTTP on loopback. */
export const ASSUMED_SCHEME = { hub: 'https', agent: 'http' } as const;

/**
 * An API address as a URL string: an http(s) URL as given, or HOST:PORT (IPv6
 * in brackets) with the scheme of ASSUMED_SCHEME. Anything else fails the
 * command (exit 1) with one line naming where the address came from.
 */
export function apiUrlFlag(v: string, what: 'hub' | 'agent', source: string): string {
  const value = v.trim();
  const example = what === 'hub' ? 'https://hub.example:7400 or 127.0.0.1:7400' : 'http://127.0.0.1:15011 or 127.0.0.1:15011';
  const bad = (why: string) => new MeshfedError('invalid', `${source}: "${v}" ${why} (e.g. ${example})`);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    let u: URL;
    try {
      u = new URL(value);
    } catch {
      throw bad('is not a valid URL');
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw bad(`has scheme ${u.protocol.slice(0, -1)}; use http or https`);
    return value;
  }
  if (!/^(?:\[[0-9a-f:.]+\]|[a-z0-9.-]+):[0-9]{1,5}$/i.test(value)) throw bad('is neither a URL nor HOST:PORT');
  try {
    parseHostPort(value, source);
  } catch (err) {
    throw bad(errorMessage(err).replace(`${source}: `, ''));
  }
  return `${ASSUMED_SCHEME[what]}://${value}`;
}

/** Several API addresses, comma-separated (hub replicas), each as apiUrlFlag takes it; at least one. */
export function apiUrlsFlag(v: string, what: 'hub' | 'agent', source: string): string[] {
  const urls = v
    .split(',')
    .filter((u) => u.trim() !== '')
    .map((u) => apiUrlFlag(u, what, source));
  if (urls.length === 0) throw new MeshfedError('invalid', `${source}: no ${what} address given`);
  return urls;
}

export function outputOption(withName = false): Option {
  return new Option('-o, --output <format>', withName ? 'table, wide, json, yaml, name (kind/name per line) or jsonpath=TEMPLATE' : 'table, wide, json or yaml').default('table');
}

/** Commander's reducer for a repeatable flag: every value, in order. */
export function collect(value: string, prev: string[]): string[] {
  return [...prev, value];
}

/** Comma-separated values of a repeatable flag, flattened (`--zone a,b --zone c`). */
export function commaList(values: string[]): string[] {
  return values.flatMap((x) => x.split(',')).filter(Boolean);
}

export function nonNegative(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new MeshfedError('usage', `${flag}: "${v}" is not a non-negative number`);
  return n;
}

export function positive(v: string, flag: string): number {
  const n = Number(v);
  if (!(n > 0)) throw new MeshfedError('usage', `${flag}: "${v}" is not a positive number`);
  return n;
}

export function integer(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new MeshfedError('usage', `${flag}: "${v}" is not a number`);
  return n;
}

const DURATION_UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `30m`, `1h`, `7d`, `1.5s` in milliseconds. */
export function durationFlag(v: string, flag: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$/.exec(v);
  if (!m) throw new MeshfedError('usage', `${flag}: "${v}" is not a duration (e.g. 30m, 1h, 7d)`);
  return Math.round(Number(m[1]) * DURATION_UNIT_MS[m[2] as keyof typeof DURATION_UNIT_MS]);
}

/** HOST:PORT (or PORT). A bad address fails the command (exit 1), as it always has. */
export function addressFlag(v: string, flag: string): HostPort {
  try {
    return parseHostPort(v, flag);
  } catch (err) {
    throw new MeshfedError('invalid', errorMessage(err), { cause: err });
  }
}

/** The text of a file a flag names; the error says which flag and why (ENOENT, EACCES). */
export async function readFlagFile(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new MeshfedError('invalid', `${flag} ${file}: ${(err as { code?: string }).code ?? String(err)}`, { cause: err });
  }
}
