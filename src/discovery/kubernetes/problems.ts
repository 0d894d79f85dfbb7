// Problems in what users wrote (a malformed annotation, an unknown affinity, a
// port meshfed cannot use): kept per service for the source's status, and each
// distinct one reported once as a Kubernetes core/v1 Event (type Warning, on
// the object) so `kubectl describe` and `kubectl get events` show it where the
// user looks. Bounded: the status lists at most MAX_LISTED problems, at most
// MAX_REMEMBERED distinct problems are remembered as already reported, and at
// most EVENTS_PER_MINUTE Events are written (the rest are counted as dropped).
// A failing Event write (no permission to create events, server away) is
// counted and logged once; it never affects discovery.
import type { CoreV1Api } from '@kubernetes/client-node';
import { kubeError } from '../../kube/errors.js';
import { logger } from '../../util/log.js';
import type { Problem } from './export.js';

const log = logger('kubernetes');
const MAX_LISTED = 100;
const MAX_REMEMBERED = 5000;
const EVENTS_PER_MINUTE = 60;

export interface ProblemsStatus {
  total: number;
  /** At most 100, ordered by object. */
  items: Problem[];
  events: { written: number; failed: number; dropped: number; lastError?: string };
}

function problemKey(p: Problem): string {
  return `${p.object.kind}/${p.object.namespace ?? ''}/${p.object.name}\u0000${p.field}\u0000${p.value}`;
}

export class Problems {
  /** service key -> its problems (replaced on every recompute of that service). */
  private readonly byService = new Map<string, Problem[]>();
  private readonly reported = new Set<string>();
  private written = 0;
  private failed = 0;
  private dropped = 0;
  private lastError: string | undefined;
  private windowStart = 0;
  private windowCount = 0;

  constructor(
    private readonly events: { api: CoreV1Api; uid: (p: Problem) => string | undefined } | undefined,
    private readonly component = 'meshfed-agent',
  ) {}

  /** The problems of one service now (empty: none). New distinct ones are reported as Events. */
  set(serviceKey: string, problems: Problem[]): void {
    if (problems.length === 0) this.byService.delete(serviceKey);
    else this.byService.set(serviceKey, problems);
    for (const p of problems) {
      const k = problemKey(p);
      if (this.reported.has(k)) continue;
      if (this.reported.size >= MAX_REMEMBERED) this.reported.delete(this.reported.values().next().value as string);
      this.reported.add(k);
      log.warn(p.message, { object: `${p.object.kind} ${p.object.namespace ?? ''}/${p.object.name}`, field: p.field, value: p.value });
      this.emit(p);
    }
  }

  private emit(p: Problem): void {
    if (!this.events) return;
    const now = Date.now();
    if (now - this.windowStart > 60_000) {
      this.windowStart = now;
      this.windowCount = 0;
    }
    if (++this.windowCount > EVENTS_PER_MINUTE) {
      this.dropped++;
      return;
    }
    const namespace = p.object.namespace ?? 'default';
    const time = new Date(now);
    const involved: Record<string, string> = { kind: p.object.kind, name: p.object.name, apiVersion: p.object.kind === 'EndpointSlice' ? 'discovery.k8s.io/v1' : 'v1' };
    if (p.object.namespace) involved['namespace'] = p.object.namespace;
    const uid = this.events.uid(p);
    if (uid) involved['uid'] = uid;
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${p.object.name}.${now.toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`, namespace },
      involvedObject: involved,
      reason: p.reason,
      message: `${p.message.slice(0, 900)}`,
      type: 'Warning',
      source: { component: this.component },
      reportingComponent: 'meshfed.io/agent',
      reportingInstance: this.component,
      firstTimestamp: time,
      lastTimestamp: time,
      count: 1,
    };
    this.events.api.createNamespacedEvent({ namespace, body }).then(
      () => this.written++,
      (err: unknown) => {
        this.failed++;
        const e = kubeError(err, { verb: 'create', group: '', resource: 'events', namespace });
        if (this.lastError === undefined) log.warn(`cannot write an Event for a problem: ${e.message}`);
        this.lastError = e.message;
      },
    );
  }

  status(): ProblemsStatus {
    const all: Problem[] = [];
    for (const list of this.byService.values()) all.push(...list);
    all.sort((a, b) => problemKey(a).localeCompare(problemKey(b)));
    const out: ProblemsStatus = { total: all.length, items: all.slice(0, MAX_LISTED), events: { written: this.written, failed: this.failed, dropped: this.dropped } };
    if (this.lastError) out.events.lastError = this.lastError;
    return out;
  }
}
