import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32, csvField, npyBytes, safeName, toCsv, zipStored } from "../src/export";

const PYTHON = process.env.XAI_PYTHON ?? join(process.cwd(), "..", ".venv", "bin", "python");

test("npy header is a 64-aligned NumPy 1.0 header describing <f4 and the shape", () => {
  const bytes = npyBytes(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
  const headerLen = bytes[8] | (bytes[9] << 8);
  const header = Buffer.from(bytes.slice(10, 10 + headerLen)).toString("latin1");
  assert.equal(Buffer.from(bytes.slice(1, 6)).toString(), "NUMPY");
  assert.equal((10 + headerLen) % 64, 0);
  assert.match(header, /'descr': '<f4', 'fortran_order': False, 'shape': \(2, 3\)/);
  assert.ok(header.endsWith("\n"));
  assert.equal(new DataView(bytes.buffer).getFloat32(10 + headerLen + 4 * 5, true), 6);
  assert.match(Buffer.from(npyBytes(Float32Array.from([1]), [1]).slice(10, 80)).toString("latin1"), /\(1,\)/);
  assert.throws(() => npyBytes(Float32Array.from([1, 2]), [3]));
});

test("crc32 matches the standard check value", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
});

test("numpy reads the .npy and .npz files we write", () => {
  const dir = mkdtempSync(join(tmpdir(), "xai-npy-"));
  const a = Float32Array.from([0.5, -1.25, 3, 1e-3]);
  const b = Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => i / 7);
  writeFileSync(join(dir, "a.npy"), npyBytes(a, [2, 2]));
  writeFileSync(join(dir, "m.npz"), zipStored([["a.npy", npyBytes(a, [4])], ["run_1_grad.npy", npyBytes(b, [2, 3, 4])]]));
  const script = `
import numpy as np, json, sys
d = sys.argv[1]
a = np.load(d + "/a.npy")
z = np.load(d + "/m.npz")
print(json.dumps({"a": a.tolist(), "shape": list(a.shape), "dtype": str(a.dtype),
                  "keys": sorted(z.files), "b": z["run_1_grad"].ravel().tolist(), "bshape": list(z["run_1_grad"].shape)}))`;
  const out = JSON.parse(execFileSync(PYTHON, ["-c", script, dir]).toString());
  assert.deepEqual(out.shape, [2, 2]);
  assert.equal(out.dtype, "float32");
  assert.deepEqual(out.a.flat(), Array.from(a));
  assert.deepEqual(out.keys, ["a", "run_1_grad"]);
  assert.deepEqual(out.bshape, [2, 3, 4]);
  assert.deepEqual(out.b, Array.from(b));
});

test("CSV quotes only what needs quoting", () => {
  assert.equal(csvField("plain"), "plain");
  assert.equal(csvField('say "hi", then'), '"say ""hi"", then"');
  assert.equal(csvField(null), "");
  assert.equal(toCsv(["a", "b"], [[1, "x,y"], [2, "line\nbreak"]]), 'a,b\r\n1,"x,y"\r\n2,"line\nbreak"\r\n');
});

test("safeName keeps file names tame", () => {
  assert.equal(safeName("runs/lr=0.1 step 3"), "runs_lr_0.1_step_3");
  assert.equal(safeName("../.."), "../..".replace(/\//g, "_"));
  assert.equal(safeName(""), "x");
});
