// Writes src/operations.ts from openapi.json: every operation's method and path
// template by operationId (the types come from src/schema.d.ts).
import { readFileSync, writeFileSync } from "node:fs";

const doc = JSON.parse(readFileSync(new URL("./openapi.json", import.meta.url), "utf8"));
const rows = [];
for (const [path, ops] of Object.entries(doc.paths)) {
  for (const [method, op] of Object.entries(ops)) {
    if (op && op.operationId) rows.push(`  ${op.operationId}: ["${method.toUpperCase()}", "${path}"],`);
  }
}
rows.sort();
writeFileSync(
  new URL("./src/operations.ts", import.meta.url),
  "// Generated from openapi.json by gen-operations.mjs; do not edit.\n" +
    "export const OPERATIONS = {\n" + rows.join("\n") + "\n} as const;\n",
);
