// HTTP calls from the CLI to the hub or an agent, with errors a person can act on.
import { CliError, EXIT } from './output.js';

export async function request<T>(
  base: string,
  what: string,
  method: string,
  path: string,
  body?: { text: string; contentType: string },
): Promise<T> {
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
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err instanceof Error ? err.message : String(err));
    throw new CliError(EXIT.unreachable, `cannot reach the ${what} at ${base} (${cause})`);
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = { error: text };
  }
  if (!res.ok) {
    const msg = (parsed as { error?: string } | undefined)?.error ?? `${res.status} ${res.statusText}`;
    const code = res.status === 404 ? EXIT.notFound : res.status === 409 ? EXIT.conflict : EXIT.failed;
    throw new CliError(code, msg);
  }
  return parsed as T;
}
