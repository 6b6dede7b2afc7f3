// Run a generator-shaped Python scenario under the real MicroPython (WebAssembly port) one step
// per top-level call, and measure the heap.
//
//   node tests/firmware/mp_stepper.mjs MODULE.py FUNC [STEPS_PER_CALL]
//
// Why not tests/micropython/runner.mjs: this port never collects garbage while Python code is
// running (its gc_collect only runs at the top level, between calls from JS; measured: 1 MB of
// garbage survives gc.collect() inside one runPython, and is gone at the next call). So a single
// run can only report allocation totals. Here each call advances the generator by a few steps;
// the heap in use at the start of a call (after the top-level collection) is the live heap, and
// at the end of a call it is the live heap plus that step's garbage: an upper bound of what a
// board's heap must hold if it never collects within a step.
//
// Prints the module's own output, then "MP_HEAP <peak_end> <peak_live> <base>" (bytes of
// gc.mem_alloc(); peaks are above `base`, the heap after importing the firmware and the
// scenario module). Exit 1 on an uncaught MicroPython exception.
import fs from "node:fs";
import path from "node:path";
import url from "node:url";

const here = path.dirname(url.fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const pkg = path.join(repo, "tools", "micropython-wasm", "node_modules", "@micropython",
  "micropython-webassembly-pyscript", "micropython.mjs");

const [script, func, perCallArg] = process.argv.slice(2);
if (!script || !func) {
  process.stderr.write("usage: mp_stepper.mjs MODULE.py FUNC [STEPS_PER_CALL]\n");
  process.exit(2);
}
const perCall = parseInt(perCallArg || "1", 10);
const modName = path.basename(script, ".py");

let done = false;
const { loadMicroPython } = await import(url.pathToFileURL(pkg).href);
const mp = await loadMicroPython({
  heapsize: 256 * 1024,
  stdout: (line) => {
    if (line === "__STEPPER_DONE__") done = true;
    else process.stdout.write(line + "\n");
  },
  stderr: (line) => process.stderr.write(line + "\n"),
  linebuffer: true,
});

function copyIn(host, dest) {
  const st = fs.statSync(host);
  if (st.isDirectory()) {
    try { mp.FS.mkdir(dest); } catch (e) { /* exists */ }
    for (const name of fs.readdirSync(host)) {
      if (name === "__pycache__" || name.endsWith(".pyc")) continue;
      copyIn(path.join(host, name), dest + "/" + name);
    }
  } else {
    mp.FS.writeFile(dest, fs.readFileSync(host));
  }
}
try { mp.FS.mkdir("/lib"); } catch (e) { /* exists */ }
copyIn(path.join(repo, "firmware", "navseal_fw"), "/lib/navseal_fw");
copyIn(path.resolve(script), "/lib/" + modName + ".py");

try {
  mp.runPython(`import sys, gc
if '/lib' not in sys.path: sys.path.append('/lib')
import ${modName} as _m
_gen = _m.${func}()
_peak_end = 0
_peak_live = 0
`);
  mp.runPython("_base = gc.mem_alloc()");
  const step = `_a = gc.mem_alloc() - _base
if _a > _peak_live: _peak_live = _a
try:
    for _i in range(${perCall}):
        next(_gen)
except StopIteration:
    print("__STEPPER_DONE__")
_a = gc.mem_alloc() - _base
if _a > _peak_end: _peak_end = _a
`;
  while (!done) mp.runPython(step);
  mp.runPython('print("MP_HEAP", _peak_end, _peak_live, _base)');
} catch (e) {
  const msg = String(e && e.message !== undefined ? e.message : e);
  process.stderr.write(msg.endsWith("\n") ? msg : msg + "\n");
  process.exitCode = 1;
}
