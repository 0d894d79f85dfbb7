// Durable file writes: a crash leaves either the old or the new content, never half.
// Writes of one path from this process run one at a time, in call order: the
// last call's content is what stays, and two writes never share a temporary file.
import { open, rename, mkdir } from 'node:fs/promises';
import { dirname, basename, join, resolve } from 'node:path';

/** The last write queued per path (removed once it is done and nothing follows it). */
const pending = new Map<string, Promise<void>>();

/** `data` in parts is written part by part (no joined copy of a large file in memory). */
export function writeFileDurable(path: string, data: string | Uint8Array | readonly Uint8Array[], mode = 0o600): Promise<void> {
  const key = resolve(path);
  const run = (pending.get(key) ?? Promise.resolve()).catch(() => undefined).then(() => writeNow(path, data, mode));
  pending.set(key, run);
  void run
    .finally(() => {
      if (pending.get(key) === run) pending.delete(key);
    })
    .catch(() => undefined);
  return run;
}

async function writeNow(path: string, data: string | Uint8Array | readonly Uint8Array[], mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fh = await open(tmp, 'w', mode);
  try {
    if (Array.isArray(data)) {
      for (const part of data as readonly Uint8Array[]) await fh.writeFile(part);
    } else await fh.writeFile(data as string | Uint8Array);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
