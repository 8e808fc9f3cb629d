// Bundles src/index.ts into ../tb_xai_plugin/static/index.js (ES module), or with --tests
// each test/*.test.ts into test-dist/ for `node --test`.
import * as esbuild from "esbuild";
import { readdirSync, rmSync } from "node:fs";

const tests = process.argv.includes("--tests");

if (tests) {
  rmSync("test-dist", { recursive: true, force: true });
  await esbuild.build({
    entryPoints: readdirSync("test").filter((f) => f.endsWith(".test.ts")).map((f) => "test/" + f),
    bundle: true,
    platform: "node",
    format: "esm",
    outdir: "test-dist",
    outExtension: { ".js": ".mjs" },
    logLevel: "warning",
  });
} else {
  await esbuild.build({
    entryPoints: ["src/index.ts"],
    bundle: true,
    format: "esm",
    target: "es2020",
    minify: true,
    sourcemap: false,
    outfile: "../tb_xai_plugin/static/index.js",
    logLevel: "warning",
  });
}
