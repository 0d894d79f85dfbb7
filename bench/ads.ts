// The ADS service definition (plain grpc-js + proto-loader, loaded the way the
// tests' raw client and the agent's server load it), shared by the light
// clients and the floor server. No meshfed control-plane code is involved.
import { adsServiceDefinition } from '../src/xds/proto.js';

export const ADS_METHOD = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';

export interface AnyMsg {
  type_url: string;
  value: Buffer;
}

export interface DiscoveryRequest {
  version_info?: string;
  node?: { id: string; cluster: string; locality?: { region: string; zone: string; sub_zone: string }; user_agent_name?: string };
  resource_names: string[];
  type_url: string;
  response_nonce?: string;
}

export interface DiscoveryResponse {
  version_info: string;
  resources: AnyMsg[];
  type_url: string;
  nonce: string;
}

export { adsServiceDefinition };

/** Serializers of the bidi method, for grpc.Client#makeBidiStreamRequest. */
export function adsCodec(): { serialize: (r: DiscoveryRequest) => Buffer; deserialize: (b: Buffer) => DiscoveryResponse } {
  const m = adsServiceDefinition()['StreamAggregatedResources']!;
  return {
    serialize: m.requestSerialize as (r: DiscoveryRequest) => Buffer,
    deserialize: m.responseDeserialize as (b: Buffer) => DiscoveryResponse,
  };
}
