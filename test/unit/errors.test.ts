// The one error type: each code maps, in one table, to the HTTP status an API
// answers, the gRPC code a channel answers and the CLI's exit code (docs/cli.md);
// the converted error kinds keep the statuses the APIs answered before. Pure.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidInputError } from '../../src/api/index.js';
import { CsrRejected } from '../../src/ca/index.js';
import { MalformedJoinToken } from '../../src/channel/join-token.js';
import { JoinError } from '../../src/channel/tls.js';
import { codeOfHttpStatus, errorCode, errorMessage, exitCodeOf, grpcCodeOf, httpStatusOf, MeshfedError, type ErrorCode } from '../../src/util/errors.js';

test('each code maps to its HTTP status, gRPC code and exit code', () => {
  const table: [ErrorCode, number, number, number][] = [
    ['invalid', 400, 3, 1],
    ['usage', 400, 3, 2],
    ['unauthenticated', 401, 16, 6],
    ['forbidden', 403, 7, 6],
    ['not-found', 404, 5, 4],
    ['conflict', 409, 9, 5],
    ['gone', 410, 11, 1],
    ['too-large', 413, 8, 1],
    ['rate-limited', 429, 8, 1],
    ['unavailable', 503, 14, 3],
    ['internal', 500, 13, 1],
  ];
  for (const [code, http, grpc, exit] of table) {
    const e = new MeshfedError(code, 'm');
    assert.deepEqual([e.httpStatus, e.grpcCode, e.exitCode], [http, grpc, exit], code);
    assert.deepEqual([httpStatusOf(e), grpcCodeOf(e), exitCodeOf(e)], [http, grpc, exit], code);
    if (code !== 'usage') assert.equal(codeOfHttpStatus(http), code);
  }
});

test('anything else thrown is internal; errorMessage reads any throw', () => {
  assert.equal(errorCode(new TypeError('x')), 'internal');
  assert.equal(httpStatusOf('a string'), 500);
  assert.equal(exitCodeOf(undefined), 1);
  assert.equal(errorMessage(new Error('boom')), 'boom');
  assert.equal(errorMessage('plain'), 'plain');
  assert.equal(errorMessage(42), '42');
  assert.equal(codeOfHttpStatus(418), 'invalid');
  assert.equal(codeOfHttpStatus(502), 'internal');
});

test('reason and details travel with the error; the default reason is the code word', () => {
  const e = new MeshfedError('not-found', 'Cluster "x" not found', { reason: 'UnknownCluster', details: { name: 'x' } });
  assert.equal(e.reason, 'UnknownCluster');
  assert.deepEqual(e.details, { name: 'x' });
  assert.equal(new MeshfedError('conflict', 'c').reason, 'Conflict');
});

test('the kinds of error meshfed raises are MeshfedErrors with the right code', () => {
  const invalid = new InvalidInputError([{ document: 0, source: 'f.yaml', errors: [{ path: '/spec', message: 'bad' }] }]);
  assert.ok(invalid instanceof MeshfedError);
  assert.equal(invalid.httpStatus, 400);
  assert.deepEqual(invalid.details, invalid.problems);
  assert.equal(new CsrRejected('no').httpStatus, 400);
  assert.equal(new MalformedJoinToken('short').code, 'invalid');
  assert.equal(new JoinError('hub unreachable', false).code, 'unavailable');
  assert.equal(new JoinError('token refused', true).code, 'invalid');
});
