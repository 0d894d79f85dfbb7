// The agent's copy of the hub's view on disk, so a restarted agent serves while
// the hub is away. Changes are appended to a journal (cost follows the change);
// the whole view is rewritten only when the journal has grown past the size of
// the last full copy (amortized: each byte of view is rewritten a bounded number
// of times). It is a cache of the hub's state: a torn last line is dropped.
//
// view.json: a header line {"cluster","revision","format":2}, then one JSON array
// of objects per line. A full view from the hub is written as the arrays it came
// in (no re-serialization of the fleet). The older one-object format
// {"cluster","revision","objects":[[key, object], ...]} is still read.
import { mkdir, open, readFile, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { keyOf, refOf, type ApiObject } from '../api/index.js';
import { writeFileDurable } from '../util/files.js';
import { internObject } from '../util/intern.js';

export interface SavedView {
  revision: number;
  objects: Map<string, ApiObject>;
}

interface JournalEntry {
  revision: number;
  upserts: [string, ApiObject][];
  deletes: string[];
}

const MIN_COMPACT_BYTES = 4 * 1024 * 1024;

export class ViewJournal {
  private journal: FileHandle | undefined;
  private journalBytes = 0;
  private snapshotBytes = 0;
  private chain: Promise<void> = Promise.resolve();

  private constructor(
    private readonly dir: string,
    private readonly cluster: string,
  ) {}

  private get snapshotFile(): string {
    return join(this.dir, 'view.json');
  }
  private get journalFile(): string {
    return join(this.dir, 'view-journal.jsonl');
  }

  /** Opens the journal and returns the saved view (empty revision 0 if none). */
  static async open(dir: string, cluster: string): Promise<{ journal: ViewJournal; saved: SavedView }> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const j = new ViewJournal(dir, cluster);
    const saved: SavedView = { revision: 0, objects: new Map() };
    try {
      const text = await readFile(j.snapshotFile, 'utf8');
      j.snapshotBytes = text.length;
      const nl = text.indexOf('\n');
      const head = JSON.parse(nl === -1 ? text : text.slice(0, nl)) as { cluster: string; revision: number; format?: number; objects?: [string, ApiObject][] };
      if (head.cluster !== cluster) {
        throw new Error(`${j.snapshotFile} belongs to cluster "${head.cluster}", not "${cluster}": use another --data-dir`);
      }
      saved.revision = head.revision;
      if (head.format === 2) {
        let pos = nl + 1;
        while (nl !== -1 && pos < text.length) {
          let end = text.indexOf('\n', pos);
          if (end === -1) end = text.length;
          if (end > pos) for (const o of JSON.parse(text.slice(pos, end)) as ApiObject[]) saved.objects.set(keyOf(refOf(o)), internObject(o));
          pos = end + 1;
        }
      } else {
        for (const [k, o] of head.objects ?? []) saved.objects.set(k, internObject(o));
      }
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
    }
    try {
      const text = await readFile(j.journalFile, 'utf8');
      j.journalBytes = text.length;
      for (const line of text.split('\n')) {
        if (!line) continue;
        let e: JournalEntry;
        try {
          e = JSON.parse(line) as JournalEntry;
        } catch {
          break; // torn tail: everything after is unreliable
        }
        if (e.revision <= saved.revision) continue;
        for (const [k, o] of e.upserts) saved.objects.set(k, internObject(o));
        for (const k of e.deletes) saved.objects.delete(k);
        saved.revision = e.revision;
      }
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
    }
    j.journal = await open(j.journalFile, 'a', 0o600);
    return { journal: j, saved };
  }

  /** Records a change; `all` is the whole view after it, used only when compacting. */
  append(revision: number, upserts: [string, ApiObject][], deletes: string[], all: () => Map<string, ApiObject>): Promise<void> {
    const line = JSON.stringify({ revision, upserts, deletes } satisfies JournalEntry) + '\n';
    this.chain = this.chain.then(async () => {
      if (!this.journal) return;
      await this.journal.write(line);
      this.journalBytes += line.length;
      if (this.journalBytes > Math.max(this.snapshotBytes, MIN_COMPACT_BYTES)) await this.compact(revision, all());
    });
    return this.chain;
  }

  /**
   * Replaces everything (a full view from the hub). `arrays`: the view as JSON
   * arrays of objects, as received; written as they are.
   */
  replace(revision: number, all: Map<string, ApiObject>, arrays?: string[]): Promise<void> {
    this.chain = this.chain.then(() => this.compact(revision, all, arrays));
    return this.chain;
  }

  private async compact(revision: number, all: Map<string, ApiObject>, arrays?: string[]): Promise<void> {
    const lines = [JSON.stringify({ cluster: this.cluster, revision, format: 2 })];
    if (arrays) {
      for (const a of arrays) lines.push(a);
    } else {
      let part: string[] = [];
      let size = 0;
      for (const o of all.values()) {
        const j = JSON.stringify(o);
        part.push(j);
        size += j.length;
        if (size > 1 << 20) {
          lines.push(`[${part.join(',')}]`);
          part = [];
          size = 0;
        }
      }
      if (part.length > 0) lines.push(`[${part.join(',')}]`);
    }
    // Buffers, not one joined string: a fleet's view is tens of MB.
    const bufs = lines.map((l) => Buffer.from(l + '\n', 'utf8'));
    lines.length = 0;
    await writeFileDurable(this.snapshotFile, bufs);
    this.snapshotBytes = bufs.reduce((n, b) => n + b.length, 0);
    // The snapshot covers every journal line: start a new, empty journal.
    await this.journal?.close();
    await rm(this.journalFile, { force: true });
    this.journal = await open(this.journalFile, 'a', 0o600);
    this.journalBytes = 0;
  }

  async close(): Promise<void> {
    await this.chain.catch(() => undefined);
    await this.journal?.close();
    this.journal = undefined;
  }
}
