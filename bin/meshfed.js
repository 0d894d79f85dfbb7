#!/usr/bin/env node
// The CLI is compiled to dist/ by `npm install` (the `prepare` script) or `npm run build`.
import { main } from '../dist/src/cli/main.js';
main(process.argv).catch((err) => {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
