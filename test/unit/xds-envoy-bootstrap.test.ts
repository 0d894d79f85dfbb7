// Envoy bootstrap. There is no Envoy binary in this environment, so the check is
// against Envoy's own protos: the bootstrap must encode strictly as
// envoy.config.bootstrap.v3.Bootstrap (every field and enum value known, proto3
// JSON forms such as "1s" accepted) and decode back to what Envoy would read.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ENVOY_XDS_CLUSTER, encodeEnvoyBootstrap, envoyBootstrap, nodeIdFor } from '../../src/xds/bootstrap.js';
import { protoRoot } from '../../src/xds/proto.js';

type Decoded = {
  node: { id: string; cluster: string; locality: Record<string, string>; metadata: { fields: Record<string, { stringValue?: string }> } };
  dynamic_resources: {
    ads_config: { api_type: string; transport_api_version: string; set_node_on_first_message_only: boolean; grpc_services: { envoy_grpc: { cluster_name: string } }[] };
    lds_config: { ads: object; resource_api_version: string };
    cds_config: { ads: object; resource_api_version: string };
  };
  static_resources: {
    clusters: {
      name: string;
      type: string;
      connect_timeout: { seconds: number };
      typed_extension_protocol_options: Record<string, { '@type': string; explicit_http_config: { http2_protocol_options: object } }>;
      load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string; port_value: number } } } }[] }[] };
    }[];
  };
  admin: { address: { socket_address: { address: string; port_value: number } } };
};

function decode(bytes: Uint8Array): Decoded {
  const T = protoRoot().lookupType('envoy.config.bootstrap.v3.Bootstrap');
  return T.toObject(T.decode(bytes), { enums: String, longs: Number, json: true }) as Decoded;
}

const opts = {
  xdsServer: '127.0.0.1:15010',
  nodeId: nodeIdFor('cluster2', 'sample', 'helloworld-v2-0'),
  cluster: 'cluster2',
  locality: { region: 'us-west1', zone: 'us-west1-a' },
  metadata: { version: 'v2' },
};

describe('Envoy bootstrap', () => {
  it('is a valid envoy.config.bootstrap.v3.Bootstrap for state-of-the-world ADS', () => {
    const b = envoyBootstrap(opts);
    // What the CLI writes is JSON: check the JSON round trip, not the object.
    const d = decode(encodeEnvoyBootstrap(JSON.parse(JSON.stringify(b)) as object));
    assert.deepEqual([d.node.id, d.node.cluster, d.node.locality], ['cluster2~sample~helloworld-v2-0', 'cluster2', { region: 'us-west1', zone: 'us-west1-a', sub_zone: 'cluster2' }]);
    assert.equal(d.node.metadata.fields.version?.stringValue, 'v2');
    const ads = d.dynamic_resources.ads_config;
    assert.deepEqual([ads.api_type, ads.transport_api_version, ads.set_node_on_first_message_only], ['GRPC', 'V3', true]);
    assert.deepEqual(ads.grpc_services, [{ envoy_grpc: { cluster_name: ENVOY_XDS_CLUSTER } }]);
    for (const c of [d.dynamic_resources.lds_config, d.dynamic_resources.cds_config]) assert.deepEqual(c, { ads: {}, resource_api_version: 'V3' });
    const [xds] = d.static_resources.clusters;
    assert.deepEqual([xds!.name, xds!.type, xds!.connect_timeout], [ENVOY_XDS_CLUSTER, 'STATIC', { seconds: 1 }]);
    const http = xds!.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']!;
    assert.equal(http['@type'], 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions');
    assert.deepEqual(http.explicit_http_config, { http2_protocol_options: {} });
    assert.deepEqual(xds!.load_assignment.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address, { address: '127.0.0.1', port_value: 15010 });
    assert.deepEqual(d.admin.address.socket_address, { address: '127.0.0.1', port_value: 15000 });
  });

  it('uses DELTA_GRPC with delta: true; a host name makes the xDS cluster STRICT_DNS', () => {
    const d = decode(encodeEnvoyBootstrap(envoyBootstrap({ ...opts, delta: true, xdsServer: 'meshfed-agent.local:15010', admin: { port: 9901 } })));
    assert.equal(d.dynamic_resources.ads_config.api_type, 'DELTA_GRPC');
    assert.equal(d.static_resources.clusters[0]!.type, 'STRICT_DNS');
    assert.equal(d.admin.address.socket_address.port_value, 9901);
    const v6 = decode(encodeEnvoyBootstrap(envoyBootstrap({ ...opts, xdsServer: '[::1]:15010' })));
    assert.equal(v6.static_resources.clusters[0]!.load_assignment.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address.address, '::1');
    assert.throws(() => envoyBootstrap({ ...opts, xdsServer: 'no-port' }), /host:port/);
  });

  it('is checked strictly: a misspelled field, a wrong enum value or a bad duration is an error', () => {
    const b = envoyBootstrap(opts) as { dynamic_resources: { ads_config: Record<string, unknown> }; static_resources: { clusters: Record<string, unknown>[] } };
    const bad1 = structuredClone(b);
    bad1.dynamic_resources.ads_config.setNodeOnFirstMessageOnly = true;
    assert.throws(() => encodeEnvoyBootstrap(bad1), /dynamic_resources\.ads_config\.setNodeOnFirstMessageOnly: unknown field.*did you mean "set_node_on_first_message_only"/);
    const bad2 = structuredClone(b);
    bad2.dynamic_resources.ads_config.api_type = 'DELTA';
    assert.throws(() => encodeEnvoyBootstrap(bad2), /api_type: string "DELTA" is not a value of enum/);
    const bad3 = structuredClone(b);
    bad3.static_resources.clusters[0]!.connect_timeout = 1;
    assert.throws(() => encodeEnvoyBootstrap(bad3), /connect_timeout: expected a duration like "1.5s"/);
    const bad4 = structuredClone(b);
    (bad4.static_resources.clusters[0]!.typed_extension_protocol_options as Record<string, Record<string, unknown>>)['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']!.explicit_http_config = {
      http2: {},
    };
    assert.throws(() => encodeEnvoyBootstrap(bad4), /explicit_http_config\.http2: unknown field/);
  });
});
