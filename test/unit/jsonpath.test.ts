// `-o jsonpath=` (src/cli/jsonpath.ts): kubectl's JSONPath subset. Pure.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { executeJsonPath, parseJsonPath } from '../../src/cli/jsonpath.js';
import { MeshfedError } from '../../src/util/errors.js';

const list = {
  kind: 'List',
  items: [
    { metadata: { name: 'a', labels: { 'app.kubernetes.io/name': 'x' } }, spec: { zones: ['z1', 'z2'], ports: [{ name: 'grpc', port: 1 }] } },
    { metadata: { name: 'b' }, spec: { zones: ['z3'], ports: [] } },
  ],
};

function run(template: string, data: unknown = list): string {
  return executeJsonPath(parseJsonPath(template), data);
}

test('fields, indexes, wildcards, ranges and literals', () => {
  assert.equal(run('{.kind}'), 'List');
  assert.equal(run('{.items[*].metadata.name}'), 'a b');
  assert.equal(run('{.items[0].spec.zones[1]}'), 'z2');
  assert.equal(run('{.items[0].spec.ports[0].port}'), '1');
  assert.equal(run('{.items[0].spec.zones}'), '["z1","z2"]');
  assert.equal(run('{range .items[*]}{.metadata.name}{"\\n"}{end}'), 'a\nb\n');
  assert.equal(run('{range .items[*]}{.metadata.name}:{range .spec.zones[*]}{@},{end};{end}'), 'a:z1,z2,;b:z3,;');
  assert.equal(run("{.items[0].metadata.labels['app.kubernetes.io/name']}"), 'x');
  assert.equal(run('name={.metadata.name}\t', { metadata: { name: 'one' } }), 'name=one\t');
  assert.equal(run('.metadata.name', { metadata: { name: 'bare' } }), 'bare');
  assert.equal(run('{$.kind}'), 'List');
  // Missing fields and indexes print nothing (kubectl's default).
  assert.equal(run('{.items[5].metadata.name}{.nope.x}'), '');
  assert.equal(run('{"{}"}'), '{}');
});

test('a template outside the subset is a usage error naming it', () => {
  const cases: [string, RegExp][] = [
    ['{.items[?(@.x)]}', /cannot read/],
    ['{..name}', /cannot read/],
    ['{.items[0:2]}', /cannot read/],
    ['{.a', /"\{" without "\}"/],
    ['{range .items[*]}{.x}', /\{range\} without \{end\}/],
    ['{end}', /\{end\} without \{range\}/],
    ['{metadata.name}', /does not start with "\."/],
    ['{"unterminated}', /"\{" without "\}"|not a string literal/],
  ];
  for (const [t, why] of cases) {
    assert.throws(
      () => parseJsonPath(t),
      (err: unknown) => err instanceof MeshfedError && err.code === 'usage' && err.message.startsWith(`-o jsonpath: template "${t}": `) && why.test(err.message),
      t,
    );
  }
});
