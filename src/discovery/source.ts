// Discovery sources feed an agent with its cluster's services and workloads.
//
// Level-triggered, like a Kubernetes informer: a source publishes its whole
// current state whenever anything changes, and the agent recomputes from state,
// never from deltas alone. The Kubernetes source (list+watch of Services,
// EndpointSlices, Pods, ServiceAccounts and node topology labels) implements the
// same interface; the registration source below serves VMs and the demo.
//
// A source that knows exactly what changed may say so (DiscoveryDelta) next to
// the state: the agent then applies the delta, at a cost that follows the
// change, instead of diffing the whole state. The state stays the truth: a
// source may compute it lazily, on access.
import type { Service, Workload } from '../api/index.js';

export interface DiscoveredState {
  services: Service[];
  workloads: Workload[];
}

/** What one change did: objects added or changed, and keys (keyOf) of objects gone. */
export interface DiscoveryDelta {
  upserts: (Service | Workload)[];
  deletes: string[];
}

export interface DiscoverySource {
  readonly name: string;
  /** Starts discovery; resolves once the first complete state is known (the source is synced). */
  start(onChange: (state: DiscoveredState, delta?: DiscoveryDelta) => void): Promise<void>;
  /** The current complete state. */
  current(): DiscoveredState;
  stop(): Promise<void>;
}

/** Merges several sources' states; a service defined by two sources must agree (checked by the agent). */
export function mergeStates(states: DiscoveredState[]): DiscoveredState {
  return { services: states.flatMap((s) => s.services), workloads: states.flatMap((s) => s.workloads) };
}
