// proxy-status hints: a NACK we recognise says what to do. The register() one is
// what a gRPC XdsServer process that never called register() from
// @grpc/grpc-js-xds sends for every Listener; the --cert-dir one what a client
// whose bootstrap has no certificate provider sends for an mTLS Cluster
// (grpc-js-xds 1.14.1's exact texts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CERT_DIR_HINT, nackHint, REGISTER_HINT, summarizeProxies } from '../../src/agent/proxy-status.js';
import type { ProxyStatus } from '../../src/xds/ads-server.js';

const LISTENER = 'type.googleapis.com/envoy.config.listener.v3.Listener';
const NO_REGISTER_NACK = 'filters[0].typed_config: envoy.filters.http.router filter validation failed';

function serverNackingListener(message: string): ProxyStatus {
  return {
    stream: 1,
    protocol: 'sotw',
    nodeId: 'sample~helloworld-v2',
    nodeCluster: 'cluster2',
    locality: { region: 'us-east1', zone: 'us-east1-b', subZone: '' },
    userAgent: 'grpc-node-js',
    peer: '127.0.0.1:40000',
    connectedSince: '2026-01-01T00:00:00.000Z',
    types: {
      [LISTENER]: {
        typeUrl: LISTENER,
        subscribed: 1,
        wildcard: false,
        sentResources: 1,
        lastSentVersion: '3',
        lastSentAt: '2026-01-01T00:00:01.000Z',
        lastNack: { version: '3', message, at: '2026-01-01T00:00:02.000Z' },
      },
    },
  };
}

describe('proxy-status NACK hints', () => {
  it('a router "filter validation failed" NACK names register() from @grpc/grpc-js-xds', () => {
    const [p] = summarizeProxies([serverNackingListener(NO_REGISTER_NACK)], Date.parse('2026-01-01T00:00:03.000Z'));
    assert.equal(p!.types.LDS!.state, 'NACKED');
    assert.equal(p!.types.LDS!.nack, NO_REGISTER_NACK);
    assert.equal(p!.types.LDS!.hint, REGISTER_HINT);
    assert.match(REGISTER_HINT, /must call register\(\) from @grpc\/grpc-js-xds/);
  });

  it('an RBAC filter NACK keeps its own hint (GRPC_XDS_EXPERIMENTAL_RBAC), not the register() one', () => {
    assert.match(nackHint(LISTENER, 'meshfed.access.allow filter validation failed') ?? '', /GRPC_XDS_EXPERIMENTAL_RBAC=true/);
  });

  it('a TLS context whose certificate provider the bootstrap lacks (no --cert-dir) names bootstrap --cert-dir', () => {
    const nack = 'Cluster message validation failed: [Unmatched UpstreamTlsContext.tls_certificate_provider_instance.instance_name: meshfed]';
    assert.equal(nackHint('type.googleapis.com/envoy.config.cluster.v3.Cluster', nack), CERT_DIR_HINT);
    assert.match(CERT_DIR_HINT, /meshfed bootstrap --cert-dir/);
  });

  it('an unrecognised NACK gets no hint', () => {
    assert.equal(nackHint(LISTENER, 'listener address mismatch'), undefined);
  });
});
