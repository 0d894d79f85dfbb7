// `meshfed completion bash|zsh|fish`: prints a completion script generated
// from this program's command tree (src/cli/completion.ts).
import type { Command } from 'commander';
import { MeshfedError } from '../../util/errors.js';

const SHELLS = ['bash', 'zsh', 'fish'] as const;

export function addCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script: source <(meshfed completion bash); see docs/cli.md')
    .argument('<shell>', SHELLS.join(', '))
    .action(async (shell: string) => {
      const c = await import('../completion.js');
      const make = { bash: c.bashCompletion, zsh: c.zshCompletion, fish: c.fishCompletion }[shell as (typeof SHELLS)[number]];
      if (!SHELLS.includes(shell as (typeof SHELLS)[number]) || !make) throw new MeshfedError('usage', `completion: unknown shell "${shell}" (${SHELLS.join(', ')})`);
      process.stdout.write(make(program));
    });
}
