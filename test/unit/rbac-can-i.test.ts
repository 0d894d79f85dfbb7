// `meshfed auth can-i` at the hub (canIAnswer): answered for the caller from
// the Roles and RoleBindings in a real FileStore; a malformed question is a
// 400 naming the field; --list shows the rules held and where they come from.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { API_VERSION } from '../../src/api/index.js';
import type { Principal } from '../../src/auth/types.js';
import { canIAnswer, type CanIAnswer, type CanIListAnswer } from '../../src/hub/api-auth.js';
import { FileStore } from '../../src/store/file-store.js';
import { MeshfedError } from '../../src/util/errors.js';
import { parseAndValidate } from '../../src/registry.js';

const alice: Principal = { kind: 'user', name: 'alice', groups: ['team-a'], via: 'token', credentialId: 't1' };

async function withStore(fn: (store: FileStore) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'meshfed-rbac-'));
  const store = await FileStore.open(join(dir, 'data'), { logger: { warn: () => {}, error: () => {} } });
  try {
    const objects = parseAndValidate(
      JSON.stringify([
        {
          apiVersion: API_VERSION,
          kind: 'Role',
          metadata: { name: 'shifter' },
          spec: {
            rules: [
              { kinds: ['TrafficPolicy'], verbs: ['create', 'read'], namespaces: ['team-a'], actions: ['traffic-shift'] },
              { kinds: ['AccessPolicy'], verbs: ['create'], namespaces: ['team-a'], destinations: [{ namespace: 'team-a' }] },
            ],
          },
        },
        { apiVersion: API_VERSION, kind: 'RoleBinding', metadata: { name: 'team-a-shifts' }, spec: { roleRef: 'shifter', subjects: [{ kind: 'Group', name: 'team-a' }] } },
      ]),
    );
    await store.commit(objects.map((object) => ({ type: 'put', object })));
    await fn(store);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

describe('canIAnswer', () => {
  it('answers yes and no with the reason, resolving plural and short kind names', () =>
    withStore(async (store) => {
      const yes = (await canIAnswer(store, alice, { verb: 'create', kind: 'trafficpolicies', namespace: 'team-a', actions: ['traffic-shift'] })) as CanIAnswer;
      assert.equal(yes.allowed, true);
      assert.equal(yes.reason, 'allowed by Role shifter (rule 0) through RoleBinding team-a-shifts');
      assert.equal(yes.permission.kind, 'TrafficPolicy');
      const fault = (await canIAnswer(store, alice, { verb: 'create', kind: 'tp', namespace: 'team-a', actions: ['traffic-shift', 'fault-injection'] })) as CanIAnswer;
      assert.deepEqual([fault.allowed, fault.reason], [false, 'user alice may not create TrafficPolicy in namespace team-a: no role allows action fault-injection']);
      const selected = (await canIAnswer(store, alice, { verb: 'create', kind: 'ap', namespace: 'team-a' })) as CanIAnswer;
      assert.deepEqual(
        [selected.allowed, selected.reason],
        [true, 'allowed by Role shifter (rule 1) through RoleBinding team-a-shifts, only for objects within its destination and workload selectors'],
      );
      const watch = (await canIAnswer(store, alice, { verb: 'watch', kind: 'TrafficPolicy', namespace: 'team-a' })) as CanIAnswer;
      assert.equal(watch.allowed, true);
      const trust = (await canIAnswer(store, alice, { verb: 'rotate-root', kind: 'trust' })) as CanIAnswer;
      assert.deepEqual([trust.allowed, trust.reason], [false, 'user alice may not rotate-root Trust: no role allows it']);
    }));

  it('lists the rules held, with Role and RoleBinding', () =>
    withStore(async (store) => {
      const l = (await canIAnswer(store, alice, { list: true })) as CanIListAnswer;
      assert.equal(l.superuser, false);
      assert.deepEqual(
        l.rules.map((r) => [r.role, r.rule, r.binding, r.verbs]),
        [
          ['shifter', 0, 'team-a-shifts', ['create', 'read']],
          ['shifter', 1, 'team-a-shifts', ['create']],
        ],
      );
      const admin = (await canIAnswer(store, { ...alice, name: 'root', groups: ['meshfed:admins'] }, { list: true })) as CanIListAnswer;
      assert.deepEqual([admin.superuser, admin.rules.length], [true, 0]);
    }));

  it('a malformed question is invalid, naming the field', () =>
    withStore(async (store) => {
      const bad = async (body: unknown, field: RegExp) => {
        await assert.rejects(canIAnswer(store, alice, body), (err: unknown) => err instanceof MeshfedError && err.code === 'invalid' && field.test(err.message));
      };
      await bad(null, /JSON object/);
      await bad({ kind: 'Cluster' }, /^verb:/);
      await bad({ verb: 'destroy', kind: 'Cluster' }, /^verb: unknown verb "destroy"/);
      await bad({ verb: '*', kind: 'Cluster' }, /^verb:/);
      await bad({ verb: 'read' }, /^kind:/);
      await bad({ verb: 'read', kind: 'Nope' }, /^kind: unknown kind "Nope"/);
      await bad({ verb: 'read', kind: 'Cluster', namespace: 7 }, /^namespace:/);
      await bad({ verb: 'read', kind: 'Cluster', actions: 'x' }, /^actions:/);
      await bad({ list: 'yes' }, /^list:/);
    }));
});
