// Root rotation in explicit phases, as changes of the trust state:
//   none --add--> new-root-in-bundle (the new root is trusted, the old one signs)
//        --activate--> new-root-active (the new root signs, the old one is still trusted)
//        --retire--> none (the old root leaves the bundle; refused while a cluster
//                          still holds certificates under it, unless forced)
// Pure: whether a step may run now, and what it does to a draft of the state.
// HubTrust (trust.ts) does the rest (keys on disk, the hub's certificate,
// telling agents). Refusals are MeshfedErrors (conflict: wrong phase).
import { MeshfedError } from '../util/errors.js';
import type { TrustState } from './trust-state.js';

export type RotationStep = 'add' | 'activate' | 'retire';

/** Why `step` cannot run in this state, or undefined. `clusters`: the Clusters that exist (others are not waited for). */
export function rotationRefusal(state: TrustState, step: RotationStep, opts: { force?: boolean; clusters?: string[] }): MeshfedError | undefined {
  if (state.mode === 'external') {
    return new MeshfedError(
      'conflict',
      'the mesh CA is user-supplied (--ca-cert): rotate it outside meshfed, then restart the hub with the new --ca-cert/--ca-key, keeping the old root in --ca-roots until every intermediate is re-issued',
      { reason: 'ExternalCa' },
    );
  }
  const phase = state.rotation?.phase ?? 'none';
  const conflict = (msg: string): MeshfedError => new MeshfedError('conflict', msg, { reason: 'RotationPhase' });
  if (step === 'add') {
    if (phase !== 'none') return conflict(`a root rotation is already in progress (phase ${phase}): the next step is ${phase === 'new-root-in-bundle' ? '--activate' : '--retire'}`);
    return undefined;
  }
  if (step === 'activate') {
    if (phase !== 'new-root-in-bundle')
      return conflict(phase === 'none' ? 'no root rotation in progress: start one with meshfed trust rotate-root' : `the new root is already active (phase ${phase}): the next step is --retire`);
    return undefined;
  }
  if (phase !== 'new-root-active') return conflict(phase === 'none' ? 'no root rotation in progress' : `the new root does not sign yet (phase ${phase}): run --activate first`);
  if (opts.force) return undefined;
  const newRoot = state.rotation!.newRoot;
  const pending: string[] = [];
  for (const [name, ct] of Object.entries(state.clusters)) {
    if (ct.revoked || (opts.clusters && !opts.clusters.includes(name))) continue;
    if (ct.intermediate && ct.intermediate.root !== newRoot) pending.push(`${name} (intermediate)`);
    const newest = ct.agentCerts.at(-1);
    if (newest && newest.root !== newRoot) pending.push(`${name} (agent certificate)`);
  }
  if (pending.length) {
    return conflict(`not yet re-issued under the new root: ${pending.join(', ')}; their agents re-issue when connected. Retiring the old root now cuts them off; --force to do it anyway`);
  }
  return undefined;
}

/** add: the new root joins the bundle; the active one still signs. */
export function addNewRoot(draft: TrustState, root: { fingerprint: string; certPem: string }, now: Date): void {
  const old = draft.roots.find((r) => r.phase === 'active')!;
  draft.roots.push({ fingerprint: root.fingerprint, certPem: root.certPem, phase: 'bundle-only', createdAt: now.toISOString() });
  draft.rotation = { phase: 'new-root-in-bundle', since: now.toISOString(), newRoot: root.fingerprint, oldRoot: old.fingerprint };
}

/** activate: the new root signs; the old one stays in the bundle. */
export function activateNewRoot(draft: TrustState, now: Date): void {
  const rot = draft.rotation!;
  for (const r of draft.roots) {
    if (r.fingerprint === rot.newRoot) r.phase = 'active';
    else if (r.fingerprint === rot.oldRoot) r.phase = 'bundle-only';
  }
  draft.rotation = { ...rot, phase: 'new-root-active', since: now.toISOString() };
}

/** retire: the old root (as the checked state named it) leaves the bundle and the rotation ends. */
export function retireOldRoot(draft: TrustState, oldRoot: string, now: Date): void {
  for (const r of draft.roots) {
    if (r.fingerprint === oldRoot) {
      r.phase = 'retired';
      r.retiredAt = now.toISOString();
    }
  }
  delete draft.rotation;
}
