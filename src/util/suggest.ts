// "Did you mean": the closest of a set of known names to a misspelled one, by
// edit distance (Levenshtein). Shared by every parser that refuses an unknown
// name (API object fields, xDS JSON fields). Pure.

/** Insertions, deletions and substitutions that turn `a` into `b`. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/**
 * The known name nearest to `key` (at most `maxDistance` edits, and fewer than
 * the key's length: "x" suggests nothing), or undefined. Case differences count
 * as no edit, so "Destinations" finds "destinations".
 */
export function closest(key: string, names: Iterable<string>, maxDistance = 2): string | undefined {
  let best: string | undefined;
  let bestD = maxDistance + 1;
  for (const n of names) {
    const d = n.toLowerCase() === key.toLowerCase() ? 0 : editDistance(n, key);
    if (d < bestD && d < key.length) [best, bestD] = [n, d];
  }
  return best;
}
