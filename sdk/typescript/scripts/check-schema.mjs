// Fails when src/schema.ts is not what openapi-typescript makes of docs/openapi.yaml today
// (run `npm run generate` to refresh it).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dir = mkdtempSync(join(tmpdir(), "cm-schema-"));
try {
  const out = join(dir, "schema.ts");
  execFileSync(
    join(root, "node_modules", ".bin", "openapi-typescript"),
    [join(root, "..", "..", "docs", "openapi.yaml"), "--default-non-nullable", "false", "-o", out],
    { stdio: "pipe" },
  );
  if (readFileSync(out, "utf8") !== readFileSync(join(root, "src", "schema.ts"), "utf8")) {
    console.error("src/schema.ts is stale: run `npm run generate`");
    process.exit(1);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
