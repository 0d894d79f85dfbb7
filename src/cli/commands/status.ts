// `meshfed status` (this cluster's agent) and `meshfed proxy-status` (every
// proxy of every agent, through the hub or straight from agents). The
// printers live in ../status.ts; this file only declares the commands.
import type { Command } from 'commander';
import { agentOption, collect, hubOption, outputOption } from '../flags.js';
import { printAgentStatus, printProxyStatus } from '../status.js';

export function addStatusCommands(program: Command): void {
  program.command('status').description("this cluster's agent: readiness, hub connection, what it serves").addOption(agentOption()).addOption(outputOption()).action(printAgentStatus);

  program
    .command('proxy-status')
    .description('every proxy connected to every agent, and its per-type sync state')
    .addOption(hubOption())
    .option('--agent <url|host:port>', 'ask these agents directly instead of the hub (repeatable; HOST:PORT means http://)', collect, [])
    .addOption(outputOption())
    .action(printProxyStatus);
}
