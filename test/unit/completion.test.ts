// Shell completion (src/cli/completion.ts) generated from the real program tree:
// the bash script is sourced in bash and its function called as bash would.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { buildProgram } from '../../src/cli/main.js';
import { bashCompletion, fishCompletion, zshCompletion } from '../../src/cli/completion.js';

const run = promisify(execFile);

/** What the bash completion offers for the words typed (the last one being completed). */
async function complete(script: string, words: string[]): Promise<string[]> {
  const arr = words.map((w) => `'${w}'`).join(' ');
  const { stdout } = await run('bash', ['-c', `${script}\nCOMP_WORDS=(${arr}); COMP_CWORD=${words.length - 1}; _meshfed; printf '%s\\n' "\${COMPREPLY[@]}"`]);
  return stdout.split('\n').filter(Boolean).sort();
}

test('bash: commands, subcommands, flags and kind names complete', async () => {
  const script = bashCompletion(buildProgram());
  assert.deepEqual(await complete(script, ['meshfed', 'ge']), ['get']);
  assert.deepEqual(await complete(script, ['meshfed', 'get', 'clu']), ['cluster', 'clusters']);
  assert.deepEqual(await complete(script, ['meshfed', 'describe', 'tr']), ['trafficpolicies', 'trafficpolicy']);
  assert.deepEqual(await complete(script, ['meshfed', 'auth', 'token', 'cr']), ['create']);
  assert.deepEqual(await complete(script, ['meshfed', 'get', '--wat']), ['--watch', '--watch-only']);
  assert.ok((await complete(script, ['meshfed', 'completion', ''])).length === 0);
  // The value of a flag is not completed as a command; after it, the kind still is.
  assert.deepEqual(await complete(script, ['meshfed', 'get', '-n', 'g']), []);
  assert.ok((await complete(script, ['meshfed', 'get', '-n', 'tools', 'work'])).includes('workloads'));
});

test('zsh and fish scripts name every command', () => {
  const program = buildProgram();
  const zsh = zshCompletion(program);
  const fish = fishCompletion(program);
  assert.match(zsh, /^#compdef meshfed\n/);
  assert.match(zsh, /bashcompinit/);
  for (const c of program.commands) {
    assert.ok(zsh.includes(c.name()), c.name());
    assert.match(fish, new RegExp(`-n '__fish_use_subcommand' -a ${c.name()} `));
  }
  assert.match(fish, /__fish_seen_subcommand_from get'? -l selector -s l -r/);
  assert.match(fish, /-a 'clusters cluster cl /);
});
