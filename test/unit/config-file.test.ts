// --config FILE for meshfed hub and agent (src/cli/config-file.ts): a flag on
// the command line wins over the file, the file over the default; an unknown
// key or a wrong type fails naming the file and the key (usage error).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildProgram } from '../../src/cli/main.js';
import type { Command } from 'commander';

let dir: string | undefined;
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Parses `meshfed <args>` with the action replaced: the options the action would see. */
async function parsed(args: string[], yaml: string): Promise<Record<string, unknown>> {
  dir ??= await mkdtemp(join(tmpdir(), 'meshfed-config-'));
  const file = join(dir, 'config.yaml');
  await writeFile(file, yaml);
  const program = buildProgram();
  let seen: Record<string, unknown> = {};
  const cmd = program.commands.find((c) => c.name() === args[0])!;
  cmd.action((o: Record<string, unknown>, c: Command) => {
    seen = { ...o, sources: Object.fromEntries(Object.keys(o).map((k) => [k, c.getOptionValueSource(k)])) };
  });
  await program.parseAsync(['node', 'meshfed', ...args, '--config', file]);
  return seen;
}

test('command line over the file over the defaults; lists, switches and negated switches', async () => {
  const o = await parsed(['agent', '--zone', 'z1'], 'cluster: c1\nzone: [a, b]\nxds-listen: 127.0.0.1:9\nmcs-import: false\npush-debounce-ms: 5\ninsecure-channel: true\n');
  assert.equal(o.cluster, 'c1');
  assert.deepEqual(o.zone, ['z1'], 'the command line wins');
  assert.equal(o.xdsListen, '127.0.0.1:9', 'the file wins over the default');
  assert.equal(o.apiListen, '127.0.0.1:15011', 'the default where neither gives it');
  assert.equal(o.mcsImport, false);
  assert.equal(o.pushDebounceMs, '5', 'a number is taken as its text');
  assert.equal(o.insecureChannel, true);
  const h = await parsed(['hub'], 'api-san: one.example\nlisten: 127.0.0.1:1\n');
  assert.deepEqual(h.apiSan, ['one.example'], 'one string for a repeatable flag');
  assert.equal(h.listen, '127.0.0.1:1');
});

test('an unknown key or a wrong type fails, naming the file and the key', async () => {
  await assert.rejects(parsed(['hub'], 'data_dir: /x\n'), (err: Error) => {
    assert.match(err.message, /config\.yaml: unknown key "data_dir" for meshfed hub \(allowed: .*data-dir.*\)/);
    assert.equal((err as Error & { code?: string }).code, 'usage');
    return true;
  });
  await assert.rejects(parsed(['hub'], 'insecure-api: "yes"\n'), /config\.yaml: insecure-api: expected true or false, got "yes"/);
  await assert.rejects(parsed(['agent'], 'cluster: {a: 1}\n'), /config\.yaml: cluster: expected a string/);
  await assert.rejects(parsed(['agent'], '- a\n'), /config\.yaml: expected a mapping/);
});
