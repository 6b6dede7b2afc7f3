"""The demo's users: one per role with a fresh password and API token, written to a 0600 file.

The demo gateway is a development gateway (the emulated seals carry the published test keys), but
it runs the real access layer: its API needs these credentials like any other gateway's.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from navseal.gateway import audit, auth
from navseal.gateway.secrets import write_private


@dataclass
class DemoAccess:
    url: str
    file: Path
    passwords: dict[str, str]
    tokens: dict[str, str]
    offices: list[str]


def console_url(api_url: str) -> str:
    return f"{api_url}/console/"


def create_demo_access(service, out_dir: Path, offices: list[str]) -> DemoAccess:
    """admin, operator, officer (bound to `offices`) and auditor, each with a password and a token."""
    actor = auth.host_actor()
    passwords = {role: secrets.token_urlsafe(12) for role in auth.ROLES}
    tokens: dict[str, str] = {}
    now = time.time()
    with service.store.transaction() as tx:
        for role in auth.ROLES:
            name = f"demo-{role}"
            if tx.get_user(name=name) is None:
                auth.add_user(tx, name=name, role=role, offices=offices if role == auth.OFFICER else [],
                              password=passwords[role], now=now, created_by=actor)
                audit.record(tx, actor, "user.add", f"user:{name}", {"role": role}, now=now)
            else:
                auth.set_password(tx, name, passwords[role])
            tokens[role] = auth.issue_token(tx, name, now=now, label="demo")[1]
            audit.record(tx, actor, "token.issue", f"user:{name}", {"label": "demo"}, now=now)
    url = service.http.url
    path = Path(out_dir) / "demo-access.txt"
    lines = [f"navseal demo gateway API: {url}", f"web console: {console_url(url)} (log in with a name and password below)",
             "", "Log in (POST /v1/session {name, password}) or send Authorization: Bearer <token>.", ""]
    for role in auth.ROLES:
        lines += [f"{role}: name demo-{role}  password {passwords[role]}", f"  token {tokens[role]}"]
    lines += ["", f"example: curl -H 'Authorization: Bearer {tokens[auth.OFFICER]}' {url}/v1/escorts", ""]
    write_private(path, "\n".join(lines))
    return DemoAccess(url=url, file=path, passwords=passwords, tokens=tokens, offices=offices)
