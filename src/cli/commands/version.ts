// `meshfed version`: this client's version and, when the hub answers, the
// hub's (its open GET /healthz carries it). An unreachable hub is not an error
// here (exit 0): the client version is what was asked first, and the line says
// why the hub's is missing. `--client` does not try the hub at all.
import type { Command } from 'commander';
import { errorMessage } from '../../util/errors.js';
import { meshfedVersion } from '../../util/version.js';
import { hubOption, outputOption } from '../flags.js';
import { request, target } from '../http.js';
import { parseFormat, print } from '../output.js';

interface VersionReport {
  client: { version: string };
  hub?: { url: string; version?: string; error?: string };
}

export function addVersionCommand(program: Command): void {
  program
    .command('version')
    .description("this client's version, and the hub's when it answers")
    .option('--client', 'only the client version (do not ask the hub)')
    .addOption(hubOption())
    .addOption(outputOption())
    .action(async (o: { client?: boolean; hub?: string; output: string }) => {
      const format = parseFormat(o.output);
      const report: VersionReport = { client: { version: meshfedVersion() } };
      if (!o.client) {
        const url = target('hub', o.hub).base;
        try {
          const h = await request<{ version?: string }>(o.hub, 'hub', 'GET', 'healthz');
          report.hub = { url, version: h.version ?? 'unknown (a hub older than meshfed 0.1.0)' };
        } catch (err) {
          report.hub = { url, error: errorMessage(err) };
        }
      }
      print(report, format, () => {
        let out = `client: ${report.client.version}\n`;
        if (report.hub) out += report.hub.version ? `hub:    ${report.hub.version} (${report.hub.url})\n` : `hub:    unavailable: ${report.hub.error}\n`;
        return out;
      });
    });
}
