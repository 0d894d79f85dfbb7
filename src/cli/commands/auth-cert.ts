// `meshfed auth cert create|list|revoke`: hub API client certificates for
// users (POST/GET/DELETE /api/v1alpha1/auth/certificates). `create` generates
// the key here (it never leaves this machine), sends only a CSR for
// spiffe://<trust domain>/user/<name>, and writes <name>.key (0600) and
// <name>.crt (leaf + chain) into --out-dir; then prints how to use them.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { createCsr, generateKeyPair, userId } from '../../ca/index.js';
import { writeFileDurable } from '../../util/files.js';
import { MeshfedError } from '../../util/errors.js';
import { collect, commaList, durationFlag, hubOption, outputOption } from '../flags.js';
import { request } from '../http.js';
import { age, parseFormat, print, table } from '../output.js';

interface CertInfo {
  serial: string;
  user: string;
  groups: string[];
  createdAt?: string;
  expiresAt: string;
  revokedAt?: string;
  state?: string;
}

/** `meshfed auth cert ...`, under the `auth` group (commands/auth.ts). */
export function addAuthCertCommands(auth: Command): void {
  const cert = auth.command('cert').description('client certificates for the hub API (the key is made and kept here)');
  cert
    .command('create <user>')
    .description('a key pair here and a certificate for it from the hub, written to --out-dir')
    .requiredOption('--out-dir <dir>', 'where to write <user>.key (0600) and <user>.crt')
    .option('--group <group>', 'a group the certificate stands for (repeatable; the hub records it)', collect, [])
    .option('--ttl <duration>', 'lifetime (e.g. 1h, 24h, 30d)', '24h')
    .addOption(hubOption())
    .action(async (user: string, o: { outDir: string; group: string[]; ttl: string; hub?: string }) => {
      durationFlag(o.ttl, '--ttl');
      // The certificate names the mesh's trust domain; whoami tells it to any authenticated caller.
      const td = (await request<{ trustDomain?: string }>(o.hub, 'hub', 'GET', 'api/v1alpha1/auth/whoami')).trustDomain;
      if (!td) throw new MeshfedError('internal', 'the hub did not tell its trust domain (GET /api/v1alpha1/auth/whoami)');
      const key = await generateKeyPair();
      const csr = await createCsr(key, { uris: [userId(td, user)], ca: false });
      const body = { user, groups: commaList(o.group), ttl: o.ttl, csr };
      const r = await request<CertInfo & { certificate: string }>(o.hub, 'hub', 'POST', 'api/v1alpha1/auth/certificates', { text: JSON.stringify(body), contentType: 'application/json' });
      const dir = resolve(o.outDir);
      mkdirSync(dir, { recursive: true });
      const keyFile = join(dir, `${user}.key`);
      const certFile = join(dir, `${user}.crt`);
      await writeFileDurable(keyFile, key.privateKeyPem, 0o600);
      await writeFileDurable(certFile, r.certificate, 0o644);
      process.stderr.write(`certificate ${r.serial} for ${r.user}${r.groups.length ? ` (groups ${r.groups.join(', ')})` : ''}, expires ${r.expiresAt}\n`);
      process.stdout.write(`${keyFile}\n${certFile}\nuse them: meshfed config set-context ${user} --hub <hub URL> --ca <bundle.pem> --cert ${certFile} --key ${keyFile}\n`);
    });
  cert
    .command('list')
    .description('issued user certificates (serials, users, groups, state)')
    .addOption(hubOption())
    .addOption(outputOption())
    .action(async (o: { hub?: string; output: string }) => {
      const format = parseFormat(o.output);
      const r = await request<{ items: CertInfo[] }>(o.hub, 'hub', 'GET', 'api/v1alpha1/auth/certificates');
      print(r, format, () =>
        table(
          ['SERIAL', 'USER', 'GROUPS', 'STATE', 'AGE', 'EXPIRES'],
          r.items.map((c) => [c.serial, c.user, c.groups.join(',') || '-', c.state ?? '-', c.createdAt ? age(c.createdAt) : '-', c.expiresAt]),
        ),
      );
    });
  cert
    .command('revoke <serial>')
    .description('revoke a certificate (at once: its next request answers 401)')
    .addOption(hubOption())
    .action(async (serial: string, o: { hub?: string }) => {
      const r = await request<CertInfo>(o.hub, 'hub', 'DELETE', `api/v1alpha1/auth/certificates/${encodeURIComponent(serial)}`);
      process.stderr.write(`certificate ${r.serial} of ${r.user} revoked\n`);
    });
}
