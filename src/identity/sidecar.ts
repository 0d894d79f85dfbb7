// `meshfed identity run`: the node-local helper beside a workload. It generates
// the workload's key here (the key never leaves this machine), has the
// cluster's agent sign a CSR for the identity its token is bound to, writes
// cert.pem / key.pem / ca.pem atomically for gRPC's file_watcher provider, and
// keeps them current: renewal at half-life, a new CA bundle as soon as the
// agent has one (root rotation), re-issue at once when the agent's
// intermediate changes (so the workload chains to the new root before the old
// one is retired). Errors are retried with backoff and reported, never fatal
// while a valid certificate is in place.
import { X509Certificate } from 'node:crypto';
import { createCsr, generateKeyPair, renewalTime, writeCredentials } from '../ca/index.js';
import { abortableSleep } from '../util/sleep.js';

export interface SidecarOptions {
  agentUrl: string;
  token: string;
  dir: string;
  /** Exit after the first certificate is written. */
  once?: boolean;
  /** How often to ask the agent for bundle/issuer changes. */
  pollMs?: number;
  /** Renew at this fraction of the lifetime (default 0.5). */
  renewFraction?: number;
  log?: (msg: string) => void;
  signal?: AbortSignal;
}

interface Issued {
  spiffeId: string;
  certChainPem: string;
  caPem: string;
  notBefore: string;
  notAfter: string;
  issuerFingerprint: string;
}

export interface SidecarEvent {
  kind: 'issued' | 'bundle' | 'error';
  at: string;
  message: string;
}

async function call<T>(o: SidecarOptions, method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: { authorization: `Bearer ${o.token}`, 'content-type': 'application/json' }, signal: AbortSignal.timeout(10_000) };
  if (body !== undefined) init.body = JSON.stringify(body);
  let res: Response;
  try {
    res = await fetch(new URL(path, o.agentUrl.endsWith('/') ? o.agentUrl : `${o.agentUrl}/`), init);
  } catch (err) {
    throw new Error(`cannot reach the agent at ${o.agentUrl} (${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message})`);
  }
  const text = await res.text();
  if (!res.ok) {
    let msg = text;
    try {
      msg = (JSON.parse(text) as { error?: string }).error ?? text;
    } catch {
      /* plain text */
    }
    throw Object.assign(new Error(`agent refused (${res.status}): ${msg}`), { status: res.status });
  }
  return JSON.parse(text) as T;
}

export async function runSidecar(o: SidecarOptions): Promise<void> {
  const log = o.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const pollMs = o.pollMs ?? 1000;
  let current: (Issued & { keyPem: string; issuedAt: string }) | undefined;
  let backoff = 500;
  const sleep = (ms: number) => abortableSleep(ms, o.signal);

  const issue = async (): Promise<void> => {
    const who = await call<{ spiffeId: string }>(o, 'GET', 'v1/identity/whoami');
    const key = await generateKeyPair();
    const csr = await createCsr(key, { uris: [who.spiffeId], ca: false });
    const r = await call<Issued>(o, 'POST', 'v1/identity/certificates', { csr });
    writeCredentials(o.dir, { certChainPem: r.certChainPem, keyPem: key.privateKeyPem, caPem: r.caPem });
    current = { ...r, keyPem: key.privateKeyPem, issuedAt: new Date().toISOString() };
    const serial = new X509Certificate(r.certChainPem).serialNumber;
    log(`identity: issued ${r.spiffeId} serial ${serial}, valid until ${r.notAfter}; wrote ${o.dir}/{cert,key,ca}.pem`);
  };

  while (!o.signal?.aborted) {
    try {
      if (!current) {
        await issue();
        backoff = 500;
        if (o.once) return;
        continue;
      }
      const renewAt = renewalTime(current.issuedAt, current.notAfter, o.renewFraction ?? 0.5).getTime();
      if (Date.now() >= renewAt) {
        await issue();
        backoff = 500;
        continue;
      }
      await sleep(Math.min(pollMs, Math.max(0, renewAt - Date.now())));
      if (o.signal?.aborted) return;
      const b = await call<{ caPem: string; issuerFingerprint: string }>(o, 'GET', 'v1/identity/bundle');
      if (b.issuerFingerprint !== current.issuerFingerprint) {
        log('identity: the cluster intermediate changed; re-issuing');
        await issue();
      } else if (b.caPem !== current.caPem) {
        writeCredentials(o.dir, { certChainPem: current.certChainPem, keyPem: current.keyPem, caPem: b.caPem });
        current = { ...current, caPem: b.caPem };
        log(`identity: trust bundle updated (${b.caPem.match(/BEGIN CERTIFICATE/g)?.length ?? 0} roots)`);
      }
      backoff = 500;
    } catch (err) {
      const left = current ? Date.parse(current.notAfter) - Date.now() : 0;
      log(`identity: ${(err as Error).message}; retrying in ${backoff} ms${current ? ` (current certificate valid for ${Math.round(left / 1000)} s more)` : ''}`);
      if (o.once && (err as { status?: number }).status !== undefined && (err as { status?: number }).status! < 500) throw err;
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 30_000);
    }
  }
}
