// Line diffs, unified-style: lines prefixed "- " (removed), "+ " (added) and
// "  " (context), only changed lines with 2 lines of context and "  ..."
// between hunks. Used by `meshfed plan` (the YAML of xDS resources) and the
// audit log (the YAML of an object before and after a write). Pure.
// Invariant: bounded work. The LCS table is quadratic, so it is built only
// over what differs between the common prefix and suffix, and only while that
// is at most MAX_LCS_CELLS; beyond that the differing middle is reported as
// removed then added (still a correct diff, just not a minimal one).

/** The most cells of the LCS table one diff may build (16 MB of 32-bit counts). */
export const MAX_LCS_CELLS = 4_000_000;

type Op = { op: ' ' | '-' | '+'; line: string };

/** Line diff (LCS), only changed lines with 2 lines of context; '...' between hunks. */
export function lineDiff(a: string[], b: string[]): string[] {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const ops: Op[] = [];
  for (let k = 0; k < start; k++) ops.push({ op: ' ', line: a[k]! });
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  if (midA.length * midB.length <= MAX_LCS_CELLS) ops.push(...lcsOps(midA, midB));
  else {
    for (const line of midA) ops.push({ op: '-', line });
    for (const line of midB) ops.push({ op: '+', line });
  }
  for (let k = endA; k < a.length; k++) ops.push({ op: ' ', line: a[k]! });
  return withContext(ops);
}

function lcsOps(a: string[], b: string[]): Op[] {
  const n = a.length;
  const m = b.length;
  // One flat table: (n+1) x (m+1), row-major.
  const w = m + 1;
  const dp = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) dp[i * w + j] = a[i] === b[j] ? dp[(i + 1) * w + j + 1]! + 1 : Math.max(dp[(i + 1) * w + j]!, dp[i * w + j + 1]!);
  }
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({ op: ' ', line: a[i]! });
      i++;
      j++;
    } else if (j < m && (i >= n || dp[i * w + j + 1]! >= dp[(i + 1) * w + j]!)) {
      ops.push({ op: '+', line: b[j]! });
      j++;
    } else {
      ops.push({ op: '-', line: a[i]! });
      i++;
    }
  }
  return ops;
}

/** Keeps changed lines and 2 lines of context around them; '  ...' marks what is left out between hunks. */
function withContext(ops: Op[]): string[] {
  const changed = ops.map((o) => o.op !== ' ');
  const keep = ops.map((_o, k) => {
    for (let d = Math.max(0, k - 2); d <= Math.min(ops.length - 1, k + 2); d++) if (changed[d]) return true;
    return false;
  });
  const out: string[] = [];
  ops.forEach((o, k) => {
    if (keep[k]) out.push(`${o.op} ${o.line}`);
    else if (keep[k - 1]) out.push('  ...');
  });
  return out;
}
