// A hand-driven agent-channel client for tests: says Hello with any identity
// and credentials, sends any message (bad CSRs included), and records what the
// hub answers. Real agents use src/agent/hub-connection.ts.
import type * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentChannelClient, type AgentChannelClient, type AgentMessage, type Hello, type HubMessage, type HubStream, type JoinRequest, type JoinResponse } from '../../src/channel/protocol.js';
import { agentCredentials } from '../../src/channel/tls.js';

export class RawSession {
  readonly messages: HubMessage[] = [];
  error: (Error & { code?: number; details?: string }) | undefined;
  ended = false;
  private readonly client: AgentChannelClient;
  private readonly stream: HubStream;
  private readonly waiters: (() => void)[] = [];

  constructor(address: string, creds: grpc.ChannelCredentials | undefined, hello: Partial<Hello> & { cluster: string }) {
    this.client = agentChannelClient(address, creds);
    this.stream = this.client.connect();
    this.stream.on('data', (m: HubMessage) => {
      this.messages.push(m);
      this.wake();
    });
    this.stream.on('error', (err: Error) => {
      this.error = err;
      this.ended = true;
      this.wake();
    });
    this.stream.on('end', () => {
      this.ended = true;
      this.wake();
    });
    this.stream.write({ hello: { network: '', region: '', zones: [], agentVersion: 'test', viewRevision: '0', importNamespaces: [], viewChunks: true, ...hello } });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  send(m: AgentMessage): void {
    this.stream.write(m);
  }

  /** The first message (already received or future) after index `from` matching pred. */
  async next(pred: (m: HubMessage) => boolean, from = 0, timeoutMs = 10_000): Promise<HubMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.messages.slice(from).find(pred);
      if (m) return m;
      if (this.ended) throw new Error(`stream ended without the expected message (error: ${this.error?.message ?? 'none'}; got ${JSON.stringify(this.messages.map((x) => Object.keys(x)))})`);
      if (Date.now() > deadline) throw new Error(`no expected message within ${timeoutMs} ms; got ${JSON.stringify(this.messages.map((x) => Object.keys(x)))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Waits until the stream ended (or failed). */
  async closed(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('the stream did not end');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  close(): void {
    this.stream.cancel();
    this.client.close();
  }
}

/** Calls Join over TLS trusting `rootPem`. */
export function rawJoin(address: string, rootPem: string, req: JoinRequest): Promise<{ res?: JoinResponse; err?: grpc.ServiceError }> {
  const client = agentChannelClient(address, agentCredentials(rootPem));
  return new Promise((resolve) => {
    client.join(req, { deadline: Date.now() + 10_000 }, (err, res) => {
      client.close();
      resolve(err ? { err } : { res: res! });
    });
  });
}

/** An agent's stored key + chain (trust/channel.pem or trust/intermediate.pem). */
export function readCredential(agentDataDir: string, file: 'channel.pem' | 'intermediate.pem'): { keyPem: string; chainPem: string } {
  const text = readFileSync(join(agentDataDir, 'trust', file), 'utf8');
  const keyPem = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n?/.exec(text)![0];
  return { keyPem, chainPem: text.replace(keyPem, '') };
}
