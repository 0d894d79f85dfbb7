// A registry of API kinds: lookup by kind name, plural or short name, as `get`
// and the parsers accept them. It holds no kinds itself: the composition root
// (src/registry.ts) builds the one meshfed serves from the core kinds of this
// folder and the policy plugins, so this layer imports nothing above it.
import type { KindDef } from './kind.js';

export class KindRegistry {
  private readonly byAnyName = new Map<string, KindDef>();

  constructor(readonly kinds: readonly KindDef[]) {
    for (const k of kinds) {
      for (const n of [k.kind, k.kind.toLowerCase(), k.plural, ...(k.shortNames ?? [])]) this.byAnyName.set(n.toLowerCase(), k);
    }
  }

  /** Finds a kind by its name, plural or short name (case-insensitive). */
  find(name: string): KindDef | undefined {
    return this.byAnyName.get(name.toLowerCase());
  }

  names(): string[] {
    return this.kinds.map((k) => k.kind);
  }
}
