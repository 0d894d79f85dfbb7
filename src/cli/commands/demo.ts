// `meshfed demo`: a hub, three clusters, helloworld v1/v2/v3 and a client in
// one process, showing traffic across clusters. It runs every phase once (about
// a minute) and exits with the demo's own code (1 when it saw failed calls);
// --keep-running stays up after the last phase until Ctrl-C.
import type { Command } from 'commander';
import { positive } from '../flags.js';

export function addDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run hub + three clusters + helloworld v1/v2/v3 + a client, and show traffic across clusters through every phase (about a minute), then exit')
    .option('--keep-running', 'after the last phase, keep the fleet and the traffic up until Ctrl-C (default: exit)')
    .option('--rate <n>', 'client calls per second', '50')
    .action(async (o: { keepRunning?: boolean; rate: string }) => {
      const { runDemo } = await import('../../demo/demo.js');
      const rate = positive(o.rate, '--rate');
      const code = await runDemo({ keepRunning: o.keepRunning === true, rate });
      process.exit(code);
    });
}
