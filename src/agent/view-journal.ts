// The agent's copy of the hub's view on disk, so a restarted agent serves while
// the hub is away. Changes are appended to a journal (cost follows the change);
// the whole view is rewritten only when the journal has grown past the size of
// the last full copy (amortized: each byte of view is rewritten a bounded number
// of times). It is a cache of the hub's state: a torn last line is dropped.
import { mkdir, open, readFile, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApiObject } from '../api/index.js';
import { writeFileDurable } from '../util/files.js';

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
      const snap = JSON.parse(text) as { cluster: string; revision: number; objects: [string, ApiObject][] };
      if (snap.cluster !== cluster) {
        throw new Error(`${j.snapshotFile} belongs to cluster "${snap.cluster}", not "${cluster}": use another --data-dir`);
      }
      saved.revision = snap.revision;
      saved.objects = new Map(snap.objects);
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
        for (const [k, o] of e.upserts) saved.objects.set(k, o);
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

  /** Replaces everything (a full view from the hub). */
  replace(revision: number, all: Map<string, ApiObject>): Promise<void> {
    this.chain = this.chain.then(() => this.compact(revision, all));
    return this.chain;
  }

  private async compact(revision: number, all: Map<string, ApiObject>): Promise<void> {
    const text = JSON.stringify({ cluster: this.cluster, revision, objects: [...all] });
    await writeFileDurable(this.snapshotFile, text);
    this.snapshotBytes = text.length;
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
