"""Run a real Mosquitto with the project's configuration, on a free port, in a scratch directory.

Used by the test fixture (tests/fixtures_mosquitto.py), the benchmark and the demo. The broker's
configuration is rendered from the production file gateway/mosquitto/mosquitto.conf: every tuning
line (persistence, set_tcp_nodelay, inflight and queue limits, packet size) is kept; only the
listeners, file paths, logging and, unless asked for, authentication are replaced. So what the
tests and the benchmark measure is what we ship.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO_DIR = Path(__file__).with_name("mosquitto")
PRODUCTION_CONF = MOSQUITTO_DIR / "mosquitto.conf"
PRODUCTION_ACL = MOSQUITTO_DIR / "acl"
DEFAULT_BINARY = "/usr/sbin/mosquitto"

# Lines of the production file that name hosts, paths or authentication: the test render replaces
# them. Everything else is copied as is.
_REPLACED_KEYS = frozenset(
    {
        "listener",
        "persistence_location",
        "password_file",
        "acl_file",
        "allow_anonymous",
        "log_dest",
        "log_type",
        "pid_file",
        "cafile",
        "capath",
        "certfile",
        "keyfile",
        "tls_version",
        "require_certificate",
        "use_identity_as_username",
        "include_dir",
        "user",
        "use_username_as_clientid",
    }
)
# What the production file sets on its seal (TLS) listener besides paths: the test render's TLS
# listener carries the same lines (tests/gateway/test_mosquitto_tls.py checks they agree).
SEAL_LISTENER_LINES = ("tls_version tlsv1.2", "use_username_as_clientid true")


class TlsFiles:
    """The broker's TLS material: CA, certificate and key paths (gateway.certs writes them)."""

    def __init__(self, cafile: Path | str, certfile: Path | str, keyfile: Path | str) -> None:
        self.cafile, self.certfile, self.keyfile = Path(cafile), Path(certfile), Path(keyfile)


class BrokerError(RuntimeError):
    """Mosquitto could not be started or did not come up."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def render_config(
    production_text: str,
    *,
    port: int,
    persistence_dir: Path,
    log_file: Path,
    host: str = "127.0.0.1",
    acl_file: Path | None = None,
    password_file: Path | None = None,
    autosave_interval: int | None = None,
    tls: TlsFiles | None = None,
    tls_port: int | None = None,
) -> str:
    """The production configuration with local listener, paths and (optional) authentication;
    with `tls`, also the seals' TLS listener on `tls_port` (same authentication, the login as
    client id)."""
    kept = []
    for line in production_text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] in _REPLACED_KEYS:
            continue
        if words[0] == "autosave_interval" and autosave_interval is not None:
            continue
        kept.append(line)
    kept += [
        f"listener {port} {host}",
        f"persistence_location {persistence_dir}/",
        f"log_dest file {log_file}",
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    if autosave_interval is not None:
        kept.append(f"autosave_interval {autosave_interval}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Started as root, Mosquitto drops to user "mosquitto", which cannot read or write the
        # caller's private scratch directory (password file, log, persistence): stay as root.
        kept.append("user root")
    auth = []
    if password_file is not None:
        auth += ["allow_anonymous false", f"password_file {password_file}"]
    else:
        auth.append("allow_anonymous true")
    if acl_file is not None:
        auth.append(f"acl_file {acl_file}")
    kept += auth  # per listener (per_listener_settings true): the plain listener's
    if tls is not None:
        if tls_port is None:
            raise ValueError("a TLS listener needs tls_port")
        kept += [f"listener {tls_port} {host}", f"cafile {tls.cafile}", f"certfile {tls.certfile}",
                 f"keyfile {tls.keyfile}", *auth, *SEAL_LISTENER_LINES]
    return "\n".join(kept) + "\n"


class MosquittoBroker:
    """A Mosquitto process owned by the caller: start, stop (graceful or kill), restart on the
    same port with the same persistence directory (so persistent sessions and queued messages
    survive a graceful restart, as they would in production)."""

    def __init__(
        self,
        workdir: Path | str,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        binary: str = DEFAULT_BINARY,
        conf: Path = PRODUCTION_CONF,
        users: dict[str, str] | None = None,
        acl_file: Path | None = None,
        autosave_interval: int | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port(host)
        self.tls = tls
        self.tls_port = free_port(host) if tls is not None else None
        self.binary = binary
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_file = self.workdir / "mosquitto.log"
        persistence_dir = self.workdir / "persistence"
        persistence_dir.mkdir(exist_ok=True)
        password_file = None
        if users:
            password_file = self._write_passwords(users)
        text = render_config(
            Path(conf).read_text(),
            port=self.port,
            host=host,
            persistence_dir=persistence_dir,
            log_file=self.log_file,
            acl_file=acl_file,
            password_file=password_file,
            autosave_interval=autosave_interval,
            tls=tls,
            tls_port=self.tls_port,
        )
        self.conf_path.write_text(text)
        self.process: subprocess.Popen | None = None

    def _write_passwords(self, users: dict[str, str]) -> Path:
        tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        path = self.workdir / "passwd"
        path.write_text("".join(f"{user}:{password}\n" for user, password in users.items()))
        # -U turns the plain-text file into hashes in place.
        subprocess.run([tool, "-U", str(path)], check=True, capture_output=True)
        return path

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        if not os.path.exists(self.binary):
            raise BrokerError(f"mosquitto binary not found at {self.binary}")
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.conf_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
                raise BrokerError(f"mosquitto exited with {self.process.returncode}: {err}{log}")
            try:
                for port in (self.port, self.tls_port):
                    if port is not None:
                        with socket.create_connection((self.host, port), timeout=0.2):
                            pass
                return
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise BrokerError(f"mosquitto did not listen on {self.host}:{self.port} within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM): Mosquitto writes its persistence database."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Crash (SIGKILL): whatever was not autosaved is gone, as in a power cut."""
        self._signal(signal.SIGKILL, 5.0)

    def restart(self, *, graceful: bool = True) -> None:
        if graceful:
            self.stop()
        else:
            self.kill()
        self.start()

    def _signal(self, sig: int, timeout: float) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.stderr:
            process.stderr.close()

    def __enter__(self) -> "MosquittoBroker":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
