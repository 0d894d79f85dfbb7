// `meshfed sample server|client`: the shipped helloworld gRPC xDS sample
// (src/samples/helloworld) as commands, so a walkthrough needs no program of
// its own. Both read the xDS bootstrap `meshfed bootstrap` wrote from
// GRPC_XDS_BOOTSTRAP (or GRPC_XDS_BOOTSTRAP_CONFIG), as any gRPC xDS process
// does; they refuse to start without one, and the server without a `--server`
// bootstrap. The server is a real XdsServer (the sample calls register() from
// @grpc/grpc-js-xds first) and says which workload and cluster answered; the
// cluster defaults to the one in the bootstrap's node id
// (<cluster>~<namespace>~<workload>). The client prints every reply or error
// and exits 1 when any call failed.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { EXIT, MeshfedError } from '../../util/errors.js';
import { durationFlag, integer, positive } from '../flags.js';

interface Bootstrap {
  node?: { id?: string };
  xds_servers?: { server_uri?: string }[];
  server_listener_resource_name_template?: string;
}

/** The bootstrap this process's gRPC will read, from the same variables, or a usage error saying how to get one. */
function readBootstrap(): { bootstrap: Bootstrap; from: string } {
  const file = process.env.GRPC_XDS_BOOTSTRAP;
  const inline = process.env.GRPC_XDS_BOOTSTRAP_CONFIG;
  if (!file && !inline) throw new MeshfedError('usage', 'GRPC_XDS_BOOTSTRAP is not set: point it at the file `meshfed bootstrap ... --out FILE` wrote');
  const from = file ? `GRPC_XDS_BOOTSTRAP=${file}` : 'GRPC_XDS_BOOTSTRAP_CONFIG';
  let text: string;
  try {
    text = file ? readFileSync(file, 'utf8') : inline!;
  } catch (err) {
    throw new MeshfedError('invalid', `${from}: ${(err as { code?: string }).code ?? String(err)}`, { cause: err });
  }
  try {
    return { bootstrap: JSON.parse(text) as Bootstrap, from };
  } catch (err) {
    throw new MeshfedError('invalid', `${from}: not JSON (${(err as Error).message})`, { cause: err });
  }
}

export function addSampleCommands(program: Command): void {
  const sample = program.command('sample').description('the helloworld gRPC xDS sample: a server and a client that use the agent of their cluster (GRPC_XDS_BOOTSTRAP)');
  sample
    .command('server')
    .description('run a helloworld XdsServer on IP:PORT, configured by the agent (GRPC_XDS_BOOTSTRAP from `meshfed bootstrap --server`); runs until Ctrl-C')
    .requiredOption('--port <port>', 'port to serve on (the workload port you register)')
    .option('--address <ip>', 'literal IP to bind (the xDS listener is named after it)', '127.0.0.1')
    .option('--name <workload>', 'the workload name replies carry (use the registered name)', 'helloworld')
    .option('--cluster <name>', "the cluster replies carry (default: the bootstrap's)")
    .option('--app-version <v>', 'the version replies carry (--version is the CLI version)', 'v1')
    .action(async (o: { port: string; address: string; name: string; cluster?: string; appVersion: string }) => {
      const port = integer(o.port, '--port');
      if (port < 1 || port > 65535) throw new MeshfedError('usage', `--port: ${port} is not a port (an XdsServer cannot bind port 0)`);
      const { bootstrap, from } = readBootstrap();
      if (!bootstrap.server_listener_resource_name_template) {
        throw new MeshfedError('invalid', `${from}: not a server bootstrap (no server_listener_resource_name_template): write it with \`meshfed bootstrap --server\``);
      }
      const cluster = o.cluster ?? bootstrap.node?.id?.split('~')[0] ?? 'unknown';
      const { startGreeterServer } = await import('../../samples/helloworld/server.js');
      const running = startGreeterServer({ address: o.address, port, name: o.name, cluster, version: o.appVersion });
      const say = (s: string) => process.stdout.write(`${s}\n`);
      say(`${o.name} (${cluster}, ${o.appVersion}): waiting for its xDS listener for ${o.address}:${port} from the agent at ${bootstrap.xds_servers?.[0]?.server_uri ?? '?'}`);
      // The port is bound only once the agent's Listener is accepted: say where to look when it is not.
      const slow = setTimeout(() => say('  no listener after 10 s: is the workload registered, and the agent up? `meshfed proxy-status` shows NACKs'), 10_000);
      const stopped = new Promise<'stopped'>((resolve) => {
        process.once('SIGINT', () => resolve('stopped'));
        process.once('SIGTERM', () => resolve('stopped'));
      });
      try {
        if ((await Promise.race([running.serving.then(() => 'serving' as const), stopped])) === 'serving') {
          clearTimeout(slow);
          say(`${o.name}: serving helloworld.Greeter on ${o.address}:${port}`);
          await stopped;
        }
      } catch (err) {
        throw new MeshfedError('invalid', `serving ${o.address}:${port}: ${(err as Error).message}`, { cause: err });
      } finally {
        clearTimeout(slow);
        running.stop();
      }
      say(`${o.name}: stopped`);
      // The xDS client keeps timers of its own: leave now, as the sample program does.
      process.exit(EXIT.ok);
    });

  sample
    .command('client')
    .description('call helloworld.Greeter/SayHello through xDS (GRPC_XDS_BOOTSTRAP from `meshfed bootstrap`), print each reply or error; exit 1 if any call failed')
    .option('--target <xds:///name>', 'what to call (see docs/naming.md)', 'xds:///helloworld.sample')
    .option('--count <n>', 'number of calls', '5')
    .option('--interval <duration>', 'time between calls (e.g. 200ms, 1s)', '200ms')
    .option('--deadline <duration>', 'deadline of each call', '5s')
    .action(async (o: { target: string; count: string; interval: string; deadline: string }) => {
      const count = integer(o.count, '--count');
      if (count < 1) throw new MeshfedError('usage', `--count: ${count} is not a positive number`);
      const intervalMs = positive(String(durationFlag(o.interval, '--interval')), '--interval');
      const deadlineMs = durationFlag(o.deadline, '--deadline');
      readBootstrap();
      const { runGreeterClient } = await import('../../samples/helloworld/client.js');
      const ac = new AbortController();
      process.once('SIGINT', () => ac.abort());
      process.once('SIGTERM', () => ac.abort());
      const totals = await runGreeterClient({
        target: o.target,
        rate: 1000 / intervalMs,
        count,
        deadlineMs,
        signal: ac.signal,
        onCall: (n, r) => {
          if ('error' in r) process.stdout.write(`${n}: error ${r.error}\n`);
          else {
            const { reply } = r;
            const peer = reply.peer && reply.peer !== 'plaintext' ? `mTLS, the server saw ${reply.peer}` : 'plaintext';
            process.stdout.write(`${n}: ${reply.cluster} ${reply.workload} ${reply.version}: "${reply.message}" (${peer})\n`);
          }
        },
      });
      process.stdout.write(`${totals.ok} of ${totals.ok + totals.failed} calls ok\n`);
      // The xDS client keeps timers of its own: leave now.
      process.exit(totals.failed > 0 || totals.ok === 0 ? EXIT.failed : EXIT.ok);
    });
}
