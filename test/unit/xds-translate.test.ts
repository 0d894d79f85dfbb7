// Translation of a federated view to xDS resources: golden files plus the
// behaviours the golden files encode, checked one by one. The client golden is
// one file per service and resource type (test/unit/golden/xds-client-cluster1/
// <service>/<Type>.yaml) plus names.yaml (every name, in order) and
// warnings.yaml: together exactly the whole translation.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { federate } from '../../src/federation/federate.js';
import type { FederatedView } from '../../src/federation/types.js';
import { translateClient, translateServerListener } from '../../src/translate/xds/index.js';
import { decodeResource, encodeResource } from '../../src/xds/proto.js';
import { goldenFiles } from '../helpers/golden.js';
import { cluster, service, workload } from '../helpers/mesh-fixture.js';
import { serverListenerName, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, RESOURCE_TYPES, ROUTE_TYPE, mapFor, type XdsResource, type XdsResources } from '../../src/xdsapi/index.js';
import { policySet } from '../../src/registry.js';

const golden = goldenFiles(import.meta.url, 'test/unit/golden');

function fixtureView(): FederatedView {
  const clusters = [cluster('cluster1', 'us-east1', ['us-east1-a', 'us-east1-b']), cluster('cluster2', 'us-west1', ['us-west1-a']), cluster('cluster3', 'eu-west1', ['eu-west1-a', 'eu-west1-b'])];
  const grpc = { name: 'grpc', port: 8080, protocol: 'GRPC' as const };
  const services = [
    service('cluster1', 'helloworld', 'sample', [grpc]),
    service('cluster2', 'helloworld', 'sample', [grpc]),
    service('cluster3', 'helloworld', 'sample', [grpc]),
    service('cluster1', 'echo', 'sample', [
      { name: 'grpc', port: 9000, protocol: 'GRPC' },
      { name: 'http', port: 9001, protocol: 'HTTP' },
      { name: 'metrics', port: 9100, protocol: 'TCP' },
    ]),
    service('cluster2', 'echo', 'sample', [
      { name: 'grpc', port: 9000, protocol: 'GRPC' },
      { name: 'http', port: 9001, protocol: 'HTTP' },
      { name: 'metrics', port: 9100, protocol: 'TCP' },
    ]),
    service('cluster2', 'local', 'sample', [grpc], { exported: false }),
    service('cluster1', 'conflicted', 'sample', [{ name: 'grpc', port: 7000, protocol: 'GRPC' }], { since: '2024-01-01T00:00:00Z' }),
    service('cluster3', 'conflicted', 'sample', [{ name: 'grpc', port: 7001, protocol: 'GRPC' }], { since: '2024-02-01T00:00:00Z' }),
  ];
  const hw = (c: string, name: string, addr: string, zone: string, health: 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' = 'HEALTHY') =>
    workload(c, name, 'sample', 'helloworld', addr, { grpc: 50051 }, { zone, health, labels: { version: name.split('-')[1]! } });
  const workloads = [
    // Listed out of order on purpose: output order must not depend on input order.
    hw('cluster3', 'helloworld-v3-b', '10.3.0.2', 'eu-west1-a'),
    hw('cluster1', 'helloworld-v1-a', '10.1.0.1', 'us-east1-a'),
    hw('cluster1', 'helloworld-v1-c', '10.1.0.3', 'us-east1-b', 'UNHEALTHY'),
    hw('cluster1', 'helloworld-v1-b', '10.1.0.2', 'us-east1-b'),
    hw('cluster2', 'helloworld-v2-a', '10.2.0.1', 'us-west1-a'),
    hw('cluster2', 'helloworld-v2-b', '10.2.0.2', 'us-west1-a', 'DRAINING'),
    hw('cluster3', 'helloworld-v3-a', '10.3.0.1', 'eu-west1-a'),
    hw('cluster3', 'helloworld-v3-c', '10.3.0.3', 'eu-west1-b', 'UNHEALTHY'),
    workload('cluster1', 'echo-1', 'sample', 'echo', '10.1.1.1', { grpc: 9000, http: 9001, metrics: 9100 }),
    // No "http" port: left out of the http backend, with a warning.
    workload('cluster2', 'echo-2', 'sample', 'echo', '10.2.1.1', { grpc: 9000, metrics: 9100 }),
    workload('cluster2', 'local-1', 'sample', 'local', '10.2.2.1', { grpc: 8080 }),
    workload('cluster1', 'conflicted-1', 'sample', 'conflicted', '10.1.3.1', { grpc: 7000 }),
    workload('cluster3', 'conflicted-3', 'sample', 'conflicted', '10.3.3.1', { grpc: 7001 }),
  ];
  return federate({ clusters, services, workloads });
}

const SHORT: Record<string, string> = { [LISTENER_TYPE]: 'Listener', [ROUTE_TYPE]: 'RouteConfiguration', [CLUSTER_TYPE]: 'Cluster', [ENDPOINT_TYPE]: 'ClusterLoadAssignment' };

function goldenDoc(res: XdsResources): unknown {
  const resources = RESOURCE_TYPES.flatMap((t) => [...mapFor(res, t).values()].map((r) => ({ type: SHORT[t], name: r.name, message: r.message })));
  return JSON.parse(JSON.stringify({ resources, warnings: res.warnings ?? [] }));
}

/** "helloworld.sample" for helloworld.sample.cluster1:8080, outbound|8080|subset|helloworld.sample.svc.clusterset.local, ... */
function serviceOf(resourceName: string): string {
  const host = resourceName.includes('|') ? resourceName.slice(resourceName.lastIndexOf('|') + 1) : resourceName.split(':')[0]!;
  return host.split('.').slice(0, 2).join('.');
}

/**
 * goldenDoc(res) as small cases a reviewer can read: "<service>/<Type>" with
 * those resources in order, "names" (every name per type, in order) and
 * "warnings". Nothing of goldenDoc is left out: it can be rebuilt from them.
 */
function goldenCases(res: XdsResources): [string, unknown][] {
  const doc = goldenDoc(res) as { resources: { type: string; name: string; message: unknown }[]; warnings: unknown };
  const names = Object.fromEntries(RESOURCE_TYPES.map((t) => [SHORT[t]!, [] as string[]]));
  const perCase = new Map<string, { name: string; message: unknown }[]>();
  for (const r of doc.resources) {
    names[r.type]!.push(r.name);
    const key = `${serviceOf(r.name)}/${r.type}`;
    perCase.set(key, [...(perCase.get(key) ?? []), { name: r.name, message: r.message }]);
  }
  return [['names', names], ['warnings', doc.warnings], ...perCase];
}

function get(res: XdsResources, typeUrl: string, name: string): XdsResource {
  const r = mapFor(res, typeUrl).get(name);
  assert.ok(r, `no ${SHORT[typeUrl]} named ${name}; have: ${[...mapFor(res, typeUrl).keys()].join(', ')}`);
  return r;
}

interface Loc {
  locality: { region: string; zone: string; sub_zone: string };
  load_balancing_weight: { value: number };
  priority: number;
  lb_endpoints: { endpoint: { address: { socket_address: { address: string; port_value: number } } }; health_status: string }[];
}
function localities(res: XdsResources, clusterName: string): Loc[] {
  return get(res, ENDPOINT_TYPE, clusterName).message.endpoints as Loc[];
}

describe('xDS client translation', () => {
  const view = fixtureView();
  const c1 = translateClient(view, { cluster: 'cluster1', policies: policySet([]) });
  const c2 = translateClient(view, { cluster: 'cluster2', policies: policySet([]) });

  it('matches the golden files', () => {
    golden.expectCases('xds-client-cluster1', goldenCases(c1));
    // cluster2 differs by visibility only: its golden lists names.
    golden.expect('xds-client-cluster2-names.yaml', Object.fromEntries(RESOURCE_TYPES.map((t) => [SHORT[t], [...mapFor(c2, t).keys()]])));
    golden.expectCases('xds-server-listener', [
      ['ipv4', translateServerListener(serverListenerName('10.1.0.1', 50051))!.message],
      ['ipv6', translateServerListener(serverListenerName('fd00::1', 50051))!.message],
    ]);
  });

  it('is deterministic whatever the input order', () => {
    const again = translateClient(fixtureView(), { cluster: 'cluster1', policies: policySet([]) });
    assert.equal(JSON.stringify(goldenDoc(again)), JSON.stringify(goldenDoc(c1)));
    const v = fixtureView();
    const reversed: FederatedView = {
      clusters: [...v.clusters].reverse(),
      services: [...v.services].reverse().map((s) => ({ ...s, parts: s.parts.map((p) => ({ ...p, endpoints: [...p.endpoints].reverse() })) })),
    };
    assert.equal(JSON.stringify(goldenDoc(translateClient(reversed, { cluster: 'cluster1', policies: policySet([]) }))), JSON.stringify(goldenDoc(c1)));
  });

  it('names a listener and route for every hostname form, bare name = first port', () => {
    for (const host of ['helloworld.sample', 'helloworld.sample.svc.clusterset.local', 'helloworld.sample.cluster1', 'helloworld.sample.cluster3']) {
      for (const name of [host, `${host}:8080`]) {
        const l = get(c1, LISTENER_TYPE, name);
        const hcm = (l.message.api_listener as { api_listener: Record<string, unknown> }).api_listener;
        assert.deepEqual(hcm.rds, { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: name });
        const filters = hcm.http_filters as { typed_config: { '@type': string } }[];
        assert.equal(filters.at(-1)!.typed_config['@type'], 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router');
        get(c1, ROUTE_TYPE, name);
      }
    }
    // Global and alias share one backend; per-cluster names have their own.
    const routeCluster = (name: string) => (get(c1, ROUTE_TYPE, name).message.virtual_hosts as { routes: { route: { cluster: string } }[] }[])[0]!.routes[0]!.route.cluster;
    assert.equal(routeCluster('helloworld.sample'), 'outbound|8080||helloworld.sample');
    assert.equal(routeCluster('helloworld.sample.svc.clusterset.local:8080'), 'outbound|8080||helloworld.sample');
    assert.equal(routeCluster('helloworld.sample.cluster2'), 'outbound|8080||helloworld.sample.cluster2');
    // Second port only with :PORT; TCP ports are not for proxyless gRPC.
    assert.equal(routeCluster('echo.sample'), 'outbound|9000||echo.sample');
    assert.equal(routeCluster('echo.sample:9001'), 'outbound|9001||echo.sample');
    assert.ok(!c1.listeners.has('echo.sample:9100'));
    assert.ok(!c1.clusters.has('outbound|9100||echo.sample'));
  });

  it('makes EDS clusters with round robin and a complete, disabled outlier_detection block', () => {
    for (const r of c1.clusters.values()) {
      assert.equal(r.message.type, 'EDS');
      assert.equal(r.message.lb_policy, 'ROUND_ROBIN');
      assert.deepEqual(r.message.eds_cluster_config, { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: r.name });
      assert.ok(c1.endpoints.has(r.name), `no ClusterLoadAssignment for ${r.name}`);
      const od = r.message.outlier_detection as Record<string, { value?: number; seconds?: number }>;
      for (const f of [
        'interval',
        'base_ejection_time',
        'max_ejection_time',
        'max_ejection_percent',
        'enforcing_success_rate',
        'success_rate_minimum_hosts',
        'success_rate_request_volume',
        'success_rate_stdev_factor',
        'enforcing_failure_percentage',
        'failure_percentage_minimum_hosts',
        'failure_percentage_request_volume',
        'failure_percentage_threshold',
      ]) {
        assert.ok(od[f] !== undefined, `${r.name}: outlier_detection.${f} must be set explicitly`);
      }
      assert.equal(od.enforcing_success_rate!.value, 0);
      assert.equal(od.enforcing_failure_percentage!.value, 0);
    }
  });

  it('has one locality per (cluster, zone), weighted by healthy endpoints', () => {
    const locs = localities(c1, 'outbound|8080||helloworld.sample');
    assert.deepEqual(
      locs.map((l) => [l.locality.sub_zone, l.locality.region, l.locality.zone, l.load_balancing_weight.value, l.priority]),
      [
        ['cluster1', 'us-east1', 'us-east1-a', 1, 0],
        ['cluster1', 'us-east1', 'us-east1-b', 1, 0], // v1-b healthy, v1-c unhealthy
        ['cluster2', 'us-west1', 'us-west1-a', 1, 0], // v2-b draining
        ['cluster3', 'eu-west1', 'eu-west1-a', 2, 0],
        ['cluster3', 'eu-west1', 'eu-west1-b', 1, 0], // no healthy endpoint: kept with weight 1
      ],
    );
    const health = locs.flatMap((l) => l.lb_endpoints.map((e) => `${e.endpoint.address.socket_address.address}:${e.endpoint.address.socket_address.port_value}=${e.health_status}`));
    assert.deepEqual(health, [
      '10.1.0.1:50051=HEALTHY',
      '10.1.0.2:50051=HEALTHY',
      '10.1.0.3:50051=UNHEALTHY',
      '10.2.0.1:50051=HEALTHY',
      '10.2.0.2:50051=DRAINING',
      '10.3.0.1:50051=HEALTHY',
      '10.3.0.2:50051=HEALTHY',
      '10.3.0.3:50051=UNHEALTHY',
    ]);
  });

  it("gives a per-cluster hostname only that cluster's endpoints", () => {
    for (const c of ['cluster1', 'cluster2', 'cluster3']) {
      const locs = localities(c1, `outbound|8080||helloworld.sample.${c}`);
      assert.ok(locs.length > 0);
      assert.ok(
        locs.every((l) => l.locality.sub_zone === c),
        `${c}: ${JSON.stringify(locs.map((l) => l.locality))}`,
      );
    }
  });

  it('shows a service that is not exported only in its own cluster', () => {
    assert.ok(c2.listeners.has('local.sample.cluster2'));
    // Not exported anywhere: its own cluster still reaches it by the global name.
    assert.deepEqual(
      localities(c2, 'outbound|8080||local.sample').map((l) => l.locality.sub_zone),
      ['cluster2'],
    );
    for (const name of c1.listeners.keys()) assert.ok(!name.startsWith('local.'), `cluster1 must not see ${name}`);
    for (const name of c1.endpoints.keys()) assert.ok(!name.includes('local.sample'), `cluster1 must not see ${name}`);
  });

  it('leaves a conflicting part out of the global service but keeps its per-cluster name', () => {
    assert.deepEqual(
      localities(c1, 'outbound|7000||conflicted.sample').map((l) => l.locality.sub_zone),
      ['cluster1'],
    );
    assert.ok(!c1.clusters.has('outbound|7001||conflicted.sample'));
    assert.deepEqual(
      localities(c1, 'outbound|7001||conflicted.sample.cluster3').map((l) => l.locality.sub_zone),
      ['cluster3'],
    );
    assert.ok(c1.listeners.has('conflicted.sample.cluster3:7001'));
  });

  it('reports workloads it had to leave out', () => {
    assert.deepEqual(c1.warnings, [
      'outbound|9001||echo.sample.cluster2: workload cluster2/echo-2 has no port named "http"; left out',
      'outbound|9001||echo.sample: workload cluster2/echo-2 has no port named "http"; left out',
    ]);
  });

  it('drops a duplicate address:port instead of producing an assignment gRPC would reject', () => {
    const v = federate({
      clusters: [cluster('a', 'r', ['z']), cluster('b', 'r', ['z'])],
      services: [service('a', 's', 'ns', [{ name: 'grpc', port: 1, protocol: 'GRPC' }]), service('b', 's', 'ns', [{ name: 'grpc', port: 1, protocol: 'GRPC' }])],
      workloads: [workload('a', 'w', 'ns', 's', '10.0.0.1', { grpc: 80 }), workload('b', 'w', 'ns', 's', '10.0.0.1', { grpc: 80 })],
    });
    const res = translateClient(v, { cluster: 'a', policies: policySet([]) });
    assert.equal(localities(res, 'outbound|1||s.ns').flatMap((l) => l.lb_endpoints).length, 1);
    assert.match(res.warnings![0]!, /b\/w has the same address 10\.0\.0\.1:80 as a\/w/);
  });

  it('encodes every resource strictly, and decoding gives the same fields back', () => {
    for (const res of [c1, c2]) {
      for (const t of RESOURCE_TYPES) {
        for (const r of mapFor(res, t).values()) {
          const enc = encodeResource(r);
          assert.equal(enc.typeUrl, t);
          assert.ok(enc.value.length > 0);
        }
      }
    }
    // Spot checks that values survive (oneof members with default values included).
    const route = get(c1, ROUTE_TYPE, 'helloworld.sample');
    const decoded = decodeResource(ROUTE_TYPE, encodeResource(route).value);
    assert.deepEqual((decoded.virtual_hosts as { routes: { match: unknown }[] }[])[0]!.routes[0]!.match, { prefix: '' });
    const listener = get(c1, LISTENER_TYPE, 'helloworld.sample');
    const dl = decodeResource(LISTENER_TYPE, encodeResource(listener).value) as { api_listener: { api_listener: Record<string, unknown> } };
    assert.equal(dl.api_listener.api_listener['@type'], 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
    const cla = get(c1, ENDPOINT_TYPE, 'outbound|8080||helloworld.sample');
    const dc = decodeResource(ENDPOINT_TYPE, encodeResource(cla).value) as { endpoints: Loc[] };
    assert.deepEqual(
      dc.endpoints.map((l) => l.load_balancing_weight.value),
      [1, 1, 1, 2, 1],
    );
    assert.deepEqual(dc.endpoints[0]!.locality, { region: 'us-east1', zone: 'us-east1-a', sub_zone: 'cluster1' });
  });

  it('rejects a misspelled field, naming the resource and the full path', () => {
    const r = structuredClone(get(c1, CLUSTER_TYPE, 'outbound|8080||helloworld.sample'));
    (r.message.outlier_detection as Record<string, unknown>).enforcing_sucess_rate = { value: 0 };
    assert.throws(
      () => encodeResource(r),
      (e: Error) => {
        assert.match(e.message, /Cluster "outbound\|8080\|\|helloworld\.sample"/);
        assert.match(e.message, /outlier_detection\.enforcing_sucess_rate: unknown field "enforcing_sucess_rate"/);
        assert.match(e.message, /did you mean "enforcing_success_rate"/);
        return true;
      },
    );
    // Inside an Any, inside a repeated field.
    const l = structuredClone(get(c1, LISTENER_TYPE, 'helloworld.sample'));
    const hcm = (l.message.api_listener as { api_listener: { http_filters: Record<string, unknown>[] } }).api_listener;
    hcm.http_filters[0]!.typedConfig = hcm.http_filters[0]!.typed_config;
    delete hcm.http_filters[0]!.typed_config;
    assert.throws(() => encodeResource(l), /api_listener\.api_listener\.http_filters\[0\]\.typedConfig: unknown field "typedConfig".*did you mean "typed_config"/);
    // Unknown Any type, bad enum name, both members of a oneof, wrong scalar type, map values.
    const bad = (mutate: (m: Record<string, unknown>) => void, re: RegExp, base: XdsResource = get(c1, CLUSTER_TYPE, 'outbound|8080||helloworld.sample')) => {
      const x = structuredClone(base);
      mutate(x.message);
      assert.throws(() => encodeResource(x), re);
    };
    bad((m) => (m.lb_policy = 'ROUND_ROBINN'), /lb_policy: string "ROUND_ROBINN" is not a value of enum envoy\.config\.cluster\.v3\.Cluster\.LbPolicy/);
    bad((m) => (m.cluster_type = { name: 'x' }), /cluster_type: "cluster_type" and "type" are both set but belong to oneof cluster_discovery_type/);
    bad((m) => (m.name = 42), /name: expected string, got number 42/);
    bad((m) => (m.metadata = { filter_metadata: { a: { fields: { b: { string_valu: 'x' } } } } }), /metadata\.filter_metadata\["a"\]\.fields\["b"\]\.string_valu: unknown field/);
    bad(
      (m) => ((m.api_listener as { api_listener: Record<string, unknown> }).api_listener['@type'] = 'type.googleapis.com/no.such.Type'),
      /api_listener\.api_listener\.@type: no protobuf message type for type URL "type\.googleapis\.com\/no\.such\.Type"/,
      get(c1, LISTENER_TYPE, 'helloworld.sample'),
    );
    bad((m) => (m.endpoints = {}), /endpoints: expected an array/, get(c1, ENDPOINT_TYPE, 'outbound|8080||helloworld.sample'));
  });
});

describe('xDS server listener translation', () => {
  it('serves A36 listener names with one plain filter chain and a non-forwarding route', () => {
    const name = serverListenerName('127.0.0.1', 50051);
    const r = translateServerListener(name)!;
    assert.equal(r.name, name);
    const m = r.message as {
      address: unknown;
      default_filter_chain?: unknown;
      filter_chains: {
        filter_chain_match?: unknown;
        filters: { typed_config: { route_config: { virtual_hosts: { domains: string[]; routes: Record<string, unknown>[] }[] }; http_filters: { name: string }[] } }[];
      }[];
    };
    assert.deepEqual(m.address, { socket_address: { address: '127.0.0.1', port_value: 50051 } });
    assert.equal(m.default_filter_chain, undefined);
    assert.equal(m.filter_chains.length, 1);
    assert.equal(m.filter_chains[0]!.filter_chain_match, undefined, 'no filter_chain_match: an unset transport_protocol never matches');
    const hcm = m.filter_chains[0]!.filters[0]!.typed_config;
    assert.deepEqual(hcm.route_config.virtual_hosts[0]!.domains, ['*']);
    assert.deepEqual(hcm.route_config.virtual_hosts[0]!.routes[0]!.non_forwarding_action, {});
    assert.equal(hcm.http_filters.at(-1)!.name, 'envoy.filters.http.router');
    encodeResource(r);
    assert.deepEqual(translateServerListener(serverListenerName('fd00::1', 443))!.message.address, { socket_address: { address: 'fd00::1', port_value: 443 } });
  });

  it('returns undefined for names that are not a literal IP:PORT', () => {
    for (const bad of [
      'helloworld.sample',
      'grpc/server?xds.resource.listening_address=localhost:50051',
      'grpc/server?xds.resource.listening_address=127.0.0.1',
      'grpc/server?xds.resource.listening_address=127.0.0.1:0',
      'grpc/server?xds.resource.listening_address=127.0.0.1:70000',
      'grpc/server?xds.resource.listening_address=300.0.0.1:80',
      'grpc/server?xds.resource.listening_address=fd00::1:80',
    ]) {
      assert.equal(translateServerListener(bad), undefined, bad);
    }
  });
});
