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
  return new Option('--hub <url>', "hub API URL (default: env MESHFED_HUB, the context's hub, https://127.0.0.1:7400)");
}

export function agentOption(): Option {
  return new Option('--agent <url>', "this cluster's agent API URL (default: env MESHFED_AGENT, the context's agent, http://127.0.0.1:15011)");
}

export function outputOption(): Option {
  return new Option('-o, --output <format>', 'table, wide, json or yaml').default('table');
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
