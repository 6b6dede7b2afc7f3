"""How `navseal gateway` commands reach the gateway: its HTTP API with a token, like any client, or
(`--db`) its database directly, for an administrator on the gateway host, audited under the host
account. Used by tools/cmd_gateway.py and tools/gateway_users.py."""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_STORE = 4  # `gateway run`: the database is missing, damaged or lost committed data
TOKEN_ENV = "NAVSEAL_TOKEN"


def target_options(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--api", help="gateway HTTP API base URL (default http(s)://<[http] host>:<port>)")
    where.add_argument("--db", help="open this database directly (admin on the gateway host; audited)")
    p.add_argument("--config", "-c", help="gateway TOML (API address, or database and master key with --db)")
    p.add_argument("--token-file", help=f"API token file (default: ${TOKEN_ENV})")
    p.add_argument("--ca-file", help="CA certificate to trust for an https:// API")
    p.add_argument("--json", action="store_true", help="print the raw JSON answer")


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def config_for(args: argparse.Namespace):
    from navseal.gateway.config import load_config

    overrides = {}
    if getattr(args, "db", None):
        overrides["db_path"] = args.db
    return load_config(getattr(args, "config", None), **overrides)


# -- the two ways to reach the gateway --


class Direct:
    """The database on this host: admin, audited under the host account."""

    def __init__(self, args: argparse.Namespace) -> None:
        from navseal.gateway.auth import host_actor
        from navseal.gateway.pipeline import Pipeline
        from navseal.gateway.secrets import load_master_key
        from navseal.gateway.store import open_store

        self.config = config_for(args)
        self.store = open_store(self.config, load_master_key(self.config))
        self.pipeline = Pipeline(self.store, self.config)
        self.actor = host_actor()

    def close(self) -> None:
        self.store.close()


class Api:
    def __init__(self, args: argparse.Namespace) -> None:
        self.context: ssl.SSLContext | None = None
        if args.api:
            self.base = args.api.rstrip("/")
        else:
            config = config_for(args)
            host = "127.0.0.1" if config.http_host in ("0.0.0.0", "") else config.http_host
            scheme = "https" if config.http_tls else "http"
            self.base = f"{scheme}://{host}:{config.http_port}"
        if self.base.startswith("https://"):
            self.context = ssl.create_default_context(cafile=args.ca_file)
        self.token = _token(args)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60, context=self.context) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                answer = json.loads(exc.read() or b"null")
            except json.JSONDecodeError:
                answer = None
            if not isinstance(answer, dict):
                answer = {"error": "http", "message": str(exc)}
            raise Refused(exc.code, str(answer.get("error")), str(answer.get("message"))) from None
        except (urllib.error.URLError, OSError) as exc:
            print(f"navseal gateway: cannot reach {self.base} ({exc}); is it running? (or use --db on its host)",
                  file=sys.stderr)
            raise SystemExit(EXIT_UNREACHABLE)


def _token(args: argparse.Namespace) -> str | None:
    path = getattr(args, "token_file", None)
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            print(f"navseal gateway: token file {path}: {exc.strerror}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE)
    return os.environ.get(TOKEN_ENV) or None


def run(args: argparse.Namespace, api: Callable[[Api], Any], direct: Callable[[Direct], Any],
         describe: Callable[[Any], None], action: str | None = None, target: str | None = None) -> int:
    """Through the API (token) or, with --db, on the database; print the answer or the refusal.
    A --db command refused is audited as `action` on `target` (the API audits its own refusals)."""
    from navseal.gateway import audit
    from navseal.gateway.api.errors import STATUS_FOR_CODE
    from navseal.gateway.auth import AccessError
    from navseal.gateway.config import ConfigError
    from navseal.gateway.command_requests import CommandError
    from navseal.gateway.secrets import SecretError
    from navseal.gateway.store import StoreError

    try:
        if getattr(args, "db", None):
            where = Direct(args)
            try:
                answer = direct(where)
            except (CommandError, AccessError) as exc:
                if action:
                    audit.record_alone(where.store, where.actor, action, target,
                                       {"code": exc.code, "reason": exc.message})
                raise
            finally:
                where.close()
        else:
            answer = api(Api(args))
    except Refused as exc:
        print(f"refused ({exc.status} {exc.code}): {exc.message}", file=sys.stderr)
        return EXIT_REFUSED
    except (CommandError, AccessError) as exc:
        print(f"refused ({STATUS_FOR_CODE.get(exc.code, 400)} {exc.code}): {exc.message}", file=sys.stderr)
        return EXIT_REFUSED
    except (ConfigError, SecretError, StoreError, ValueError, OSError) as exc:
        print(f"navseal gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False, default=str))
    else:
        describe(answer)
    return 0


def checked(model: Any, body: dict[str, Any]) -> Any:
    """The API's own request model, so --db input is checked exactly as the API checks it."""
    from pydantic import ValidationError

    from navseal.gateway.api.errors import describe_validation
    from navseal.gateway.command_requests import CommandError

    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise CommandError("bad_request", describe_validation(list(exc.errors()))[1]) from None




def changed(t: Direct, action: str, target: str, fn: Callable[[Any, float], Any], details=None) -> Any:
    """`fn(tx, now)` on the database and its audit row, in one transaction."""
    from navseal.gateway import audit

    now = time.time()
    with t.store.transaction() as tx:
        result = fn(tx, now)
        audit.record(tx, t.actor, action, target, details, now=now)
    return result
