// `--config FILE` for the long-running servers (meshfed hub, meshfed agent):
// a YAML mapping of the command's own flags, generic over a commander Command,
// so every flag has its config key and no list of keys is kept by hand.
// Mapping: a key is the flag's long name without the dashes (`agent-listen`,
// `data-dir`, `mcs-import` for --no-mcs-import); a repeatable flag takes a list
// (or one string), a switch true/false, any other flag a string (a number is
// accepted as its text). Precedence: a flag on the command line wins over the
// file, the file over the flag's default. Unknown keys and wrong types fail
// with the file, the key and what is allowed (usage error, exit 2).
import { readFileSync } from 'node:fs';
import type { Command, Option } from 'commander';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { errorMessage, MeshfedError } from '../util/errors.js';

/** The config key of an option: its long flag name without the dashes; a negated switch (--no-mcs-import) by its positive name. */
function keyOf(o: Option): string | undefined {
  const long = o.long?.replace(/^--/, '');
  if (!long || long === 'config' || long === 'print-config' || long === 'help') return undefined;
  return o.negate ? long.replace(/^no-/, '') : long;
}

/** Adds --config FILE to `cmd`; before its action runs, the file's values fill in every flag not given on the command line. */
export function withConfigFile(cmd: Command): Command {
  cmd.option('--config <file>', 'read flags from this YAML file (keys: the long flag names, e.g. data-dir; flags on the command line win)');
  cmd.option('--print-config', 'print the effective flags (defaults, --config file, command line) as a config file, and exit');
  cmd.hook('preAction', (thisCommand) => {
    const file = thisCommand.getOptionValue('config') as string | undefined;
    if (file) applyConfigFile(thisCommand, file, readConfigFile(file));
    if (thisCommand.getOptionValue('printConfig') === true) {
      process.stdout.write(stringifyYaml(configOf(thisCommand)));
      process.exit(0);
    }
  });
  return cmd;
}

function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new MeshfedError('invalid', `--config: cannot read ${file} (${errorMessage(err)})`);
  }
  try {
    return parseYaml(text) ?? {};
  } catch (err) {
    throw new MeshfedError('usage', `${file}: not valid YAML (${errorMessage(err)})`);
  }
}

/** Sets the options of `cmd` from `values` (a parsed config file) where the command line did not give them. */
export function applyConfigFile(cmd: Command, file: string, values: unknown): void {
  if (typeof values !== 'object' || values === null || Array.isArray(values)) throw new MeshfedError('usage', `${file}: expected a mapping of flag names to values`);
  const byKey = new Map<string, Option>();
  for (const o of cmd.options) {
    const k = keyOf(o);
    if (k) byKey.set(k, o);
  }
  for (const [key, raw] of Object.entries(values)) {
    const opt = byKey.get(key);
    if (!opt) throw new MeshfedError('usage', `${file}: unknown key "${key}" for meshfed ${cmd.name()} (allowed: ${[...byKey.keys()].sort().join(', ')})`);
    const name = opt.attributeName();
    if (cmd.getOptionValueSource(name) === 'cli') continue;
    cmd.setOptionValueWithSource(name, convert(opt, raw, `${file}: ${key}`), 'config');
  }
}

function convert(opt: Option, raw: unknown, where: string): unknown {
  const scalar = (v: unknown): string => {
    if (typeof v === 'string') return v;
    if (typeof v === 'number') return String(v);
    throw new MeshfedError('usage', `${where}: expected a string, got ${JSON.stringify(v)}`);
  };
  if (!opt.required && !opt.optional) {
    // A switch (--insecure-api, --no-mcs-import): true or false.
    if (typeof raw !== 'boolean') throw new MeshfedError('usage', `${where}: expected true or false, got ${JSON.stringify(raw)}`);
    return raw;
  }
  if (Array.isArray(opt.defaultValue)) return (Array.isArray(raw) ? raw : [raw]).map(scalar);
  return scalar(raw);
}

/** The effective flags of `cmd` as a config file (for --print-config): every key, defaults included. */
export function configOf(cmd: Command): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const o of cmd.options) {
    const k = keyOf(o);
    if (!k) continue;
    const v: unknown = cmd.getOptionValue(o.attributeName());
    if (v !== undefined) out[k] = v;
  }
  return out;
}
