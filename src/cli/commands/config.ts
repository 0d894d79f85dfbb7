// `meshfed config view|get-contexts|use-context|set-context` and the global
// --context flag: the CLI's config file (src/cli/config.ts), like kubectl's.
// Secrets in it are never printed (view redacts them).
import type { Command } from 'commander';
import { MeshfedError } from '../../util/errors.js';
import { apiUrlFlag, apiUrlsFlag } from '../flags.js';
import { configPath, loadConfig, redacted, saveConfig, selectContext, type CliContext } from '../config.js';
import { table } from '../output.js';
import { stringify } from 'yaml';

/** The flags of set-context: every field of a context but its name. */
type SetContextFlags = Omit<CliContext, 'name'>;

export function addConfigCommands(program: Command): void {
  program.option('--context <name>', 'the config context to use (default: current-context of MESHFED_CONFIG or ~/.meshfed/config.yaml)');
  program.hook('preAction', (cmd) => selectContext((cmd.opts() as { context?: string }).context));

  const config = program.command('config').description(`the CLI's contexts: hub URL, CA, credential (file: MESHFED_CONFIG or ~/.meshfed/config.yaml)`);
  config
    .command('view')
    .description('print the config (secrets redacted)')
    .action(() => {
      const cfg = loadConfig();
      process.stdout.write(stringify({ ...cfg, contexts: cfg.contexts.map(redacted) }));
    });
  config
    .command('get-contexts')
    .description('list the contexts (* marks the current one)')
    .action(() => {
      const cfg = loadConfig();
      const rows = cfg.contexts.map((c) => [c.name === cfg['current-context'] ? '*' : '', c.name, c.hub ?? '-', c.token ? 'token' : c.cert ? 'certificate' : '-']);
      process.stdout.write(table(['CURRENT', 'NAME', 'HUB', 'CREDENTIAL'], rows));
    });
  config
    .command('use-context <name>')
    .description('make a context the current one')
    .action(async (name: string) => {
      const cfg = loadConfig();
      if (!cfg.contexts.some((c) => c.name === name)) throw new MeshfedError('not-found', `no context "${name}" in ${configPath()}`);
      cfg['current-context'] = name;
      await saveConfig(cfg);
      process.stderr.write(`switched to context "${name}"\n`);
    });
  config
    .command('set-context <name>')
    .description('create or change a context (only the fields given change)')
    .option('--hub <url|host:port>', 'hub API URL (HOST:PORT means https://); several hub replicas comma-separated')
    .option('--ca <file>', 'CA bundle file the hub API certificate chains to')
    .option('--token <token>', 'bearer token (visible in ps: prefer editing the file)')
    .option('--cert <file>', 'client certificate file')
    .option('--key <file>', 'client key file')
    .option('--agent <url|host:port>', 'agent API URL (HOST:PORT means http://)')
    .option('--agent-token <token>', 'agent API token')
    .action(async (name: string, o: SetContextFlags) => {
      const cfg = loadConfig();
      let ctx = cfg.contexts.find((c) => c.name === name);
      if (!ctx) {
        ctx = { name };
        cfg.contexts.push(ctx);
      }
      // An address is stored as the URL it means, so a bad one fails here and not at the next call.
      if (o.hub !== undefined) o.hub = apiUrlsFlag(o.hub, 'hub', '--hub').join(',');
      if (o.agent !== undefined) o.agent = apiUrlFlag(o.agent, 'agent', '--agent');
      for (const k of ['hub', 'ca', 'token', 'cert', 'key', 'agent', 'agentToken'] as const satisfies readonly (keyof CliContext)[]) if (o[k] !== undefined) ctx[k] = o[k];
      cfg['current-context'] ??= name;
      await saveConfig(cfg);
      process.stderr.write(`context "${name}" saved in ${configPath()}\n`);
    });
}
