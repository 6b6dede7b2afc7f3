// Run Python code under the real MicroPython interpreter (the official WebAssembly port,
// npm @micropython/micropython-webassembly-pyscript) inside Node.js.
//
//   node tests/micropython/runner.mjs [options] (--code CODE | SCRIPT.py)
//     --copy HOST:MP     copy a host file or directory (recursively) into the interpreter's
//                        in-memory file system at MP (repeatable). Default: firmware/navseal_fw
//                        to /lib/navseal_fw, so `import navseal_fw` works as on a board.
//     --no-firmware      do not copy the firmware package
//     --heapsize N       MicroPython GC heap in bytes (suffix k/m allowed); default 1m.
//                        (This build does not enforce it as a hard cap: measure with
//                        gc.mem_alloc() instead; see tests/mp_helper.py.)
//     --async            run the code with runPythonAsync (top-level await allowed)
//     --argv A           appended to sys.argv inside MicroPython (repeatable)
//     --steps EXPR       after the code ran, EXPR (a Python expression) must give a generator:
//                        it is advanced one step per top-level call from here, with a garbage
//                        collection between calls, and the heap is measured (see below)
//
// Heap: this port never frees garbage while Python code runs (its gc_collect only takes effect
// at the top level, between calls from JS: 1 MB of garbage survives gc.collect() inside one
// runPython and is gone at the next call). So inside one run gc.mem_alloc() only ever grows and
// measures allocation, not the live heap. --steps gives the real figures: before each step the
// heap is collected and sampled (live heap), after it sampled again (live heap plus that step's
// garbage: what a board heap must hold if it does not collect within a step). It prints
// "MP_HEAP <peak_after_step> <peak_live> <base> <steps>", peaks in bytes above `base` (the heap
// after the setup code, collected). Both peaks are upper bounds: the port sometimes frees a
// step's garbage only at the collection after next (measured: 13 KB of a generator's first
// step survived one collection and went at the following one).
//
// stdout/stderr of the Python code go to ours. Exit status: 0 when the code ran to the end,
// 1 on an uncaught MicroPython exception (its traceback is printed to stderr), 2 on a usage or
// set-up error. sys.exit(n) inside the code exits with n.
import fs from "node:fs";
import path from "node:path";
import url from "node:url";

const here = path.dirname(url.fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const pkg = path.join(repo, "tools", "micropython-wasm", "node_modules", "@micropython",
  "micropython-webassembly-pyscript", "micropython.mjs");

function usage(msg) {
  process.stderr.write(`runner.mjs: ${msg}\n`);
  process.exit(2);
}

function parseSize(s) {
  const m = /^(\d+)([kKmM]?)$/.exec(s);
  if (!m) usage(`bad size ${s}`);
  return parseInt(m[1], 10) * (m[2] ? (m[2].toLowerCase() === "k" ? 1024 : 1048576) : 1);
}

const copies = [];
const argvExtra = [];
let code = null, script = null, heapsize = 1048576, firmware = true, useAsync = false;
let steps = null;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const next = () => { if (i + 1 >= args.length) usage(`${a} needs a value`); return args[++i]; };
  if (a === "--code") code = next();
  else if (a === "--copy") {
    const v = next(); const k = v.lastIndexOf(":");
    if (k <= 0) usage(`--copy wants HOST:MP, got ${v}`);
    copies.push([v.slice(0, k), v.slice(k + 1)]);
  }
  else if (a === "--no-firmware") firmware = false;
  else if (a === "--heapsize") heapsize = parseSize(next());
  else if (a === "--async") useAsync = true;
  else if (a === "--argv") argvExtra.push(next());
  else if (a === "--steps") steps = next();
  else if (a.startsWith("--")) usage(`unknown option ${a}`);
  else if (script === null) script = a;
  else usage(`unexpected argument ${a}`);
}
if ((code === null) === (script === null)) usage("give exactly one of --code CODE or SCRIPT.py");
if (script !== null) code = fs.readFileSync(script, "utf8");
if (firmware) copies.unshift([path.join(repo, "firmware", "navseal_fw"), "/lib/navseal_fw"]);
if (!fs.existsSync(pkg)) {
  usage(`MicroPython WebAssembly package missing at ${pkg}; run: bash tools/run setup ` +
        `(or: cd tools/micropython-wasm && npm ci)`);
}

const { loadMicroPython } = await import(url.pathToFileURL(pkg).href);
const mp = await loadMicroPython({
  heapsize,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
  linebuffer: true,
});

function mkdirs(p) {
  let cur = "";
  for (const part of p.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { mp.FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}

function copyIn(host, dest) {
  const st = fs.statSync(host);
  if (st.isDirectory()) {
    mkdirs(dest);
    for (const name of fs.readdirSync(host)) {
      if (name === "__pycache__" || name.endsWith(".pyc")) continue;
      copyIn(path.join(host, name), dest + "/" + name);
    }
  } else {
    mkdirs(path.posix.dirname(dest));
    mp.FS.writeFile(dest, fs.readFileSync(host));
  }
}

for (const [host, dest] of copies) {
  if (!fs.existsSync(host)) usage(`--copy source does not exist: ${host}`);
  copyIn(host, dest);
}

const prelude = "import sys\n" +
  "if '/lib' not in sys.path: sys.path.append('/lib')\n" +
  argvExtra.map((a) => `sys.argv.append(${JSON.stringify(a)})\n`).join("");

function heapNow(collect) {
  mp.runPython((collect ? "import gc\ngc.collect()\n" : "import gc\n") + "_mp_heap = gc.mem_alloc()");
  return mp.globals.get("_mp_heap");
}

function runSteps(expr) {
  mp.runPython(`_mp_gen = (${expr})\n_mp_end = object()\n_mp_more = True`);
  const base = heapNow(true);
  let peakLive = 0, peakEnd = 0, n = 0;
  for (;;) {
    const live = heapNow(true) - base;
    if (live > peakLive) peakLive = live;
    // sampled in the same call as the step: a new top-level call may collect first
    mp.runPython("_mp_more = next(_mp_gen, _mp_end) is not _mp_end\n_mp_heap = gc.mem_alloc()");
    const end = mp.globals.get("_mp_heap") - base;
    if (end > peakEnd) peakEnd = end;
    if (!mp.globals.get("_mp_more")) break;
    n += 1;
  }
  process.stdout.write(`MP_HEAP ${peakEnd} ${peakLive} ${base} ${n}\n`);
}

let status = 0;
try {
  mp.runPython(prelude);
  if (useAsync) await mp.runPythonAsync(code);
  else mp.runPython(code);
  if (steps !== null) runSteps(steps);
} catch (e) {
  const msg = String(e && e.message !== undefined ? e.message : e);
  const m = /SystemExit:?\s*(\d+)?/.exec(msg);
  if (m && /Traceback|SystemExit/.test(msg) && msg.trim().split("\n").pop().startsWith("SystemExit")) {
    status = m[1] === undefined ? 0 : parseInt(m[1], 10);
  } else {
    process.stderr.write(msg.endsWith("\n") ? msg : msg + "\n");
    status = 1;
  }
}
process.exitCode = status;
