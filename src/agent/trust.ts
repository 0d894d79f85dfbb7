// The agent's side of the mesh's trust: joining the hub with a one-time token,
// its own channel certificate (mTLS to the hub, renewed before expiry), the
// trust bundle the hub pushes, and this cluster's intermediate CA, whose key is
// generated here and never sent anywhere (the hub gets a CSR).
//
// Layout of <agent data dir>/trust (0700):
//
//   channel.pem        the agent's channel key + certificate chain (0600)
//   intermediate.pem   the cluster's intermediate CA key + certificate chain (0600)
//   bundle.pem         the trust bundle (roots)
//   state.json         trust domain, which token the agent joined with, the CA
//                      settings the intermediate was issued under
//
// A key and its certificate share a file written atomically, so a crash never
// pairs a new certificate with an old key.
import type * as grpc from '@grpc/grpc-js';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { agentId, certInfo, createCsr, fingerprint, generateKeyPair, intermediateId, parseSpiffeId, renewalTime, splitPem, uriSans, verifyChain, type CaMaterial, type KeyPair } from '../ca/index.js';
import { parseJoinToken, type JoinToken } from '../channel/join-token.js';
import { agentChannelClient, type AgentMessage, type HubMessage, type Issued, type JoinResponse, type TrustBundle } from '../channel/protocol.js';
import { agentCredentials, JoinError, probeHubRoot } from '../channel/tls.js';
import { hubAddresses } from '../util/address.js';
import { errorMessage } from '../util/errors.js';
import { writeFileDurable } from '../util/files.js';
import { logger } from '../util/log.js';

const log = logger('agent.trust');

/** After a refused CSR, ask again no sooner than this (or when the bundle changes). */
const RETRY_AFTER_REFUSAL_MS = 30_000;
/** A CSR without an answer within this is asked again. */
const PENDING_TIMEOUT_MS = 15_000;

export interface AgentTrustOptions {
  cluster: string;
  /** The agent's data directory; trust material lives in its `trust` subdirectory. */
  dataDir: string;
  /** The hub's agent channel; several replicas comma-separated (a join tries each in turn). */
  hubAddress: string;
  /** Plaintext channel without agent authentication (a hub with --insecure-channel). */
  insecureChannel: boolean;
  /** The join token's text (a secret: never logged). */
  joinToken?: string;
}

export interface CertSummary {
  spiffeId: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  nextRenewal: string;
  /** Fingerprint of the CA that signed it. */
  issuer?: string;
}

export interface AgentTrustStatus {
  channel: 'mtls' | 'insecure';
  trustDomain?: string;
  joined?: { tokenId: string; at: string };
  agentCert?: CertSummary;
  intermediate?: CertSummary;
  bundle: { fingerprint: string; subject: string; notAfter: string }[];
  rotationPhase?: string;
  /** Why the agent cannot join or renew (cleared on success). */
  lastError?: string;
  /** The hub's last refusal of an intermediate CSR. */
  intermediateError?: string;
  issued: { intermediates: number; agentCerts: number };
}

interface Stored {
  trustDomain?: string;
  joinedWithToken?: string;
  joinedAt?: string;
  /** Mesh.spec.ca.intermediateCertTtl (ms) the current intermediate was issued under. */
  intermediateTtlMs?: number;
  /** When the current certificates arrived (their half-life counts from then). */
  received?: { channel?: string; intermediate?: string };
}

interface Credential {
  keyPem: string;
  /** Certificate followed by the CAs above it except the root. */
  chainPem: string;
  cert: X509Certificate;
  /** When the agent received it (ms): half-life counts from here (see renewAt). */
  receivedAt: number;
}

/** The agent's trust material. `current()`, `onChange()` and `status()` are what the data plane uses. */
export class AgentTrust {
  private readonly dir: string;
  private stored: Stored = {};
  private channel: Credential | undefined;
  private intermediate: Credential | undefined;
  private bundlePem = '';
  private bundleMsg: TrustBundle | undefined;
  private token: JoinToken | undefined;
  private credsVersion = 0;
  private creds: grpc.ChannelCredentials | undefined;
  private credsBuiltFor = -1;
  private send: ((m: AgentMessage) => boolean) | undefined;
  private pending: { intermediate?: { key: KeyPair; at: number }; agent?: { key: KeyPair; at: number } } = {};
  private refusedAt: { intermediate?: number; agent?: number } = {};
  private lastError: string | undefined;
  private intermediateError: string | undefined;
  private readonly counts = { intermediates: 0, agentCerts: 0 };
  private readonly listeners: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  /** A malformed join token is an error here, before anything starts. */
  constructor(private readonly opts: AgentTrustOptions) {
    this.dir = join(opts.dataDir, 'trust');
    if (opts.joinToken && !opts.insecureChannel) this.token = parseJoinToken(opts.joinToken);
  }

  /** Loads what the agent stored. */
  async load(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    const read = async (f: string): Promise<string | undefined> => {
      try {
        return await readFile(join(this.dir, f), 'utf8');
      } catch (err) {
        if ((err as { code?: string }).code === 'ENOENT') return undefined;
        throw err;
      }
    };
    const state = await read('state.json');
    if (state) this.stored = JSON.parse(state) as Stored;
    this.bundlePem = (await read('bundle.pem')) ?? '';
    const inter = await read('intermediate.pem');
    if (inter) this.intermediate = parseCredential(inter, 'intermediate.pem', this.stored.received?.intermediate);
    if (!this.opts.insecureChannel) {
      const ch = await read('channel.pem');
      if (ch) this.channel = parseCredential(ch, 'channel.pem', this.stored.received?.channel);
    }
    if (this.intermediate) log.info('loaded the cluster intermediate CA from disk', { serial: this.intermediate.cert.serialNumber, notAfter: new Date(this.intermediate.cert.validTo).toISOString() });
  }

  /**
   * Whether the agent must join before it can dial the hub: 'join' (a token to
   * redeem), 'no' (insecure channel, or a stored certificate), or an error
   * naming what is missing.
   */
  joinPlan(): 'join' | 'no' | Error {
    if (this.opts.insecureChannel) return 'no';
    const rejoin = this.token && this.token.id !== this.stored.joinedWithToken;
    if (rejoin) return 'join';
    if (!this.channel) {
      return new Error(
        `no join token and no agent certificate in ${this.dir}: create a token at the hub (meshfed cluster add ${this.opts.cluster} --region R --zones Z) and pass it with --join-token-file (or MESHFED_JOIN_TOKEN); or run hub and agents with --insecure-channel for development`,
      );
    }
    if (Date.parse(this.channel.cert.validTo) <= Date.now()) {
      this.lastError = `the agent certificate expired at ${new Date(this.channel.cert.validTo).toISOString()} (the agent was away longer than it lives): join again with a new token (meshfed cluster add ${this.opts.cluster})`;
      return new Error(this.lastError);
    }
    if (this.token) log.info('already joined: the join token is not used again', { tokenId: this.token.id });
    return 'no';
  }

  /**
   * Redeems the join token: finds the root the token pins in what the hub
   * presents, generates the channel key here, sends a CSR over TLS that
   * authenticates the hub, and stores the certificate and the bundle.
   * Transient failures (hub unreachable, a standby replica) are retried with backoff; a refusal
   * ends the attempt and stays in status().
   */
  async joinLoop(): Promise<boolean> {
    let backoff = 250;
    // Several hub replicas: each in turn (a standby answers UNAVAILABLE, transient); the backoff after a whole round.
    const hubs = hubAddresses(this.opts.hubAddress);
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await this.joinOnce(hubs[attempt % hubs.length]!);
        this.lastError = undefined;
        return true;
      } catch (err) {
        const e = err instanceof JoinError ? err : new JoinError(errorMessage(err), false);
        if (e.message !== this.lastError) log.error(e.permanent ? 'cannot join the hub' : 'cannot join the hub yet; retrying', { error: e.message });
        this.lastError = e.message;
        if (e.permanent) return false;
        if ((attempt + 1) % hubs.length !== 0) continue;
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5000);
      }
    }
    return false;
  }

  private async joinOnce(hubAddress: string): Promise<void> {
    const token = this.token!;
    const { rootPem, trustDomain } = await probeHubRoot(hubAddress, token.pins);
    const key = await generateKeyPair();
    const csrPem = await createCsr(key, { uris: [agentId(trustDomain, this.opts.cluster)], ca: false });
    const client = agentChannelClient(hubAddress, agentCredentials(rootPem));
    let res: JoinResponse;
    try {
      res = await new Promise<JoinResponse>((resolve, reject) => {
        client.join({ tokenId: token.id, tokenSecret: token.secret, cluster: this.opts.cluster, csrPem }, { deadline: Date.now() + 15_000 }, (err, r) => {
          if (err) {
            const transient = err.code === 14 /* UNAVAILABLE */ || err.code === 4; /* DEADLINE_EXCEEDED */
            reject(new JoinError(transient ? `cannot reach the hub at ${hubAddress} to join (${err.details || err.message})` : `join refused by the hub: ${err.details || err.message}`, !transient));
          } else resolve(r!);
        });
      });
    } finally {
      client.close();
    }
    const cred = this.checkIssued(res.certChainPem, key, res.rootsPem, 'agent certificate');
    if (!splitPem(res.rootsPem).some((r) => fingerprint(r) === fingerprint(rootPem))) {
      throw new JoinError("the hub's trust bundle does not contain the root the join token pins", true);
    }
    await this.saveChannel(cred);
    await this.saveBundle(res.rootsPem);
    this.stored = {
      ...this.stored,
      trustDomain: res.trustDomain,
      joinedWithToken: token.id,
      joinedAt: new Date().toISOString(),
      received: { ...this.stored.received, channel: new Date(cred.receivedAt).toISOString() },
    };
    await this.saveState();
    this.counts.agentCerts++;
    log.info('joined the hub', { tokenId: token.id, trustDomain: res.trustDomain, certificate: cred.cert.serialNumber, notAfter: new Date(cred.cert.validTo).toISOString() });
  }

  /** Credentials for the hub connection; a new object (and version) whenever the certificate or the bundle changes. */
  channelCredentials(): { creds: grpc.ChannelCredentials; version: number } | undefined {
    if (this.opts.insecureChannel) return undefined;
    if (!this.channel || !this.bundlePem) return undefined;
    if (this.credsBuiltFor !== this.credsVersion || !this.creds) {
      this.creds = agentCredentials(this.bundlePem, { keyPem: this.channel.keyPem, certChainPem: this.channel.chainPem });
      this.credsBuiltFor = this.credsVersion;
    }
    return { creds: this.creds, version: this.credsVersion };
  }

  // --- the session with the hub

  /** A session started (Welcome): `send` writes on it. The hub sends the bundle next. */
  sessionStarted(send: (m: AgentMessage) => boolean): void {
    this.send = send;
  }

  sessionEnded(): void {
    this.send = undefined;
    this.pending = {};
  }

  /** Trust messages from the hub; returns false for other messages. */
  onHubMessage(m: HubMessage): boolean {
    if (m.trustBundle) void this.onBundle(m.trustBundle).catch((err: unknown) => this.fail('cannot store the trust bundle', err));
    else if (m.intermediate) void this.onIntermediate(m.intermediate).catch((err: unknown) => this.fail('cannot store the intermediate CA', err));
    else if (m.agentCert) void this.onAgentCert(m.agentCert).catch((err: unknown) => this.fail('cannot store the agent certificate', err));
    else if (m.csrRejected) this.onRejected(m.csrRejected.what, m.csrRejected.message);
    else return false;
    return true;
  }

  private fail(what: string, err: unknown): void {
    this.lastError = `${what}: ${errorMessage(err)}`;
    log.error(this.lastError);
  }

  private async onBundle(b: TrustBundle): Promise<void> {
    this.bundleMsg = b;
    if (b.rootsPem && b.rootsPem !== this.bundlePem) {
      const before = this.bundlePem ? splitPem(this.bundlePem).map(fingerprint) : [];
      await this.saveBundle(b.rootsPem);
      log.info('trust bundle updated', { roots: splitPem(b.rootsPem).map((r) => fingerprint(r).slice(0, 16)), before: before.map((f) => f.slice(0, 16)), rotation: b.rotationPhase });
      this.emit();
    }
    if (this.stored.trustDomain !== b.trustDomain) {
      this.stored = { ...this.stored, trustDomain: b.trustDomain };
      await this.saveState();
    }
    // A new bundle may fix what the hub refused before.
    this.refusedAt = {};
    this.maybeRequest();
  }

  private async onIntermediate(m: Issued): Promise<void> {
    const p = this.pending.intermediate;
    if (!p) return;
    delete this.pending.intermediate;
    let cred: Credential;
    try {
      cred = this.checkIssued(m.certChainPem, p.key, m.rootsPem, 'intermediate CA');
    } catch (err) {
      this.intermediateError = errorMessage(err);
      log.error('the hub sent an unusable intermediate CA', { error: this.intermediateError });
      return;
    }
    await writeFileDurable(join(this.dir, 'intermediate.pem'), cred.keyPem + cred.chainPem, 0o600);
    if (m.rootsPem && m.rootsPem !== this.bundlePem) await this.saveBundle(m.rootsPem);
    this.intermediate = cred;
    this.stored = {
      ...this.stored,
      intermediateTtlMs: Number(this.bundleMsg?.intermediateTtlMs ?? 0) || undefined,
      received: { ...this.stored.received, intermediate: new Date(cred.receivedAt).toISOString() },
    };
    await this.saveState();
    this.intermediateError = undefined;
    this.counts.intermediates++;
    log.info('cluster intermediate CA issued', { serial: cred.cert.serialNumber, notAfter: new Date(cred.cert.validTo).toISOString(), issuer: cred.cert.issuer.replace(/\n/g, ', ') });
    this.emit();
    this.maybeRequest();
  }

  private async onAgentCert(m: Issued): Promise<void> {
    const p = this.pending.agent;
    if (!p) return;
    delete this.pending.agent;
    const cred = this.checkIssued(m.certChainPem, p.key, m.rootsPem, 'agent certificate');
    await this.saveChannel(cred);
    if (m.rootsPem && m.rootsPem !== this.bundlePem) await this.saveBundle(m.rootsPem);
    this.stored = { ...this.stored, received: { ...this.stored.received, channel: new Date(cred.receivedAt).toISOString() } };
    await this.saveState();
    this.counts.agentCerts++;
    log.info('agent certificate renewed', { serial: cred.cert.serialNumber, notAfter: new Date(cred.cert.validTo).toISOString() });
    this.maybeRequest();
  }

  private onRejected(what: string, message: string): void {
    const kind = what === 'agent' ? 'agent' : 'intermediate';
    delete this.pending[kind];
    this.refusedAt[kind] = Date.now();
    if (kind === 'intermediate') this.intermediateError = message;
    else this.lastError = message;
    log.error('the hub refused a CSR', { what: kind, message });
    this.schedule();
  }

  /** The certificate the hub answered: for our key, chaining to the bundle. */
  private checkIssued(chainPem: string, key: KeyPair, rootsPem: string, what: string): Credential {
    const certs = splitPem(chainPem);
    if (certs.length === 0) throw new JoinError(`the hub answered no ${what}`, true);
    const cert = new X509Certificate(certs[0]!);
    if (!cert.publicKey.equals(createPublicKey(key.privateKeyPem))) throw new JoinError(`the ${what} the hub answered is not for this agent's key`, true);
    try {
      verifyChain(certs[0]!, certs.slice(1), splitPem(rootsPem || this.bundlePem));
    } catch (err) {
      throw new JoinError(`the ${what} the hub answered does not verify: ${errorMessage(err)}`, true);
    }
    return { keyPem: key.privateKeyPem.endsWith('\n') ? key.privateKeyPem : key.privateKeyPem + '\n', chainPem: certs.join(''), cert, receivedAt: Date.now() };
  }

  // --- when to ask

  /** Asks for whatever needs (re-)issuing, if a session is up and the hub's bundle is known. */
  private maybeRequest(): void {
    if (this.stopped) return;
    const b = this.bundleMsg;
    if (!this.send || !b) return this.schedule();
    const now = Date.now();
    const why = this.intermediateReason(b, now);
    if (why && this.mayAsk('intermediate', now)) void this.request('intermediate', b.trustDomain, why);
    if (!this.opts.insecureChannel) {
      const whyAgent = this.agentCertReason(b, now);
      if (whyAgent && this.mayAsk('agent', now)) void this.request('agent', b.trustDomain, whyAgent);
    }
    this.schedule();
  }

  private mayAsk(kind: 'intermediate' | 'agent', now: number): boolean {
    const p = this.pending[kind];
    if (p && now - p.at < PENDING_TIMEOUT_MS) return false;
    const r = this.refusedAt[kind];
    return !(r && now - r < RETRY_AFTER_REFUSAL_MS);
  }

  private intermediateReason(b: TrustBundle, now: number): string | undefined {
    const c = this.intermediate;
    if (!c) return 'none yet';
    const id = uriSans(c.cert.raw)
      .map(parseSpiffeId)
      .find((x) => x?.kind === 'intermediate');
    if (id?.trustDomain !== b.trustDomain) return `trust domain is now ${b.trustDomain}`;
    if (!signedBy(c.cert, b.signerPem)) return 'the mesh CA that signs changed (root rotation)';
    const ttl = Number(b.intermediateTtlMs);
    if (ttl && this.stored.intermediateTtlMs && ttl !== this.stored.intermediateTtlMs) return `Mesh intermediateCertTtl changed (${this.stored.intermediateTtlMs} -> ${ttl} ms)`;
    if (now >= renewAt(c)) return 'half of its lifetime passed';
    return undefined;
  }

  private agentCertReason(b: TrustBundle, now: number): string | undefined {
    const c = this.channel;
    if (!c) return undefined;
    const id = uriSans(c.cert.raw)
      .map(parseSpiffeId)
      .find((x) => x?.kind === 'agent');
    if (id?.trustDomain !== b.trustDomain) return `trust domain is now ${b.trustDomain}`;
    if (!signedBy(c.cert, b.signerPem)) return 'the mesh CA that signs changed (root rotation)';
    if (now >= renewAt(c)) return 'half of its lifetime passed';
    return undefined;
  }

  private async request(kind: 'intermediate' | 'agent', trustDomain: string, why: string): Promise<void> {
    const at = Date.now();
    const key = await generateKeyPair();
    const id = kind === 'intermediate' ? intermediateId(trustDomain, this.opts.cluster) : agentId(trustDomain, this.opts.cluster);
    const csrPem = await createCsr(key, { uris: [id], ca: kind === 'intermediate' });
    this.pending[kind] = { key, at };
    const sent = this.send?.(kind === 'intermediate' ? { intermediateCsr: { csrPem } } : { agentCertCsr: { csrPem } });
    if (!sent) delete this.pending[kind];
    else log.info(kind === 'intermediate' ? 'requesting the cluster intermediate CA' : 'renewing the agent certificate', { why, id });
  }

  /** Wakes up at the next renewal time (or after a refusal's back-off). */
  private schedule(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    const now = Date.now();
    const times: number[] = [];
    for (const c of [this.intermediate, this.opts.insecureChannel ? undefined : this.channel]) {
      if (c) times.push(renewAt(c));
    }
    for (const r of Object.values(this.refusedAt)) if (r) times.push(r + RETRY_AFTER_REFUSAL_MS);
    for (const p of Object.values(this.pending)) if (p) times.push(p.at + PENDING_TIMEOUT_MS);
    const next = times.filter((t) => t > now).sort((a, b) => a - b)[0];
    const wait = next === undefined ? (times.length ? 1000 : undefined) : next - now + 5;
    if (wait === undefined) return;
    this.timer = setTimeout(() => this.maybeRequest(), Math.min(wait, 2 ** 31 - 1));
    this.timer.unref();
  }

  // --- storage

  private async saveChannel(cred: Credential): Promise<void> {
    await writeFileDurable(join(this.dir, 'channel.pem'), cred.keyPem + cred.chainPem, 0o600);
    this.channel = cred;
    this.credsVersion++;
  }

  private async saveBundle(rootsPem: string): Promise<void> {
    await writeFileDurable(join(this.dir, 'bundle.pem'), rootsPem, 0o644);
    this.bundlePem = rootsPem;
    this.credsVersion++;
  }

  private async saveState(): Promise<void> {
    await writeFileDurable(join(this.dir, 'state.json'), JSON.stringify(this.stored, null, 1) + '\n', 0o600);
  }

  private emit(): void {
    for (const cb of this.listeners) {
      try {
        cb();
      } catch (err) {
        log.error('trust change listener failed', { error: String(err) });
      }
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  // --- the interface for the data plane

  /**
   * This cluster's intermediate CA (key included: it signs workload
   * certificates here) and the trust bundle; undefined until the hub issued
   * one, or when it expired.
   */
  current(): { ca: CaMaterial; trustDomain: string } | undefined {
    const c = this.intermediate;
    if (!c || Date.parse(c.cert.validTo) <= Date.now()) return undefined;
    const certs = splitPem(c.chainPem);
    const id = uriSans(c.cert.raw)
      .map(parseSpiffeId)
      .find((x) => x?.kind === 'intermediate');
    return {
      ca: { certPem: certs[0]!, keyPem: c.keyPem, chainPem: certs.slice(1).join(''), rootsPem: this.bundlePem },
      trustDomain: id?.trustDomain ?? this.stored.trustDomain ?? 'meshfed.local',
    };
  }

  /** Called when the intermediate or the bundle changes. */
  onChange(cb: () => void): void {
    this.listeners.push(cb);
  }

  status(): AgentTrustStatus {
    const s: AgentTrustStatus = {
      channel: this.opts.insecureChannel ? 'insecure' : 'mtls',
      bundle: splitPem(this.bundlePem).map((r) => {
        const i = certInfo(r);
        return { fingerprint: fingerprint(r), subject: i.subject, notAfter: i.notAfter };
      }),
      issued: { ...this.counts },
    };
    if (this.stored.trustDomain) s.trustDomain = this.stored.trustDomain;
    if (this.stored.joinedWithToken && this.stored.joinedAt) s.joined = { tokenId: this.stored.joinedWithToken, at: this.stored.joinedAt };
    if (this.channel && !this.opts.insecureChannel) s.agentCert = summary(this.channel, this.bundlePem);
    if (this.intermediate) s.intermediate = summary(this.intermediate, this.bundlePem);
    if (this.bundleMsg?.rotationPhase) s.rotationPhase = this.bundleMsg.rotationPhase;
    if (this.lastError) s.lastError = this.lastError;
    if (this.intermediateError) s.intermediateError = this.intermediateError;
    return s;
  }
}

/**
 * When to renew: at half of the lifetime counted from when the agent got the
 * certificate. notBefore is backdated for clock skew; counting from it could
 * put the half-life of a few-seconds certificate (tests; the Mesh minimum is
 * 2 s) in the past at once, and renew it in a loop.
 */
function renewAt(c: Credential): number {
  const notAfter = Date.parse(c.cert.validTo);
  const from = Math.min(Math.max(Date.parse(c.cert.validFrom), c.receivedAt), notAfter);
  return renewalTime(new Date(from), new Date(notAfter)).getTime();
}

function signedBy(cert: X509Certificate, signerPem: string): boolean {
  if (!signerPem) return true;
  const signer = new X509Certificate(signerPem);
  return cert.checkIssued(signer) && cert.verify(signer.publicKey);
}

function summary(c: Credential, bundlePem: string): CertSummary {
  const issuer = [...splitPem(c.chainPem).slice(1), ...splitPem(bundlePem)].find((p) => signedBy(c.cert, p));
  const out: CertSummary = {
    spiffeId: uriSans(c.cert.raw)[0] ?? '',
    serial: c.cert.serialNumber,
    notBefore: new Date(c.cert.validFrom).toISOString(),
    notAfter: new Date(c.cert.validTo).toISOString(),
    nextRenewal: new Date(renewAt(c)).toISOString(),
  };
  if (issuer) out.issuer = fingerprint(issuer);
  return out;
}

/** A stored key + certificate chain file. */
function parseCredential(text: string, file: string, receivedAt: string | undefined): Credential {
  const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n?/.exec(text)?.[0];
  const certs = splitPem(text);
  if (!key || certs.length === 0) throw new Error(`${file}: expected a private key and a certificate chain`);
  const cert = new X509Certificate(certs[0]!);
  return { keyPem: key.endsWith('\n') ? key : key + '\n', chainPem: certs.join(''), cert, receivedAt: receivedAt ? Date.parse(receivedAt) : Date.parse(cert.validFrom) };
}
