// Role and RoleBinding: kind validation, the authorizer (every scope
// dimension, wildcards and prefixes, groups, actions, destination and source
// selectors, deny reasons, the superuser group), escalation checks, the
// actions each policy plugin reports and the Permission of a write. Pure.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { API_VERSION, type ApiObject } from '../../src/api/index.js';
import { RoleBindingKind, RoleKind, type Role, type RoleBinding, type RoleRule } from '../../src/api/kinds/role.js';
import { permissionFor, permissionsFor } from '../../src/auth/permissions.js';
import { authorize, checkEscalation, matchPattern, patternCovers } from '../../src/auth/rbac.js';
import { authorizeWrites } from '../../src/auth/rbac-writes.js';
import type { Permission, Principal } from '../../src/auth/types.js';
import { parseAndValidate, pluginOf, VIEW_KINDS } from '../../src/registry.js';

const alice: Principal = { kind: 'user', name: 'alice', groups: ['team-a'], via: 'token', credentialId: 't1' };
const bob: Principal = { kind: 'user', name: 'bob', groups: [], via: 'token', credentialId: 't2' };
const admin: Principal = { kind: 'user', name: 'admin', groups: ['meshfed:admins'], via: 'certificate', credentialId: 'c1' };

function role(name: string, rules: RoleRule[]): Role {
  const r = RoleKind.check({ apiVersion: API_VERSION, kind: 'Role', metadata: { name }, spec: { rules } });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.value;
}

function binding(name: string, roleRef: string, subjects: { kind: 'User' | 'Group'; name: string }[]): RoleBinding {
  const r = RoleBindingKind.check({ apiVersion: API_VERSION, kind: 'RoleBinding', metadata: { name }, spec: { roleRef, subjects } });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.value;
}

function policy(kind: string, spec: unknown, namespace = 'prod', name = 'p'): ApiObject {
  const [o] = parseAndValidate(JSON.stringify({ apiVersion: API_VERSION, kind, metadata: { name, namespace }, spec }));
  return o!;
}

/** alice's decision on `perm` with one Role of `rules` bound to her user. */
function decide(rules: RoleRule[], perm: Permission, who: Principal = alice) {
  return authorize([role('r', rules)], [binding('b', 'r', [{ kind: 'User', name: 'alice' }])], who, perm);
}

const shift = policy('TrafficPolicy', { destinations: [{ name: 'reviews' }], routes: [{ split: [{ subset: { version: 'v1' }, weight: 100 }] }] });
const shiftAndFault = policy('TrafficPolicy', { destinations: [{ name: 'reviews' }], routes: [{ split: [{ subset: { version: 'v1' }, weight: 100 }], fault: { abort: { percent: 10 } } }] });

describe('Role and RoleBinding kinds', () => {
  const check = (spec: unknown) => RoleKind.check({ apiVersion: API_VERSION, kind: 'Role', metadata: { name: 'r' }, spec });
  const errors = (spec: unknown) => {
    const r = check(spec);
    assert.equal(r.ok, false, 'expected rejection');
    return r.ok ? [] : r.errors;
  };

  it('accepts a full rule and is cluster-scoped', () => {
    const r = check({
      rules: [
        {
          kinds: ['TrafficPolicy'],
          verbs: ['create', 'update'],
          namespaces: ['team-*'],
          clusters: ['*'],
          names: ['canary'],
          actions: ['traffic-shift'],
          destinations: [{ name: 'reviews', labels: { '*': '*' } }],
          workloads: [{ cluster: 'c1' }],
        },
      ],
    });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    assert.deepEqual(
      errors({ rules: [] }).map((e) => e.path),
      ['/spec/rules'],
    );
    const ns = RoleKind.check({ apiVersion: API_VERSION, kind: 'Role', metadata: { name: 'r', namespace: 'x' }, spec: { rules: [{ kinds: ['*'], verbs: ['read'] }] } });
    assert.equal(ns.ok, false);
    assert.deepEqual(!ns.ok && ns.errors, [{ path: '/metadata/namespace', message: 'Role is not namespaced' }]);
  });

  it('names the field of an unknown verb, an operation verb on the wrong kind, a bad pattern, a duplicate', () => {
    const unknown = errors({ rules: [{ kinds: ['Cluster'], verbs: ['read', 'destroy'] }] });
    assert.equal(unknown[0]!.path, '/spec/rules/0/verbs/1');
    assert.match(unknown[0]!.message, /unknown verb "destroy"/);
    assert.match(errors({ rules: [{ kinds: ['*'], verbs: ['watch'] }] })[0]!.message, /watch is asked as read/);
    const wrongKind = errors({ rules: [{ kinds: ['TrafficPolicy'], verbs: ['rotate-root'] }] });
    assert.deepEqual(wrongKind, [{ path: '/spec/rules/0/verbs/0', message: 'verb "rotate-root" applies to kind Trust only, and kinds lists none of it' }]);
    assert.ok(
      check({
        rules: [
          { kinds: ['Trust'], verbs: ['rotate-root', 'read'] },
          { kinds: ['*'], verbs: ['mint-join-token'] },
        ],
      }).ok,
    );
    assert.ok(errors({ rules: [{ kinds: ['*'], verbs: ['read'], namespaces: ['a*b'] }] }).some((e) => e.path === '/spec/rules/0/namespaces/0'));
    assert.ok(errors({ rules: [{ kinds: ['*'], verbs: ['read'], actions: ['Fault Injection'] }] }).some((e) => e.path === '/spec/rules/0/actions/0'));
    assert.deepEqual(errors({ rules: [{ kinds: ['*'], verbs: ['read', 'read'] }] }), [{ path: '/spec/rules/0/verbs/1', message: '"read" is listed twice' }]);
    assert.ok(errors({ rules: [{ kinds: ['*'], verbs: ['read'], selectors: [] }] }).some((e) => e.path.startsWith('/spec/rules/0')));
  });

  it('RoleBinding: roleRef and subjects, each field named', () => {
    const check2 = (spec: unknown) => RoleBindingKind.check({ apiVersion: API_VERSION, kind: 'RoleBinding', metadata: { name: 'b' }, spec });
    assert.ok(check2({ roleRef: 'r', subjects: [{ kind: 'Group', name: 'team-a' }] }).ok);
    const bad = check2({ roleRef: 'r', subjects: [{ kind: 'Robot', name: 'x' }] });
    assert.ok(!bad.ok && bad.errors.some((e) => e.path.startsWith('/spec/subjects/0/kind')), JSON.stringify(bad));
    const dup = check2({
      roleRef: 'r',
      subjects: [
        { kind: 'User', name: 'a' },
        { kind: 'User', name: 'a' },
      ],
    });
    assert.deepEqual(!dup.ok && dup.errors, [{ path: '/spec/subjects/1', message: 'subject User "a" is listed twice' }]);
    const noRef = check2({ subjects: [{ kind: 'User', name: 'a' }] });
    assert.ok(!noRef.ok && noRef.errors.some((e) => e.path === '/spec/roleRef'), JSON.stringify(noRef));
  });

  it('is served by the API but never sent to agents', () => {
    assert.equal(parseAndValidate(JSON.stringify({ apiVersion: API_VERSION, kind: 'Role', metadata: { name: 'r' }, spec: { rules: [{ kinds: ['*'], verbs: ['read'] }] } }))[0]!.kind, 'Role');
    assert.equal(VIEW_KINDS.has('Role'), false);
    assert.equal(VIEW_KINDS.has('RoleBinding'), false);
    assert.equal(VIEW_KINDS.has('TrafficPolicy'), true);
  });
});

describe('patterns', () => {
  it("match exact, '*' and prefixes", () => {
    assert.ok(matchPattern('*', 'x'));
    assert.ok(matchPattern('team-*', 'team-a'));
    assert.ok(matchPattern('team-*', 'team-'));
    assert.ok(!matchPattern('team-*', 'teams'));
    assert.ok(matchPattern('prod', 'prod'));
    assert.ok(!matchPattern('prod', 'prod2'));
  });
  it('cover narrower patterns only', () => {
    assert.ok(patternCovers('*', '*'));
    assert.ok(patternCovers('team-*', 'team-a-*'));
    assert.ok(patternCovers('team-*', 'team-x'));
    assert.ok(!patternCovers('team-*', '*'));
    assert.ok(!patternCovers('team-a-*', 'team-*'));
    assert.ok(!patternCovers('prod', 'prod*'));
  });
});

describe('authorize', () => {
  const create = (extra: Partial<Permission> = {}): Permission => ({ verb: 'create', kind: 'TrafficPolicy', namespace: 'prod', name: 'p', ...extra });

  it('denies without any binding, and allows the superuser group everything', () => {
    const d = authorize([], [], bob, create());
    assert.deepEqual(d, { allowed: false, reason: 'user bob may not create TrafficPolicy "p" in namespace prod: no role allows it (no RoleBinding names it or its groups)' });
    const a = authorize([], [], admin, { verb: 'rotate-root', kind: 'Trust' });
    assert.equal(a.allowed, true);
    assert.match(a.reason, /meshfed:admins/);
  });

  it('verbs: exact, * and watch as read', () => {
    assert.ok(decide([{ kinds: ['TrafficPolicy'], verbs: ['create'] }], create()).allowed);
    assert.ok(!decide([{ kinds: ['TrafficPolicy'], verbs: ['update'] }], create()).allowed);
    assert.ok(decide([{ kinds: ['TrafficPolicy'], verbs: ['*'] }], create()).allowed);
    assert.ok(decide([{ kinds: ['TrafficPolicy'], verbs: ['read'] }], { verb: 'watch', kind: 'TrafficPolicy' }).allowed);
    assert.ok(!decide([{ kinds: ['TrafficPolicy'], verbs: ['read'] }], { verb: 'plan', kind: 'TrafficPolicy' }).allowed);
  });

  it('kinds: exact, * and prefix; hub operations on pseudo-kinds', () => {
    assert.ok(decide([{ kinds: ['*'], verbs: ['create'] }], create()).allowed);
    assert.ok(decide([{ kinds: ['Traffic*'], verbs: ['create'] }], create()).allowed);
    assert.ok(!decide([{ kinds: ['FailoverPolicy'], verbs: ['create'] }], create()).allowed);
    const trustReader = [{ kinds: ['Trust'], verbs: ['read'] }];
    assert.ok(decide(trustReader, { verb: 'read', kind: 'Trust' }).allowed);
    const rotate = decide(trustReader, { verb: 'rotate-root', kind: 'Trust' });
    assert.deepEqual(rotate, { allowed: false, reason: 'user alice may not rotate-root Trust: no role allows it' });
  });

  it('namespaces: a namespaced rule allows neither other namespaces nor cluster-wide requests', () => {
    const rules = [{ kinds: ['TrafficPolicy'], verbs: ['create', 'read'], namespaces: ['team-*', 'dev'] }];
    assert.ok(decide(rules, create({ namespace: 'team-a' })).allowed);
    assert.ok(decide(rules, create({ namespace: 'dev' })).allowed);
    const prod = decide(rules, create());
    assert.deepEqual(prod, { allowed: false, reason: 'user alice may not create TrafficPolicy "p" in namespace prod: no role allows it' });
    assert.ok(!decide(rules, { verb: 'read', kind: 'TrafficPolicy' }).allowed, 'a list across namespaces needs every namespace');
  });

  it("clusters: a discovered object's cluster, and a Cluster's (or join token's) own name", () => {
    const rules = [{ kinds: ['Cluster', 'Service'], verbs: ['read', 'mint-join-token'], clusters: ['edge-*'] }];
    assert.ok(decide(rules, { verb: 'mint-join-token', kind: 'Cluster', name: 'edge-1' }).allowed);
    const core = decide(rules, { verb: 'mint-join-token', kind: 'Cluster', name: 'core' });
    assert.equal(core.reason, 'user alice may not mint-join-token Cluster "core": no role allows it');
    assert.ok(decide(rules, { verb: 'read', kind: 'Service', namespace: 'x', cluster: 'edge-2', name: 's' }).allowed);
    assert.ok(!decide(rules, { verb: 'read', kind: 'Service', namespace: 'x', cluster: 'core', name: 's' }).allowed);
  });

  it('names: exact and prefix; a name-scoped rule allows no list', () => {
    const rules = [{ kinds: ['TrafficPolicy'], verbs: ['update', 'read'], names: ['canary-*'] }];
    assert.ok(decide(rules, create({ verb: 'update', name: 'canary-1' })).allowed);
    assert.ok(!decide(rules, create({ verb: 'update', name: 'main' })).allowed);
    assert.ok(!decide(rules, { verb: 'read', kind: 'TrafficPolicy', namespace: 'prod' }).allowed);
  });

  it('groups: a binding to a group the credential carries; a User subject is not a group', () => {
    const r = [role('r', [{ kinds: ['*'], verbs: ['read'] }])];
    assert.ok(authorize(r, [binding('b', 'r', [{ kind: 'Group', name: 'team-a' }])], alice, { verb: 'read', kind: 'Cluster' }).allowed);
    assert.ok(!authorize(r, [binding('b', 'r', [{ kind: 'Group', name: 'team-a' }])], bob, { verb: 'read', kind: 'Cluster' }).allowed);
    assert.ok(!authorize(r, [binding('b', 'r', [{ kind: 'User', name: 'team-a' }])], alice, { verb: 'read', kind: 'Cluster' }).allowed);
    const agent: Principal = { kind: 'agent', name: 'alice', groups: [], via: 'certificate', credentialId: 's' };
    assert.ok(!authorize(r, [binding('b', 'r', [{ kind: 'User', name: 'alice' }])], agent, { verb: 'read', kind: 'Cluster' }).allowed, 'an agent is not the user of the same name');
    assert.ok(!authorize([], [binding('b', 'missing', [{ kind: 'User', name: 'alice' }])], alice, { verb: 'read', kind: 'Cluster' }).allowed, 'a binding to a missing Role grants nothing');
  });

  it('the allowed reason names the Role, rule and RoleBinding', () => {
    const d = authorize(
      [
        role('viewer', [
          { kinds: ['Trust'], verbs: ['rotate-root'] },
          { kinds: ['*'], verbs: ['read'] },
        ]),
      ],
      [binding('alice-views', 'viewer', [{ kind: 'User', name: 'alice' }])],
      alice,
      { verb: 'read', kind: 'Mesh' },
    );
    assert.deepEqual(d, { allowed: true, reason: 'allowed by Role viewer (rule 1) through RoleBinding alice-views' });
  });

  it('actions: may shift traffic but not inject faults', () => {
    const shifter = [{ kinds: ['TrafficPolicy'], verbs: ['create'], namespaces: ['prod'], actions: ['traffic-shift', 'retries'] }];
    assert.ok(decide(shifter, permissionFor('create', shift)).allowed);
    const fault = decide(shifter, permissionFor('create', shiftAndFault));
    assert.deepEqual(fault, { allowed: false, reason: 'user alice may not create TrafficPolicy "p" in namespace prod: no role allows action fault-injection' });
    assert.ok(decide([{ kinds: ['TrafficPolicy'], verbs: ['create'], actions: ['*'] }], permissionFor('create', shiftAndFault)).allowed);
    assert.ok(decide([{ kinds: ['TrafficPolicy'], verbs: ['create'] }], permissionFor('create', shiftAndFault)).allowed, 'a rule without actions allows any');
  });

  it('actions: one rule must allow them all (two rules of one action each do not combine)', () => {
    const split = [
      { kinds: ['TrafficPolicy'], verbs: ['create'], actions: ['traffic-shift'] },
      { kinds: ['TrafficPolicy'], verbs: ['create'], actions: ['fault-injection'] },
    ];
    assert.ok(!decide(split, permissionFor('create', shiftAndFault)).allowed);
  });

  it('actions: AccessPolicy allow vs deny, FailoverPolicy failover', () => {
    const allowOnly = [{ kinds: ['AccessPolicy'], verbs: ['create'], actions: ['allow'] }];
    const allowPolicy = policy('AccessPolicy', { action: 'ALLOW', destinations: [{ name: 'reviews' }] });
    const denyPolicy = policy('AccessPolicy', { action: 'DENY', destinations: [{ name: 'reviews' }] });
    assert.ok(decide(allowOnly, permissionFor('create', allowPolicy)).allowed);
    assert.match(decide(allowOnly, permissionFor('create', denyPolicy)).reason, /no role allows action deny$/);
    const fo = policy('FailoverPolicy', { destinations: [{ name: 'reviews' }] });
    assert.ok(
      !decide(
        allowOnly.map((r) => ({ ...r, kinds: ['*'] })),
        permissionFor('create', fo),
      ).allowed,
    );
    assert.ok(decide([{ kinds: ['*'], verbs: ['create'], actions: ['failover'] }], permissionFor('create', fo)).allowed);
  });

  it('destinations: every destination of the object within a selector', () => {
    const rules = [{ kinds: ['TrafficPolicy'], verbs: ['create'], destinations: [{ namespace: 'prod', name: 'reviews' }, { labels: { team: 'a' } }] }];
    assert.ok(decide(rules, permissionFor('create', shift)).allowed);
    const two = policy('TrafficPolicy', { destinations: [{ name: 'reviews' }, { name: 'ratings' }], loadBalancing: {} });
    const d = decide(rules, permissionFor('create', two));
    assert.equal(d.reason, 'user alice may not create TrafficPolicy "p" in namespace prod: destination {namespace: prod, name: ratings} is outside the destinations its roles allow');
    const labelled = policy('TrafficPolicy', { destinations: [{ labels: { team: 'a', tier: 'web' } }], loadBalancing: {} });
    assert.ok(decide(rules, permissionFor('create', labelled)).allowed);
    const everything = policy('TrafficPolicy', { destinations: [{}], loadBalancing: {} });
    assert.ok(!decide(rules, permissionFor('create', everything)).allowed, 'a destination selecting every service of the namespace is within no narrower selector');
    const otherNs = policy('TrafficPolicy', { destinations: [{ name: 'reviews' }], loadBalancing: {} }, 'dev');
    assert.ok(!decide(rules, permissionFor('create', otherNs)).allowed);
  });

  it("destinations: wildcards ({'*': '*'} labels, name '*', cluster prefix)", () => {
    const rules = [{ kinds: ['TrafficPolicy'], verbs: ['create'], destinations: [{ namespace: 'prod', name: '*', labels: { '*': '*' }, cluster: 'edge-*' }] }];
    const edge = policy('TrafficPolicy', { destinations: [{ cluster: 'edge-1' }], loadBalancing: {} });
    assert.ok(decide(rules, permissionFor('create', edge)).allowed);
    const anyCluster = policy('TrafficPolicy', { destinations: [{ name: 'reviews' }], loadBalancing: {} });
    assert.ok(!decide(rules, permissionFor('create', anyCluster)).allowed);
  });

  it('workloads: the sources of the object, and no sources means every caller', () => {
    const rules = [{ kinds: ['AccessPolicy'], verbs: ['create'], workloads: [{ namespace: 'prod', serviceAccount: 'web-*' }] }];
    const ok = policy('AccessPolicy', { action: 'ALLOW', destinations: [{ name: 'reviews' }], sources: [{ namespace: 'prod', serviceAccount: 'web-frontend' }] });
    assert.ok(decide(rules, permissionFor('create', ok)).allowed);
    const foreign = policy('AccessPolicy', { action: 'ALLOW', destinations: [{ name: 'reviews' }], sources: [{ namespace: 'prod', serviceAccount: 'web-frontend' }, { namespace: 'kube-system' }] });
    assert.match(decide(rules, permissionFor('create', foreign)).reason, /source \{namespace: kube-system\} is outside the workloads its roles allow$/);
    const anyone = policy('AccessPolicy', { action: 'ALLOW', destinations: [{ name: 'reviews' }] });
    assert.match(decide(rules, permissionFor('create', anyone)).reason, /source \{\} \(everything\) is outside/);
    assert.ok(decide([{ kinds: ['AccessPolicy'], verbs: ['create'], workloads: [{ namespace: '*' }] }], permissionFor('create', anyone)).allowed);
  });

  it('selector-scoped rules: a write must carry its object, a read need not', () => {
    const rules = [{ kinds: ['TrafficPolicy'], verbs: ['delete', 'read'], destinations: [{ name: 'reviews' }] }];
    assert.match(decide(rules, { verb: 'delete', kind: 'TrafficPolicy', namespace: 'prod', name: 'p' }).reason, /carries no object to check$/);
    assert.ok(decide(rules, permissionFor('delete', shift)).allowed);
    assert.ok(decide(rules, { verb: 'read', kind: 'TrafficPolicy', namespace: 'prod' }).allowed);
    const question = authorize([role('r', rules)], [binding('b', 'r', [{ kind: 'User', name: 'alice' }])], alice, { verb: 'delete', kind: 'TrafficPolicy', namespace: 'prod' }, true);
    assert.deepEqual(question, { allowed: true, reason: 'allowed by Role r (rule 0) through RoleBinding b, only for objects within its destination and workload selectors' });
  });

  it('the deny reason comes from the rule that came closest', () => {
    const rules = [
      { kinds: ['Cluster'], verbs: ['read'] },
      { kinds: ['TrafficPolicy'], verbs: ['create'], actions: ['traffic-shift'] },
    ];
    assert.match(decide(rules, permissionFor('create', shiftAndFault)).reason, /action fault-injection$/);
  });
});

describe('checkEscalation', () => {
  const teamRole = role('team', [{ kinds: ['TrafficPolicy'], verbs: ['create', 'update', 'read'], namespaces: ['team-*'], actions: ['traffic-shift', 'retries'] }]);
  const aliceTeam = binding('alice-team', 'team', [{ kind: 'User', name: 'alice' }]);
  const roleAdmin = role('role-admin', [{ kinds: ['Role', 'RoleBinding'], verbs: ['create', 'update'] }]);
  const aliceRoles = binding('alice-roles', 'role-admin', [{ kind: 'User', name: 'alice' }]);
  const roles = [teamRole, roleAdmin];
  const bindings = [aliceTeam, aliceRoles];

  it('allows granting a subset of what one holds', () => {
    const narrower = role('narrow', [{ kinds: ['TrafficPolicy'], verbs: ['create'], namespaces: ['team-a', 'team-b-*'], actions: ['traffic-shift'] }]);
    const d = checkEscalation(roles, bindings, alice, narrower);
    assert.deepEqual(d, { allowed: true, reason: 'user alice holds every rule of Role narrow' });
    assert.ok(checkEscalation(roles, bindings, alice, binding('bob-team', 'team', [{ kind: 'User', name: 'bob' }])).allowed);
  });

  it('refuses a Role with more verbs, kinds, namespaces or actions than held, naming the rule', () => {
    const more = role('more', [
      { kinds: ['TrafficPolicy'], verbs: ['read'], namespaces: ['team-a'], actions: ['retries'] },
      { kinds: ['TrafficPolicy'], verbs: ['create'], namespaces: ['team-a'], actions: ['traffic-shift', 'fault-injection'] },
    ]);
    assert.deepEqual(checkEscalation(roles, bindings, alice, more), {
      allowed: false,
      reason: 'user alice may not grant Role more rule 1 (create TrafficPolicy, namespaces team-a, actions traffic-shift,fault-injection): it does not hold that permission itself',
    });
    assert.ok(!checkEscalation(roles, bindings, alice, role('x', [{ kinds: ['TrafficPolicy'], verbs: ['delete'], namespaces: ['team-a'], actions: ['retries'] }])).allowed);
    assert.ok(!checkEscalation(roles, bindings, alice, role('x', [{ kinds: ['*'], verbs: ['create'], namespaces: ['team-a'], actions: ['retries'] }])).allowed);
    assert.ok(!checkEscalation(roles, bindings, alice, role('x', [{ kinds: ['TrafficPolicy'], verbs: ['create'], namespaces: ['prod'], actions: ['retries'] }])).allowed);
    assert.ok(!checkEscalation(roles, bindings, alice, role('x', [{ kinds: ['TrafficPolicy'], verbs: ['create'] }])).allowed, 'every namespace is more than team-*');
    assert.ok(!checkEscalation(roles, bindings, alice, role('x', [{ kinds: ['TrafficPolicy'], verbs: ['create'], namespaces: ['team-a'] }])).allowed, 'any action is more than two');
  });

  it('refuses binding a Role one does not hold, and binding a Role that does not exist', () => {
    const trust = role('trust-admin', [{ kinds: ['Trust'], verbs: ['rotate-root'] }]);
    const d = checkEscalation([...roles, trust], bindings, alice, binding('self', 'trust-admin', [{ kind: 'User', name: 'alice' }]));
    assert.equal(d.allowed, false);
    assert.match(d.reason, /may not grant Role trust-admin \(through RoleBinding self\) rule 0 \(rotate-root Trust\)/);
    const missing = checkEscalation(roles, bindings, alice, binding('later', 'not-yet', [{ kind: 'User', name: 'alice' }]));
    assert.equal(missing.allowed, false);
    assert.match(missing.reason, /the Role does not exist/);
    assert.ok(checkEscalation([], [], admin, binding('later', 'not-yet', [{ kind: 'User', name: 'alice' }])).allowed);
  });

  it('verbs and kinds may come from different held rules; selectors must be as narrow', () => {
    const held = [
      role('a', [
        { kinds: ['Cluster'], verbs: ['read'] },
        { kinds: ['Cluster'], verbs: ['mint-join-token'], clusters: ['edge-*'] },
        { kinds: ['TrafficPolicy'], verbs: ['create'], destinations: [{ namespace: 'prod', labels: { team: 'a' } }] },
      ]),
    ];
    const hb = [binding('b', 'a', [{ kind: 'Group', name: 'team-a' }])];
    assert.ok(checkEscalation(held, hb, alice, role('x', [{ kinds: ['Cluster'], verbs: ['read', 'mint-join-token'], clusters: ['edge-1'] }])).allowed);
    assert.ok(!checkEscalation(held, hb, alice, role('x', [{ kinds: ['Cluster'], verbs: ['read', 'mint-join-token'] }])).allowed);
    assert.ok(checkEscalation(held, hb, alice, role('x', [{ kinds: ['TrafficPolicy'], verbs: ['create'], destinations: [{ namespace: 'prod', name: 'r', labels: { team: 'a' } }] }])).allowed);
    assert.ok(!checkEscalation(held, hb, alice, role('x', [{ kinds: ['TrafficPolicy'], verbs: ['create'], destinations: [{ namespace: 'prod' }] }])).allowed);
    assert.ok(!checkEscalation(held, hb, alice, role('x', [{ kinds: ['TrafficPolicy'], verbs: ['create'] }])).allowed);
  });
});

describe('actionsOf and permissionsFor', () => {
  it('TrafficPolicy: one action per feature', () => {
    const tp = policy('TrafficPolicy', {
      destinations: [{ name: 'reviews' }],
      routes: [{ match: { path: { prefix: '/a' } }, retries: { attempts: 2 }, timeout: '1s' }, { split: [{ weight: 100 }] }],
      loadBalancing: { policy: 'ROUND_ROBIN' },
      outlierDetection: {},
    });
    assert.deepEqual(pluginOf('TrafficPolicy')!.actionsOf!(tp), ['traffic-shift', 'retries', 'timeouts', 'load-balancing', 'outlier-detection']);
    assert.deepEqual(pluginOf('TrafficPolicy')!.actionsOf!(shiftAndFault), ['traffic-shift', 'fault-injection']);
    const lbOnly = policy('TrafficPolicy', { destinations: [{ name: 'reviews' }], loadBalancing: {} });
    assert.deepEqual(pluginOf('TrafficPolicy')!.actionsOf!(lbOnly), ['load-balancing']);
  });

  it('FailoverPolicy and AccessPolicy', () => {
    assert.deepEqual(pluginOf('FailoverPolicy')!.actionsOf!(policy('FailoverPolicy', { destinations: [{}] })), ['failover']);
    assert.deepEqual(pluginOf('AccessPolicy')!.actionsOf!(policy('AccessPolicy', { action: 'DENY', destinations: [{}] })), ['deny']);
    assert.deepEqual(pluginOf('AccessPolicy')!.actionsOf!(policy('AccessPolicy', { action: 'ALLOW', destinations: [{}] })), ['allow']);
  });

  it('the Permission of a write carries scope, actions and the object', () => {
    const p = permissionFor('create', shiftAndFault);
    assert.deepEqual({ ...p, object: undefined }, { verb: 'create', kind: 'TrafficPolicy', name: 'p', namespace: 'prod', actions: ['traffic-shift', 'fault-injection'], object: undefined });
    assert.equal(p.object, shiftAndFault);
    const [cl] = parseAndValidate(JSON.stringify({ apiVersion: API_VERSION, kind: 'Cluster', metadata: { name: 'edge-1' }, spec: { region: 'r', zones: ['z'] } }));
    const cp = permissionFor('delete', cl!);
    assert.equal(cp.cluster, 'edge-1');
    assert.equal(cp.actions, undefined);
  });

  it('an update asks for the stored object too when it used more (removing a fault needs fault-injection)', () => {
    assert.equal(permissionsFor('update', shiftAndFault, shiftAndFault).length, 1);
    const perms = permissionsFor('update', shift, shiftAndFault);
    assert.equal(perms.length, 2);
    const shifter = [{ kinds: ['TrafficPolicy'], verbs: ['update'], actions: ['traffic-shift'] }];
    assert.deepEqual(
      perms.map((x) => decide(shifter, x).allowed),
      [true, false],
    );
    assert.equal(permissionsFor('create', shift).length, 1);
  });
});

describe('the docs/api.md example', () => {
  it('a team that may shift traffic in its namespace but not inject faults', async () => {
    const { readFile } = await import('node:fs/promises');
    const md = await readFile(new URL('../../../docs/api.md', import.meta.url), 'utf8');
    const block = [...md.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('name: team-a-traffic'));
    assert.ok(block, 'the Role example is in docs/api.md');
    const objects = parseAndValidate(block, 'docs/api.md');
    const roles = objects.filter((o): o is Role => o.kind === 'Role');
    const bindings = objects.filter((o): o is RoleBinding => o.kind === 'RoleBinding');
    const canary = policy('TrafficPolicy', { destinations: [{ name: 'reviews' }], routes: [{ split: [{ subset: { version: 'v1' }, weight: 100 }], timeout: '1s' }] }, 'team-a');
    const faulty = policy('TrafficPolicy', { destinations: [{ name: 'reviews' }], routes: [{ split: [{ subset: { version: 'v1' }, weight: 100 }], fault: { abort: { percent: 5 } } }] }, 'team-a');
    const elsewhere = policy('TrafficPolicy', { destinations: [{ name: 'reviews' }], routes: [{ split: [{ subset: { version: 'v1' }, weight: 100 }] }] }, 'team-b');
    const carol: Principal = { kind: 'user', name: 'carol', groups: ['team-a'], via: 'token', credentialId: 't3' };
    assert.ok(authorize(roles, bindings, carol, permissionFor('create', canary)).allowed);
    assert.equal(authorize(roles, bindings, carol, permissionFor('create', faulty)).reason, 'user carol may not create TrafficPolicy "p" in namespace team-a: no role allows action fault-injection');
    assert.ok(!authorize(roles, bindings, carol, permissionFor('create', elsewhere)).allowed);
    assert.ok(!authorize(roles, bindings, carol, { verb: 'rotate-root', kind: 'Trust' }).allowed);
    assert.ok(authorize(roles, bindings, carol, { verb: 'watch', kind: 'Workload', namespace: 'team-a', cluster: 'cluster1' }).allowed);
  });
});

describe('authorizeWrites (one request, all or nothing)', () => {
  const teamRole = role('team', [
    { kinds: ['TrafficPolicy'], verbs: ['create', 'update', 'delete'], namespaces: ['prod'], actions: ['traffic-shift'] },
    { kinds: ['Role', 'RoleBinding'], verbs: ['create', 'update'] },
  ]);
  const rbac = { roles: [teamRole], bindings: [binding('alice-team', 'team', [{ kind: 'User', name: 'alice' }])] };

  it('allows when every object is allowed, refuses naming the first denial', () => {
    assert.deepEqual(authorizeWrites(rbac, alice, [{ verb: 'create', object: shift }]), { allowed: true, reason: '1 write allowed' });
    const d = authorizeWrites(rbac, alice, [
      { verb: 'create', object: shift },
      { verb: 'create', object: policy('TrafficPolicy', { destinations: [{ name: 'x' }], routes: [{ split: [{ weight: 100 }] }] }, 'dev', 'q') },
    ]);
    assert.equal(d.allowed, false);
    assert.equal(d.reason, 'user alice may not create TrafficPolicy "q" in namespace dev: no role allows it');
    assert.equal(d.denied?.name, 'q');
    assert.equal(authorizeWrites(rbac, alice, [{ verb: 'update', object: shift, previous: shiftAndFault }]).allowed, false, 'removing a fault needs fault-injection');
  });

  it('checks escalation of Roles and RoleBindings, a Role written in the same request included', () => {
    const narrow = role('narrow', [{ kinds: ['TrafficPolicy'], verbs: ['create'], namespaces: ['prod'], actions: ['traffic-shift'] }]);
    const wide = role('wide', [{ kinds: ['TrafficPolicy'], verbs: ['create'], namespaces: ['prod'] }]);
    const bindTo = (r: string) => binding(`bob-${r}`, r, [{ kind: 'User', name: 'bob' }]);
    assert.ok(
      authorizeWrites(rbac, alice, [
        { verb: 'create', object: narrow },
        { verb: 'create', object: bindTo('narrow') },
      ]).allowed,
    );
    const d = authorizeWrites(rbac, alice, [
      { verb: 'create', object: bindTo('wide') },
      { verb: 'create', object: wide },
    ]);
    assert.equal(d.allowed, false);
    assert.match(d.reason, /may not grant Role wide/);
    assert.equal(authorizeWrites(rbac, alice, [{ verb: 'create', object: bindTo('nothing') }]).allowed, false);
    assert.ok(authorizeWrites({ roles: [...rbac.roles, wide], bindings: rbac.bindings }, admin, [{ verb: 'create', object: bindTo('wide') }]).allowed);
  });
});
