// The CLI's config file, like a kubeconfig: named contexts, each a hub URL
// (or several hub replicas, comma-separated), the CA bundle its API
// certificate chains to, and a credential (a bearer token, or a client
// certificate and key), plus the agent API's token; and `current-context`.
// Where: MESHFED_CONFIG, else ~/.meshfed/config.yaml. The context used:
// --context, else current-context. The hub's first start writes one
// (<hub data dir>/admin.meshfed.yaml): MESHFED_CONFIG=that file works as is.
//
// Invariants: the file is written 0600 (it holds secrets); `ca`, `cert` and
// `key` are PEM text or a file path; secrets are never printed (`config view`
// redacts them).
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { writeFileDurable } from '../util/files.js';
import { errorMessage, MeshfedError } from '../util/errors.js';

export interface CliContext {
  name: string;
  /** Hub API URL (https://... unless the hub runs with --insecure-api); several replicas comma-separated (http.ts). */
  hub?: string;
  /** CA bundle (PEM or a file) the hub API's certificate chains to. */
  ca?: string;
  /** Bearer token for the hub API. */
  token?: string;
  /** Client certificate and key (PEM or files), instead of a token. */
  cert?: string;
  key?: string;
  /** Agent API URL and token (the agent writes <data dir>/agent-admin.token). */
  agent?: string;
  agentToken?: string;
}

export interface CliConfig {
  'current-context'?: string;
  contexts: CliContext[];
}

export function configPath(): string {
  return process.env.MESHFED_CONFIG ?? join(homedir(), '.meshfed', 'config.yaml');
}

let selected: string | undefined;

/** The --context flag (set once before a command runs). */
export function selectContext(name: string | undefined): void {
  selected = name;
}

/** The config file; an empty one when it does not exist. */
export function loadConfig(path = configPath()): CliConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return { contexts: [] };
    throw new MeshfedError('invalid', `config ${path}: ${(err as { code?: string }).code ?? errorMessage(err)}`);
  }
  let v: unknown;
  try {
    v = parse(text);
  } catch (err) {
    throw new MeshfedError('invalid', `config ${path} is not YAML: ${errorMessage(err)}`);
  }
  if (v === null || v === undefined) return { contexts: [] };
  const c = v as Partial<CliConfig>;
  if (typeof v !== 'object' || (c.contexts !== undefined && !Array.isArray(c.contexts))) throw new MeshfedError('invalid', `config ${path}: expected {contexts: [...], current-context}`);
  const contexts = (c.contexts ?? []).filter((x): x is CliContext => !!x && typeof x === 'object' && typeof (x as CliContext).name === 'string');
  const out: CliConfig = { contexts };
  if (typeof c['current-context'] === 'string') out['current-context'] = c['current-context'];
  return out;
}

export async function saveConfig(cfg: CliConfig, path = configPath()): Promise<void> {
  await writeFileDurable(path, stringify(cfg), 0o600);
}

/** The context in use (--context, else current-context), or undefined when the config has none. */
export function currentContext(cfg = loadConfig()): CliContext | undefined {
  const name = selected ?? cfg['current-context'];
  if (!name) return undefined;
  const ctx = cfg.contexts.find((c) => c.name === name);
  if (!ctx) {
    if (selected) throw new MeshfedError('usage', `--context ${name}: no such context in ${configPath()} (meshfed config get-contexts)`);
    throw new MeshfedError('invalid', `current-context "${name}" is not in ${configPath()}`);
  }
  return ctx;
}

/** PEM given inline, or read from the file it names. */
export function pemOf(value: string, field: string): string {
  if (value.includes('-----BEGIN')) return value;
  try {
    return readFileSync(value, 'utf8');
  } catch (err) {
    throw new MeshfedError('invalid', `context ${field}: ${value}: ${(err as { code?: string }).code ?? errorMessage(err)}`);
  }
}

/** A context with its secrets replaced, for printing. */
export function redacted(c: CliContext): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(c) as [keyof CliContext, string | undefined][]) {
    if (v === undefined) continue;
    if (k === 'token' || k === 'agentToken' || k === 'key') out[k] = 'REDACTED';
    else if ((k === 'ca' || k === 'cert') && v.includes('-----BEGIN')) out[k] = `(PEM, ${v.split('-----BEGIN').length - 1} certificate(s))`;
    else out[k] = v;
  }
  return out;
}
