// The one error type of meshfed. An error carries a code saying what kind of
// failure it is; the code maps, in this file only, to the HTTP status an API
// answers, the gRPC status a channel answers and the exit code the CLI ends
// with. `reason` is the machine-readable word an API puts in its error body
// (e.g. "UnknownToken"); `details` carries structured problems (field errors).
// Pure: no I/O.

export type ErrorCode =
  /** The input is wrong; the message names the field. */
  | 'invalid'
  /** A command line that cannot be run (unknown flag, missing argument). */
  | 'usage'
  /** No credential, or one that is not valid. */
  | 'unauthenticated'
  /** A valid credential that may not do this. */
  | 'forbidden'
  | 'not-found'
  /** Clashes with the state (exists with other settings, wrong phase). */
  | 'conflict'
  /** What was asked for is no longer kept (a compacted revision). */
  | 'gone'
  /** A request body or object over its bound. */
  | 'too-large'
  /** Too many requests of this kind; retry later. */
  | 'rate-limited'
  /** A peer (hub, agent, store) cannot be reached or is not ready. */
  | 'unavailable'
  /** A bug or an unexpected failure. */
  | 'internal';

interface Mapping {
  http: number;
  /** gRPC status code (numbers are the protocol's: grpc/status.h). */
  grpc: number;
  /** CLI exit code (docs/cli.md). */
  exit: number;
  /** Default reason word in API error bodies. */
  reason: string;
}

/** The CLI's exit codes (docs/cli.md). */
export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3, notFound: 4, conflict: 5, denied: 6 } as const;

const MAPPING: Record<ErrorCode, Mapping> = {
  invalid: { http: 400, grpc: 3 /* INVALID_ARGUMENT */, exit: EXIT.failed, reason: 'Invalid' },
  usage: { http: 400, grpc: 3 /* INVALID_ARGUMENT */, exit: EXIT.usage, reason: 'Invalid' },
  unauthenticated: { http: 401, grpc: 16 /* UNAUTHENTICATED */, exit: EXIT.denied, reason: 'Unauthenticated' },
  forbidden: { http: 403, grpc: 7 /* PERMISSION_DENIED */, exit: EXIT.denied, reason: 'Forbidden' },
  'not-found': { http: 404, grpc: 5 /* NOT_FOUND */, exit: EXIT.notFound, reason: 'NotFound' },
  conflict: { http: 409, grpc: 9 /* FAILED_PRECONDITION */, exit: EXIT.conflict, reason: 'Conflict' },
  gone: { http: 410, grpc: 11 /* OUT_OF_RANGE */, exit: EXIT.failed, reason: 'Gone' },
  'too-large': { http: 413, grpc: 8 /* RESOURCE_EXHAUSTED */, exit: EXIT.failed, reason: 'TooLarge' },
  'rate-limited': { http: 429, grpc: 8 /* RESOURCE_EXHAUSTED */, exit: EXIT.failed, reason: 'TooManyRequests' },
  unavailable: { http: 503, grpc: 14 /* UNAVAILABLE */, exit: EXIT.unreachable, reason: 'Unavailable' },
  internal: { http: 500, grpc: 13 /* INTERNAL */, exit: EXIT.failed, reason: 'Internal' },
};

export interface ErrorOptions {
  /** Machine-readable reason for API bodies; defaults to the code's. */
  reason?: string;
  /** Structured detail (e.g. field errors) for API bodies. */
  details?: unknown;
  cause?: unknown;
}

export class MeshfedError extends Error {
  readonly reason: string;
  readonly details: unknown;

  constructor(
    readonly code: ErrorCode,
    message: string,
    opts: ErrorOptions = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'MeshfedError';
    this.reason = opts.reason ?? MAPPING[code].reason;
    this.details = opts.details;
  }

  get httpStatus(): number {
    return MAPPING[this.code].http;
  }

  get grpcCode(): number {
    return MAPPING[this.code].grpc;
  }

  get exitCode(): number {
    return MAPPING[this.code].exit;
  }
}

/** The message of anything thrown. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The code of anything thrown: a MeshfedError's own, `internal` otherwise. */
export function errorCode(err: unknown): ErrorCode {
  return err instanceof MeshfedError ? err.code : 'internal';
}

export function httpStatusOf(err: unknown): number {
  return MAPPING[errorCode(err)].http;
}

export function grpcCodeOf(err: unknown): number {
  return MAPPING[errorCode(err)].grpc;
}

export function exitCodeOf(err: unknown): number {
  return MAPPING[errorCode(err)].exit;
}

/** The code an HTTP status stands for (the CLI reading an API's answer). */
export function codeOfHttpStatus(status: number): ErrorCode {
  for (const [code, m] of Object.entries(MAPPING) as [ErrorCode, Mapping][]) {
    if (m.http === status && code !== 'usage') return code;
  }
  return status >= 500 ? 'internal' : 'invalid';
}
