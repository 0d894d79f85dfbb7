// Messages between the orchestrator (bench/fleet.ts) and its child processes
// (bench/sim-agents.ts, bench/light-clients.ts), over Node's IPC channel.
// Times are absolute milliseconds, performance.timeOrigin + performance.now(),
// comparable across processes on one machine.
import type { Scale } from './model.js';

export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Event-loop delay of a child process over a phase (ms), to show the harness is not the bottleneck. */
export interface LoopStats {
  p50: number;
  p99: number;
  max: number;
  /** CPU the process used in the phase (ms). */
  cpuMs: number;
  wallMs: number;
}

// ---- simulated agents ----
export type ToSim =
  /** batch: agents connecting at a time (the next batch once all reports of this one are acknowledged); 0 = all at once. */
  { type: 'start'; scale: Scale; hubAgentAddr: string; clusters: number[]; batch: number } | { type: 'wait-revision'; revision: number } | { type: 'stop' };

export type FromSim =
  | { type: 'generated'; objects: number; ms: number }
  | { type: 'loaded'; firstReportAt: number; lastAckAt: number; agents: number; reconnects: number; loop: LoopStats }
  | { type: 'progress'; acked: number; connected: number; agents: number; reconnects: number; lastDrop?: string }
  | { type: 'revision-reached'; at: number; loop: LoopStats }
  | { type: 'error'; message: string };

// ---- light ADS clients ----
export interface ExpectMsg {
  type: 'expect';
  id: number;
  /** ClusterLoadAssignment name. */
  name: string;
  address: string;
  port: number;
  present: boolean;
}

export type ToLight =
  | { type: 'init'; scale: Scale; proxies: number[]; localitySubZone: string; region: string; zone: string }
  | { type: 'connect'; target: string; mode: 'meshfed' | 'floor' }
  | ExpectMsg
  /** Answer 'converged' for this change now, with whatever matched so far (the orchestrator timed out). */
  | { type: 'report'; id: number }
  | { type: 'disconnect' }
  | { type: 'capture'; names: string[] }
  | { type: 'loop-reset' }
  | { type: 'loop-read' }
  | { type: 'stop' };

export type FromLight =
  | { type: 'ready' }
  | { type: 'synced'; at: number; firstAt: number; clients: number }
  | { type: 'expect-ready'; id: number; alreadyMatched: number }
  | {
      type: 'converged';
      id: number;
      /** ACK time of the last subscribed client that saw the change; NaN when some never did (timeout). */
      lastAckAt: number;
      firstAckAt: number;
      matched: number;
      clients: number;
      /** version_info of the response that carried the change (first client). */
      version: string;
      /** EDS responses the subscribed clients received while waiting. */
      responses: number;
    }
  | { type: 'captured'; resources: Record<string, string> }
  | { type: 'loop'; loop: LoopStats }
  | { type: 'error'; message: string }
  | { type: 'disconnected' };
