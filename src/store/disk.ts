// File-system primitives the store's durability rests on: reading a file that may
// not exist, writing a whole buffer (a single write may be short), and fsyncing a
// directory so that renames and file creations in it survive a crash.
// Invariant: nothing here swallows an I/O error, except that fsyncDir tolerates
// platforms that cannot fsync a directory at all.
import { open, readFile, type FileHandle } from 'node:fs/promises';

/** The file's content, or undefined if it does not exist. */
export async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Writes all of `buf` at the handle's position (looping over short writes). */
export async function writeAll(h: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await h.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}

/** Makes renames and file creations in `dir` durable. */
export async function fsyncDir(dir: string): Promise<void> {
  let h: FileHandle | undefined;
  try {
    h = await open(dir, 'r');
    await h.sync();
  } catch (err) {
    // Some platforms (Windows) cannot open or fsync a directory; there is nothing more to do there.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EACCES') throw err;
  } finally {
    await h?.close();
  }
}
