// host:port parsing with errors that name the flag.
import { errorMessage } from './errors.js';
export interface HostPort {
  host: string;
  port: number;
}

export function parseHostPort(value: string, what: string, defaultHost = '127.0.0.1'): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value.trim()) ?? /^()()(\d+)$/.exec(value.trim());
  if (!m) throw new Error(`${what}: expected HOST:PORT, got "${value}"`);
  const host = m[1] || m[2] || defaultHost;
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${what}: port ${m[3]} is out of range`);
  return { host, port };
}

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** An error for EADDRINUSE that says which port and what to do. */
export function describeListenError(err: unknown, what: string, addr: string): Error {
  const code = (err as { code?: string }).code;
  const msg = errorMessage(err);
  if (code === 'EADDRINUSE' || /EADDRINUSE|address already in use|No address added/.test(msg)) {
    return new Error(`${what}: ${addr} is already in use; stop what holds it or choose another address`);
  }
  return new Error(`${what}: cannot listen on ${addr}: ${msg}`);
}

/** A comma-separated list of addresses (several hub replicas: `a:7401,b:7401`), trimmed, empties dropped. */
export function hubAddresses(v: string): string[] {
  return v
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
}
