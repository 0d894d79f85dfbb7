// Shared shapes of the xDS translation. Messages are plain objects in protobufjs
// `fromObject` form with snake_case field names (as Envoy's docs and config dumps
// spell them); an Any is written `{ '@type': TYPE_URL, ...fields }`. Encoding and
// strict field checking live in src/xds/proto.ts, so this folder stays pure.
import type { PolicySet } from '../../policies/resolve.js';
import type { SecuritySettings } from './security.js';

/**
 * What a translation for one agent knows besides the view. Builders read
 * policies through the Backend (`backend.policy`, resolved once per service
 * from `policies` for clients in `cluster`) and mTLS from `security`.
 */
export interface ClientContext {
  /** The cluster whose agent serves these resources. */
  cluster: string;
  /** Region and zones of that cluster: where failover tiers (same zone, same region) are measured from. */
  locality?: { region: string; zones: string[] };
  /** Every TrafficPolicy and FailoverPolicy of the view, oldest first. Unset: no policy. */
  policies?: PolicySet;
  /** Trust domain and mTLS modes (from the Mesh). Unset: plaintext everywhere. */
  security?: SecuritySettings;
}
