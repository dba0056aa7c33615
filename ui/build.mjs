// Bundles the components (and Lit) into one minified ES module, dist/credit-meter.js, and copies
// the demo page and axe-core (for the browser tests) beside it.
import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
await mkdir("dist", { recursive: true });
const result = await build({
  entryPoints: ["src/index.js"],
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2022",
  outfile: "dist/credit-meter.js",
  legalComments: "eof",
  metafile: true,
});
await copyFile("demo/index.html", "dist/index.html");
await copyFile(require.resolve("axe-core/axe.min.js"), "dist/axe.min.js");
const bytes = result.metafile.outputs["dist/credit-meter.js"].bytes;
console.log(`dist/credit-meter.js: ${(bytes / 1024).toFixed(1)} KiB`);
