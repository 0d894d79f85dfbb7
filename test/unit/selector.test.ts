// Label selectors (src/api/selector.ts): kubectl's syntax, parsed once, used by
// the CLI (-l) and the hub (?labelSelector=). Pure.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { labelsMatch, parseSelector } from '../../src/api/selector.js';
import { MeshfedError } from '../../src/util/errors.js';

const v1 = { app: 'echo', version: 'v1', tier: 'web' };
const v2 = { app: 'echo', version: 'v2' };
const none = {};

function matches(sel: string, labels: Record<string, string>): boolean {
  return labelsMatch(parseSelector(sel), labels);
}

test('each form of requirement matches as in Kubernetes', () => {
  const cases: [string, boolean, boolean, boolean][] = [
    // selector, v1, v2, no labels
    ['', true, true, true],
    ['version=v1', true, false, false],
    ['version==v1', true, false, false],
    ['version!=v1', false, true, true],
    ['tier', true, false, false],
    ['!tier', false, true, true],
    ['version in (v1, v3)', true, false, false],
    ['version in (v1,v2)', true, true, false],
    ['version notin (v1)', false, true, true],
    ['app=echo,version=v2', false, true, false],
    ['app=echo, !tier', false, true, false],
    ['app = echo', true, true, false],
    ['example.com/team', false, false, false],
  ];
  for (const [sel, a, b, c] of cases) assert.deepEqual([matches(sel, v1), matches(sel, v2), matches(sel, none)], [a, b, c], sel);
  assert.ok(matches('example.com/team=a', { 'example.com/team': 'a' }));
  assert.ok(matches('version=', { version: '' }));
});

test('a malformed selector is an invalid error naming it and what is wrong', () => {
  const cases: [string, RegExp][] = [
    ['version in (v1', /"\(" without "\)"/],
    ['version)', /"\)" without "\("/],
    ['a=b,,c', /empty requirement/],
    ['a=b,', /empty requirement/],
    ['version in ()', /the set of values is empty/],
    ['Bad Key=x', /is not k=v/],
    ['-bad=x', /key "-bad"/],
    ['a=b c', /is not k=v/],
    ['a=-x', /value "-x"/],
    ['a>1', /key "a>1"|is not k=v/],
  ];
  for (const [sel, why] of cases) {
    assert.throws(
      () => parseSelector(sel),
      (err: unknown) => err instanceof MeshfedError && err.code === 'invalid' && err.message.startsWith(`label selector "${sel}": `) && why.test(err.message),
      sel,
    );
  }
  assert.throws(() => parseSelector('a,'.repeat(3000)), /longer than 4096/);
});
