// Durable file writes: a crash leaves either the old or the new content, never half.
import { open, rename, mkdir } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';

/** `data` in parts is written part by part (no joined copy of a large file in memory). */
export async function writeFileDurable(path: string, data: string | Uint8Array | readonly Uint8Array[], mode = 0o600): Promise<void> {
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
