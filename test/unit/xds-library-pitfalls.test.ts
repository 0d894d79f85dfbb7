// Behaviours of @grpc/grpc-js-xds 1.14.1 that our translation designs around,
// pinned as tests: when an upgrade changes one, this file says which workaround
// to revisit. They reach into the library's build output on purpose.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';

const require = createRequire(import.meta.url);

interface ResourceTypeProto {
  resourcesEqual(a: unknown, b: unknown): boolean;
}
// Internal modules have no public typings; these are the two functions we probe.
const { XdsResourceType } = require('@grpc/grpc-js-xds/build/src/xds-resource-type/xds-resource-type.js') as {
  XdsResourceType: { prototype: ResourceTypeProto };
};
const { listenersEquivalent } = require('@grpc/grpc-js-xds/build/src/server-listener.js') as {
  listenersEquivalent: (a: unknown, b: unknown) => boolean;
};

describe('grpc-js-xds pitfalls we design around', () => {
  const equal = (a: unknown, b: unknown) => XdsResourceType.prototype.resourcesEqual.call(null, a, b);

  it('treats a resource as unchanged when only the new one has a field (so outlier_detection is always sent)', () => {
    assert.equal(equal({ a: 1 }, { a: 1, outlier_detection: { interval: 1 } }), true);
  });

  it('treats an Any payload that only grows at its end as unchanged', () => {
    // A change that only appends bytes to an embedded message (e.g. a new field with
    // a higher number than every field set) is ignored by the client.
    assert.equal(equal({ value: Buffer.from([1, 2]) }, { value: Buffer.from([1, 2, 3]) }), true);
  });

  it('compares server filter chains with an inverted transport_socket check', () => {
    const chain = (ts: unknown) => ({ filters: [], filter_chain_match: null, transport_socket: ts });
    const listener = (ts: unknown) => ({ address: { socket_address: { address: '10.0.0.1', port_value: 1 } }, default_filter_chain: null, filter_chains: [chain(ts)] });
    // Two identical plaintext listeners are "different": every listener update rebuilds the config.
    assert.equal(listenersEquivalent(listener(null), listener(null)), false);
    // Plaintext -> TLS with identical filters is "equivalent": the server would ignore mTLS.
    // Workaround for the mTLS work: make the HTTP connection manager bytes differ by
    // security mode (e.g. stat_prefix), so the filter comparison returns first.
    assert.equal(listenersEquivalent(listener(null), listener({ typed_config: {} })), true);
    // TLS -> plaintext with identical filters throws inside the library.
    assert.throws(() => listenersEquivalent(listener({ typed_config: { value: Buffer.alloc(0) } }), listener(null)), TypeError);
  });
});
