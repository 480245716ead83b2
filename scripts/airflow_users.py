"""The Airflow users and their generated passwords (SimpleAuthManager), for `make setup` and `make up`.

    python scripts/airflow_users.py ensure   # give every configured user a password (kept if it has one)
    python scripts/airflow_users.py show     # who is who: user, role, what they may do, password

Users and roles come from ``[core] simple_auth_manager_users`` (airflow.cfg, or the
``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS`` variable); passwords live in the git-ignored file
``[core] simple_auth_manager_passwords_file`` (var/airflow/), never in the repository.
"""

from __future__ import annotations

import configparser
import json
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHAT = {
    "admin": "everything",
    "op": "trigger, clear, pause DAGs; pools, connections, variables",
    "user": "trigger, clear, pause DAGs",
    "viewer": "read only",
}
PURPOSE = {
    "model_owner": "the only one who answers promotion approvals (PIPELINE_APPROVERS)",
}


def _core() -> dict[str, str]:
    home = Path(os.environ.get("AIRFLOW_HOME", ROOT))
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(home / "airflow.cfg")
    core = dict(cfg["core"]) if cfg.has_section("core") else {}
    for key in ("simple_auth_manager_users", "simple_auth_manager_passwords_file"):
        core[key] = os.environ.get(f"AIRFLOW__CORE__{key.upper()}", core.get(key, ""))
    core["simple_auth_manager_passwords_file"] = core["simple_auth_manager_passwords_file"].replace(
        "${AIRFLOW_HOME}", str(home)
    )
    return core


def users() -> list[tuple[str, str]]:
    """(user, role) pairs as configured."""
    pairs = [u.strip().split(":", 1) for u in _core()["simple_auth_manager_users"].split(",") if u.strip()]
    return [(name.strip(), role.strip().lower()) for name, role in pairs]


def ensure() -> Path:
    if not _core()["simple_auth_manager_passwords_file"]:
        raise SystemExit("no [core] simple_auth_manager_passwords_file: is AIRFLOW_HOME the repository root?")
    path = Path(_core()["simple_auth_manager_passwords_file"])
    path.parent.mkdir(parents=True, exist_ok=True)
    known = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name, _ in users() if name not in known]
    if missing:
        known.update({name: secrets.token_urlsafe(12) for name in missing})
        old = os.umask(0o077)
        try:
            path.write_text(json.dumps(known))
        finally:
            os.umask(old)
        print(f"generated passwords for {', '.join(missing)} in {path}")
    return path


def show() -> None:
    passwords = json.loads(ensure().read_text())
    print(f"{'user':<12} {'password':<18} {'role':<7} may")
    for name, role in users():
        may = WHAT.get(role, role) + (f"; {PURPOSE[name]}" if name in PURPOSE else "")
        print(f"{name:<12} {passwords.get(name, '?'):<18} {role:<7} {may}")


if __name__ == "__main__":
    {"ensure": ensure, "show": show}[sys.argv[1] if len(sys.argv) > 1 else "show"]()
