// `meshfed install systemd agent|identity`: systemd units for a VM, generated
// (pure: options in, unit text out; the CLI prints). Invariants:
// - each service runs as an unprivileged User= with no capabilities,
//   NoNewPrivileges, ProtectSystem=strict (the whole tree read-only) and
//   write access to exactly its own data directory (ReadWritePaths=);
// - the agent's data directory is under /var/lib/meshfed (StateDirectory=, so
//   systemd creates it, owned by User=, mode 0700: it holds the agent's keys);
// - Restart=on-failure: a clean stop (SIGTERM, exit 0) stays stopped;
// - no MemoryDenyWriteExecute: Node's JIT needs writable executable memory.
// An argument systemd would split or expand (space, quote, %, $, \) is refused,
// not quoted: the units stay readable and each value is what the flag gets.
import { MeshfedError } from '../util/errors.js';

export interface AgentUnitOptions {
  cluster: string;
  hub: string;
  /** The meshfed executable (absolute). */
  meshfedBin: string;
  joinTokenFile?: string;
  config?: string;
  user: string;
}

export interface IdentityUnitOptions {
  dir: string;
  tokenFile: string;
  agent?: string;
  meshfedBin: string;
  /** The workload's user: it reads key.pem, so the helper writes as that user. */
  user: string;
  /** The agent unit this one follows on the same machine, if any (e.g. meshfed-agent.service). */
  after?: string;
}

export const AGENT_DATA_DIR = '/var/lib/meshfed/agent';

const SAFE = /^[A-Za-z0-9_./:@=,+[\]-]+$/;

function arg(value: string, what: string): string {
  if (!SAFE.test(value)) throw new MeshfedError('usage', `${what}: "${value}" has a character a systemd unit would split or expand (letters, digits and _ . / : @ = , + - [ ] only)`);
  return value;
}

function absolute(value: string, what: string): string {
  if (!value.startsWith('/')) throw new MeshfedError('usage', `${what}: "${value}" is not an absolute path (systemd needs one)`);
  return arg(value, what);
}

const HARDENING = [
  'NoNewPrivileges=yes',
  'ProtectSystem=strict',
  'ProtectHome=yes',
  'PrivateTmp=yes',
  'PrivateDevices=yes',
  'ProtectKernelTunables=yes',
  'ProtectKernelModules=yes',
  'ProtectKernelLogs=yes',
  'ProtectControlGroups=yes',
  'ProtectClock=yes',
  'ProtectHostname=yes',
  'RestrictNamespaces=yes',
  'RestrictRealtime=yes',
  'RestrictSUIDSGID=yes',
  'LockPersonality=yes',
  'CapabilityBoundingSet=',
  'AmbientCapabilities=',
  'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
  'SystemCallArchitectures=native',
  'UMask=0077',
];

function unit(description: string, after: string[], service: string[]): string {
  return [
    '[Unit]',
    `Description=${description}`,
    'Documentation=https://github.com/meshfed/meshfed/blob/main/docs/operations.md#on-a-vm-systemd',
    `Wants=network-online.target`,
    `After=${['network-online.target', ...after].join(' ')}`,
    '',
    '[Service]',
    'Type=simple',
    ...service,
    'Restart=on-failure',
    'RestartSec=2s',
    'TimeoutStopSec=30s',
    ...HARDENING,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** meshfed-agent.service: a cluster's agent on a VM, its data in /var/lib/meshfed/agent. */
export function agentUnit(o: AgentUnitOptions): string {
  const exec = [absolute(o.meshfedBin, '--meshfed-bin'), 'agent', '--cluster', arg(o.cluster, '--cluster'), '--hub', arg(o.hub, '--hub'), '--data-dir', AGENT_DATA_DIR];
  if (o.joinTokenFile) exec.push('--join-token-file', absolute(o.joinTokenFile, '--join-token-file'));
  if (o.config) exec.push('--config', absolute(o.config, '--config'));
  return unit(
    `meshfed agent of cluster ${o.cluster}`,
    [],
    [`User=${arg(o.user, '--user')}`, `Group=${o.user}`, 'StateDirectory=meshfed/agent', 'StateDirectoryMode=0700', `ReadWritePaths=${AGENT_DATA_DIR}`, `ExecStart=${exec.join(' ')}`],
  );
}

/** meshfed-identity.service: keeps a workload's cert.pem/key.pem/ca.pem in `dir` current. */
export function identityUnit(o: IdentityUnitOptions): string {
  const dir = absolute(o.dir, '--dir');
  const exec = [absolute(o.meshfedBin, '--meshfed-bin'), 'identity', 'run', '--dir', dir, '--token-file', absolute(o.tokenFile, '--token-file')];
  if (o.agent) exec.push('--agent', arg(o.agent, '--agent'));
  return unit(`meshfed identity run: workload certificates in ${dir}`, o.after ? [arg(o.after, '--after')] : [], [
    `User=${arg(o.user, '--user')}`,
    `ReadWritePaths=${dir}`,
    `ExecStart=${exec.join(' ')}`,
  ]);
}
