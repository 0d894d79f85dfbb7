// Server listeners: the xDS server asks for the listener of a local server at
// address:port; its mTLS mode and the filters of the server-side policy
// plugins (AccessPolicy's RBAC, with the Mesh's access default) come from
// here, and so does the decision when every server listener is re-evaluated.
// No policy kind is named here: the plugins say what they need.
//
// Invariants: server listeners are re-evaluated only when something they read
// changed (AccessPolicies or the access default, local registrations, or any
// workload when a policy resolves labels to identities), once the compiler's
// queue is empty, and access refreshes are spaced by ACCESS_REFRESH_SPACING_MS;
// the xDS server pushes only listeners whose content changed.
import { meshSettings, type MtlsMode } from '../api/index.js';
import { viewIdentities } from '../policies/common.js';
import type { ServerContext, WorkloadIdentityRef } from '../policies/plugin.js';
import { serverPoliciesReadWorkloads, serverPolicyFilters, translateServerListener } from '../translate/xds/index.js';
import type { XdsResource } from '../xdsapi/index.js';
import type { ViewState } from './view-state.js';
import { listenerTarget, unknownTarget } from '../translate/xds/index.js';
import { serviceMode } from '../api/index.js';

/**
 * Minimum time between two access-policy refreshes of the server listeners.
 * grpc-js-xds servers switch listeners by draining the old connections; a
 * connection whose TLS handshake straddles a switch escapes the drain and keeps
 * the old RBAC until it closes (observed with 1.14.1). Clients reconnect right
 * after a switch, so a second switch within a few ms (two policies deleted one
 * after the other) could strand them: changes in a burst are applied together.
 */
const ACCESS_REFRESH_SPACING_MS = 250;

export class ServerListeners {
  /** AccessPolicies or the Mesh's access default changed: server listeners are re-evaluated when the compiler settles. */
  private accessDirty = false;
  /** Workloads of the view for label sources, computed once per recompute (only when a policy has labels). */
  private accessEndpoints: WorkloadIdentityRef[] | undefined;
  private lastAccessRefresh = -Infinity;
  private accessRefreshTimer: NodeJS.Timeout | undefined;
  /** Services were re-translated since server listeners were last re-evaluated for access. */
  private touchedSinceAccess = false;

  /** refresh: has the xDS server re-evaluate every server listener (AdsServer.refreshServerListeners). */
  constructor(
    private readonly cluster: string,
    private readonly state: ViewState,
    private readonly refresh: () => void,
  ) {}

  /** The xDS server's serverListener callback. */
  resource(name: string): XdsResource | undefined {
    return translateServerListener(
      name,
      (address, port) => this.serverMode(address, port),
      (address, port, mode) => this.serverAccess(address, port, mode),
    );
  }

  /** AccessPolicies or the access default changed (re-evaluated once the compiler settles). */
  accessChanged(): void {
    this.accessDirty = true;
  }

  /** The Mesh's mTLS settings changed: every server listener now. */
  securityChanged(): void {
    this.refresh();
  }

  /** Local registrations changed: which service listens at an address may have changed. */
  localChanged(): void {
    // Per-service mTLS modes: now.
    if (this.state.security?.serviceModes.size) this.refresh();
    // So may the AccessPolicies that select the workload at an address (once the compiler settles).
    if (this.state.accessActive()) this.accessDirty = true;
  }

  /** The compiler re-translated services: the view's workloads may have changed. */
  translated(): void {
    this.accessEndpoints = undefined;
    this.touchedSinceAccess = true;
  }

  /**
   * The compiler's queue is empty. Server listeners carry the RBAC of the
   * AccessPolicies: re-evaluate them when the policies or the default changed,
   * when local registrations changed, or when any workload changed and a policy
   * resolves labels to identities.
   */
  settled(): void {
    if (this.accessDirty || (this.touchedSinceAccess && serverPoliciesReadWorkloads(this.state.policySet()))) {
      this.accessDirty = false;
      this.refreshAccess();
    }
    this.touchedSinceAccess = false;
  }

  stop(): void {
    if (this.accessRefreshTimer) clearTimeout(this.accessRefreshTimer);
  }

  /** Re-evaluates the server listeners now, or with the next changes once ACCESS_REFRESH_SPACING_MS passed since the last time. */
  private refreshAccess(): void {
    const wait = this.lastAccessRefresh + ACCESS_REFRESH_SPACING_MS - performance.now();
    if (wait <= 0) {
      this.lastAccessRefresh = performance.now();
      this.refresh();
      return;
    }
    if (this.accessRefreshTimer) return;
    this.accessRefreshTimer = setTimeout(() => {
      this.accessRefreshTimer = undefined;
      this.lastAccessRefresh = performance.now();
      this.refresh();
    }, wait);
    this.accessRefreshTimer.unref();
  }

  /**
   * mTLS mode of a server listening at address:port: the mode of the service
   * whose local workload listens there; the mesh's mode for an unknown address.
   */
  private serverMode(address: string, port: number): MtlsMode {
    const w = this.state.localWorkloadAt(address, port);
    const security = this.state.security;
    if (w) return serviceMode(security, w.metadata.namespace!, w.spec.service);
    return security?.mode ?? 'DISABLE';
  }

  /**
   * RBAC filters (AccessPolicies, the Mesh's access default) for the server
   * listening at address:port. An address with no registered workload gets
   * only the default (DENY: deny-all until it is registered).
   */
  private serverAccess(address: string, port: number, mode: MtlsMode): Record<string, unknown>[] {
    if (!this.state.accessActive()) return [];
    const fed = this.state.fed;
    const w = this.state.localWorkloadAt(address, port);
    const target = w ? listenerTarget(w, port, fed.get(w.metadata.namespace!, w.spec.service), mode) : unknownTarget(this.cluster, mode);
    const ctx: ServerContext = {
      trustDomain: this.state.security?.trustDomain ?? meshSettings(undefined).trustDomain,
      accessDefault: this.state.accessDefault,
      identities: () => (this.accessEndpoints ??= viewIdentities(fed.view())),
    };
    return serverPolicyFilters(this.state.policySet(), ctx, target);
  }
}
