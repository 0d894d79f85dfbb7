// HTTP calls from the CLI to the hub or an agent, with errors a person can act on.
// Every failure is a MeshfedError whose code gives the exit code (docs/cli.md):
// unreachable (no answer, or no answer in 15 s) is `unavailable` (3); an error
// answer keeps the API's message, reason and details, and its status decides the
// code: 404 is `not-found` (4), 409 `conflict` (5), every other status fails (1).
import { codeOfHttpStatus, errorMessage, MeshfedError, type ErrorCode, type ErrorOptions } from '../util/errors.js';

/** The body of an API error answer (hub and agent alike). */
interface ErrorBody {
  error?: string;
  reason?: string;
  details?: unknown;
}

export async function request<T>(base: string, what: string, method: string, path: string, body?: { text: string; contentType: string }): Promise<T> {
  const url = new URL(path, base.endsWith('/') ? base : base + '/');
  let res: Response;
  try {
    const init: RequestInit = { method, signal: AbortSignal.timeout(15_000) };
    if (body) {
      init.body = body.text;
      init.headers = { 'content-type': body.contentType };
    }
    res = await fetch(url, init);
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? errorMessage(err);
    throw new MeshfedError('unavailable', `cannot reach the ${what} at ${base} (${cause})`, { cause: err });
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = { error: text };
  }
  if (!res.ok) {
    const answer = parsed as ErrorBody | undefined;
    const opts: ErrorOptions = {};
    if (typeof answer?.reason === 'string') opts.reason = answer.reason;
    if (answer?.details !== undefined) opts.details = answer.details;
    throw new MeshfedError(codeOfAnswer(res.status), answer?.error ?? `${res.status} ${res.statusText}`, opts);
  }
  return parsed as T;
}

/**
 * The code of an error answer. Only not-found and conflict have exit codes of
 * their own in docs/cli.md; any other status (401, 403 and 503 included, which
 * codeOfHttpStatus would make exit 6 or 3) fails the command with 1, as the CLI
 * always has.
 */
function codeOfAnswer(status: number): ErrorCode {
  const code = codeOfHttpStatus(status);
  if (code === 'not-found' || code === 'conflict') return code;
  return status >= 500 ? 'internal' : 'invalid';
}
