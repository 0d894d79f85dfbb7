// The meshfed CLI: the program, its commands (one module per group under
// commands/) and the one place that turns an error into a message and an exit
// code. Exit codes: 0 ok, 1 failed or invalid input, 2 usage error, 3 hub/agent
// unreachable, 4 not found, 5 conflict, 6 unauthenticated or forbidden (docs/cli.md); a MeshfedError's code
// gives its exit code (util/errors.ts), anything else exits 1. A usage error,
// commander's or a command's own, is one line on stderr: the error and
// "(see meshfed <cmd> --help)", never the whole help.
import { Command, CommanderError } from 'commander';
import { InvalidInputError } from '../api/index.js';
import { errorMessage, exitCodeOf, EXIT } from '../util/errors.js';
import { addAuthCommands } from './commands/auth.js';
import { addAuditCommands } from './commands/audit.js';
import { addBackupCommands } from './commands/backup.js';
import { addClusterCommands } from './commands/cluster.js';
import { addConfigCommands } from './commands/config.js';
import { addDemoCommand } from './commands/demo.js';
import { addInstallCommands } from './commands/install.js';
import { addCrdsCommand, addObjectCommands } from './commands/objects.js';
import { addSampleCommands } from './commands/sample.js';
import { addServeCommands } from './commands/serve.js';
import { addStatusCommands } from './commands/status.js';
import { addStoreCommands } from './commands/store.js';
import { addVersionCommand } from './commands/version.js';
import { addCompletionCommand } from './commands/completion.js';
import { addWorkloadCommands } from './commands/workload.js';
import { meshfedVersion } from '../util/version.js';

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  // The command whose action runs: a usage error its action throws points to its help.
  let running: Command = program;
  program.hook('preAction', (_program, actionCommand) => {
    running = actionCommand;
  });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed the message (or help)
      process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage);
    }
    if (err instanceof InvalidInputError) {
      process.stderr.write(`error: invalid input\n${err.message}\n`);
      process.exit(EXIT.failed);
    }
    const hint = exitCodeOf(err) === EXIT.usage ? ` (${helpHint(running)})` : '';
    process.stderr.write(`error: ${errorMessage(err)}${hint}\n`);
    process.exit(exitCodeOf(err));
  }
}

export function buildProgram(): Command {
  const program = new Command('meshfed')
    .description('Multicluster service mesh: many clusters, one mesh')
    .version(meshfedVersion(), '-V, --version', 'print the client version')
    // Set before the subcommands are added: they inherit it, so usage errors reach main() and exit 2.
    .exitOverride();
  // In this order: it is the order of `meshfed --help`.
  addServeCommands(program);
  addClusterCommands(program);
  addObjectCommands(program);
  addWorkloadCommands(program);
  addStatusCommands(program);
  addAuthCommands(program);
  addAuditCommands(program);
  addCrdsCommand(program);
  addInstallCommands(program);
  addDemoCommand(program);
  addSampleCommands(program);
  addStoreCommands(program);
  addBackupCommands(program);
  addConfigCommands(program);
  addVersionCommand(program);
  addCompletionCommand(program);
  oneLineUsageErrors(program);
  return program;
}

/** "see meshfed auth token create --help": the full path of a command. */
function helpHint(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return `see ${names.join(' ')} --help`;
}

/** Every command's parse errors as one line ending in the hint to its own help. */
function oneLineUsageErrors(cmd: Command): void {
  const hint = helpHint(cmd);
  cmd.configureOutput({ outputError: (str, write) => write(`${str.trimEnd()} (${hint})\n`) });
  for (const sub of cmd.commands) oneLineUsageErrors(sub);
}
