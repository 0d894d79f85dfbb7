// Every xDS resource name meshfed serves, decided in one place: xDS cluster
// (and ClusterLoadAssignment) names, split-target cluster names and the server
// listener names of gRFC A36. Client listener names are the hostnames of
// src/federation/names.ts. Names are flat strings (util/intern.ts): each is
// held several times over.
// node:net's isIP is a pure function (no sockets).
import { isIP } from 'node:net';
import { flat } from '../util/intern.js';

/** xDS cluster name for one port of one host (Istio-like, so it reads in proxy dumps): outbound|PORT||HOST. */
export function xdsClusterName(host: string, port: number): string {
  return flat(`outbound|${port}||${host}`);
}

/**
 * xDS cluster name of a split target: outbound|PORT|SUBSET|HOST, SUBSET being
 * the target's sorted `cluster=...,label=value` (unique per service and port).
 */
export function subsetClusterName(host: string, port: number, subset: string): string {
  return flat(`outbound|${port}|${subset}|${host}`);
}

/** Server-side listener name that an xDS-enabled gRPC server requests (gRFC A36). */
export const SERVER_LISTENER_PREFIX = 'grpc/server?xds.resource.listening_address=';

export function serverListenerName(address: string, port: number): string {
  const host = address.includes(':') ? `[${address}]` : address;
  return `${SERVER_LISTENER_PREFIX}${host}:${port}`;
}

/** Listening address of a server listener name, or undefined if the name is not one. */
export function parseServerListenerName(name: string): { address: string; port: number } | undefined {
  if (!name.startsWith(SERVER_LISTENER_PREFIX)) return undefined;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(name.slice(SERVER_LISTENER_PREFIX.length));
  if (!m) return undefined;
  const address = (m[1] ?? m[2])!;
  const port = Number(m[3]);
  if (port < 1 || port > 65535 || isIP(address) === 0) return undefined;
  return { address, port };
}
