// `meshfed demo`: a hub, three clusters, helloworld v1/v2/v3 and a client in
// one process, showing traffic across clusters. Exits with the demo's own code
// (1 when it saw failed calls).
import type { Command } from 'commander';
import { positive } from '../flags.js';

export function addDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run hub + three clusters + helloworld v1/v2/v3 + a client, and show traffic across clusters')
    .option('--duration <seconds>', 'stop after this many seconds (default: until Ctrl-C)')
    .option('--rate <n>', 'client calls per second', '50')
    .action(async (o: { duration?: string; rate: string }) => {
      const { runDemo } = await import('../../demo/demo.js');
      const duration = o.duration === undefined ? undefined : positive(o.duration, '--duration');
      const rate = positive(o.rate, '--rate');
      const code = await runDemo({ ...(duration !== undefined ? { durationSec: duration } : {}), rate });
      process.exit(code);
    });
}
