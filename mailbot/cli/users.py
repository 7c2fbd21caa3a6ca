"""`mailbot users add|passwd|role|disable|list`: the web desk's accounts.

Passwords are read from a prompt (twice) or, for scripts, one line of stdin with
`--password-stdin`; they never appear in arguments, the process list or logs.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from mailbot.cli.app import App, print_json, print_table
from mailbot.core.errors import InputError
from mailbot.web import accounts


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise InputError("the passwords differ")
    return first


def _change(app: App, change: Callable[[], accounts.Account], said: str) -> int:
    """Make one account change; `said` is the line reported, formatted with the
    account as `acc`. A refusal (bad name, role or password) is exit 2 with the reason."""
    app.ensure_schema()
    try:
        acc = change()
    except InputError as exc:
        print(f"mailbot: users: {exc}", file=sys.stderr)
        return 2
    app.out.write(said.format(acc=acc) + "\n")
    return 0


def cmd_add(args: argparse.Namespace, app: App) -> int:
    return _change(
        app,
        lambda: accounts.add_user(app.factory, args.name, _password(args), args.role, app.now()),
        "user {acc.name} added ({acc.role})",
    )


def cmd_passwd(args: argparse.Namespace, app: App) -> int:
    return _change(
        app,
        lambda: accounts.set_password(app.factory, args.name, _password(args), app.now()),
        "user {acc.name}: password changed, enabled, logged out everywhere",
    )


def cmd_role(args: argparse.Namespace, app: App) -> int:
    return _change(
        app,
        lambda: accounts.set_role(app.factory, args.name, args.role, app.now()),
        "user {acc.name}: role {acc.role}",
    )


def cmd_disable(args: argparse.Namespace, app: App) -> int:
    return _change(
        app,
        lambda: accounts.disable(app.factory, args.name, app.now()),
        "user {acc.name} disabled, logged out everywhere",
    )


def cmd_list(args: argparse.Namespace, app: App) -> int:
    app.ensure_schema()
    rows = [
        {
            "name": a.name,
            "role": a.role,
            "disabled": a.disabled,
            "last_login_at": a.last_login_at.isoformat(timespec="seconds")
            if a.last_login_at
            else None,
        }
        for a in accounts.list_users(app.factory)
    ]
    if args.json:
        print_json(rows, app.out)
    else:
        print_table(rows, ("name", "role", "disabled", "last_login_at"), app.out)
    return 0
