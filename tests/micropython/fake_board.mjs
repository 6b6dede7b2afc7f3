// A MicroPython "board" on stdin/stdout for mpremote: the real interpreter (WebAssembly port)
// behind the raw REPL protocol that mpremote speaks over a serial port. A test bridges a pty to
// this process and points `mpremote connect /dev/pts/N ...` (or `navseal flash`) at the pty.
//
//   node tests/micropython/fake_board.mjs [--copy HOST:MP]...
//
// Implemented: friendly REPL prompt, Ctrl-A raw REPL, Ctrl-D soft reset ("soft reboot"),
// raw-paste mode with flow control (what mpremote uses with real boards; without it mpremote
// sleeps 10 ms per 256 bytes), code execution with stdout / traceback framed by \x04 \x04 >,
// Ctrl-B back to the friendly REPL, Ctrl-C.
// A fake `machine` module is installed: machine.reset() appends a line to /reset.log (the
// interpreter keeps running, so the test can look at the file system afterwards).
import fs from "node:fs";
import path from "node:path";
import url from "node:url";

const here = path.dirname(url.fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const pkg = path.join(repo, "tools", "micropython-wasm", "node_modules", "@micropython",
  "micropython-webassembly-pyscript", "micropython.mjs");

const out = (b) => process.stdout.write(typeof b === "string" ? Buffer.from(b, "latin1") : b);
let captured = [];
const { loadMicroPython } = await import(url.pathToFileURL(pkg).href);
const mp = await loadMicroPython({
  heapsize: 4 * 1024 * 1024,
  stdout: (bytes) => captured.push(Buffer.from(bytes)),
  stderr: (bytes) => captured.push(Buffer.from(bytes)),
  linebuffer: false,
});

function mkdirs(p) {
  let cur = "";
  for (const part of p.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { mp.FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}
function copyIn(host, dest) {
  if (fs.statSync(host).isDirectory()) {
    mkdirs(dest);
    for (const n of fs.readdirSync(host)) copyIn(path.join(host, n), dest + "/" + n);
  } else {
    mkdirs(path.posix.dirname(dest));
    mp.FS.writeFile(dest, fs.readFileSync(host));
  }
}
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--copy") {
    const v = args[++i]; const k = v.lastIndexOf(":");
    copyIn(v.slice(0, k), v.slice(k + 1));
  }
}
mkdirs("/lib");
mp.FS.writeFile("/lib/machine.py",
  "def reset():\n    with open('/reset.log', 'a') as f:\n        f.write('reset\\n')\n" +
  "def soft_reset():\n    pass\n");
mp.runPython("import sys\nif '/lib' not in sys.path: sys.path.append('/lib')\nimport time\n" +
  "if not hasattr(time, 'sleep_ms'):\n    time.sleep_ms = lambda ms: None\n");

const BANNER = "raw REPL; CTRL-B to exit\r\n>";
// The WebAssembly port raises OSError with Emscripten's (WASI) errno numbers; boards and
// mpremote use MicroPython's (Linux) numbers, e.g. to tell "no such file" from a failure.
const ERRNO = { 2: 13, 20: 17, 28: 22, 31: 21, 44: 2, 54: 20, 55: 39 };
let raw = false;
let buf = [];
let paste = false;
let pasteCount = 0;
const WINDOW = 512;

function execute(code, okFirst) {
  captured = [];
  let err = "";
  try {
    mp.runPython(code);
  } catch (e) {
    err = String(e && e.message !== undefined ? e.message : e);
    if (!err.endsWith("\n")) err += "\n";
    err = err.replace(/OSError: (\d+)/g, (m, n) => `OSError: ${ERRNO[n] !== undefined ? ERRNO[n] : n}`);
    err = err.replace(/\r?\n/g, "\r\n");
  }
  const stdout = Buffer.concat(captured);
  captured = [];
  if (okFirst) out("OK");
  out(stdout);
  out("\x04");
  out(err);
  out("\x04>");
}

function onByte(c) {
  if (paste) {
    if (c === 0x04) {
      paste = false;
      const code = Buffer.from(buf).toString("utf8");
      buf = [];
      out("\x04");  // end of data acknowledged
      execute(code, false);
      return;
    }
    buf.push(c);
    if (++pasteCount === WINDOW) { pasteCount = 0; out("\x01"); }  // room for one more window
    return;
  }
  if (!raw) {
    if (c === 0x01) { raw = true; buf = []; out("\r\n" + BANNER); }
    else if (c === 0x03) out("\r\n>>> ");
    else if (c === 0x0d) out("\r\n>>> ");
    return;
  }
  if (c === 0x02) { raw = false; buf = []; out("\r\nMicroPython (fake_board) on wasm\r\n>>> "); return; }
  if (c === 0x03) { buf = []; return; }
  if (c === 0x01) { buf = []; out("\r\n" + BANNER); return; }
  if (c === 0x04) {
    if (buf.length === 0) { out("soft reboot\r\n" + BANNER); return; }
    const code = Buffer.from(buf).toString("utf8");
    buf = [];
    execute(code, true);
    return;
  }
  buf.push(c);
  if (buf.length === 3 && buf[0] === 0x05 && buf[1] === 0x41 && buf[2] === 0x01) {
    buf = [];
    paste = true;
    pasteCount = 0;
    out(Buffer.from([0x52, 0x01, WINDOW & 0xff, WINDOW >> 8]));  // "R\x01" + window size
  }
}

process.stdin.on("data", (chunk) => { for (const c of chunk) onByte(c); });
process.stdin.on("end", () => process.exit(0));
