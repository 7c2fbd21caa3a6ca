"""The desk's accounts: names, argon2 password hashes, roles, a disabled flag.

Roles: a viewer reads, an agent also acts on claims and RMAs, an admin also works
the outbox and reprocesses ledger rows. A new password or disabling an account
bumps `session_version`, which every session cookie carries, so old sessions end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.core.errors import InputError
from mailbot.store.db import transaction
from mailbot.store.models import WebUser

ROLES = ("viewer", "agent", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
PASSWORD_MIN = 10
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

_hasher = PasswordHasher()
# Verified when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY = _hasher.hash("not a password of anybody")


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    disabled: bool
    session_version: int
    last_login_at: datetime | None = None


def _account(u: WebUser) -> Account:
    return Account(u.name, u.role, u.disabled, u.session_version, u.last_login_at)


def check_name(name: str) -> str:
    clean = name.strip().lower()
    if not _NAME.match(clean):
        raise InputError(
            "user name: 1-64 of a-z, 0-9, '.', '_', '-' (starting with a letter or digit)"
        )
    return clean


def check_password(password: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise InputError(f"password: at least {PASSWORD_MIN} characters")
    if len(password) > 1024:
        raise InputError("password: at most 1024 characters")
    return password


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InputError(f"role: one of {', '.join(ROLES)}, not {role!r}")
    return role


def _get(s: Session, name: str) -> WebUser:
    user = s.scalars(select(WebUser).where(WebUser.name == check_name(name))).one_or_none()
    if user is None:
        raise InputError(f"no user {name!r}")
    return user


def add_user(
    factory: sessionmaker[Session], name: str, password: str, role: str, now: datetime
) -> Account:
    clean = check_name(name)
    check_role(role)
    digest = _hasher.hash(check_password(password))
    with transaction(factory) as s:
        if s.scalars(select(WebUser.id).where(WebUser.name == clean)).first() is not None:
            raise InputError(f"user {clean!r} exists (use `mailbot users passwd`)")
        user = WebUser(
            name=clean,
            password_hash=digest,
            role=role,
            disabled=False,
            session_version=0,
            created_at=now,
            updated_at=now,
        )
        s.add(user)
        s.flush()
        return _account(user)


def _change(factory: sessionmaker[Session], name: str, now: datetime, **values: Any) -> Account:
    """Set `values` on one account; every open session of it ends (its session version
    moves on). By keyword so each change below reads as the columns it sets."""
    with transaction(factory) as s:
        user = _get(s, name)
        for column, value in values.items():
            setattr(user, column, value)
        user.session_version += 1
        user.updated_at = now
        return _account(user)


def set_password(
    factory: sessionmaker[Session], name: str, password: str, now: datetime
) -> Account:
    """A new password (and the account enabled again); every open session ends."""
    digest = _hasher.hash(check_password(password))
    return _change(factory, name, now, password_hash=digest, disabled=False)


def set_role(factory: sessionmaker[Session], name: str, role: str, now: datetime) -> Account:
    check_role(role)
    return _change(factory, name, now, role=role)


def disable(factory: sessionmaker[Session], name: str, now: datetime) -> Account:
    return _change(factory, name, now, disabled=True)


def list_users(factory: sessionmaker[Session]) -> list[Account]:
    with transaction(factory) as s:
        return [_account(u) for u in s.scalars(select(WebUser).order_by(WebUser.name))]


def find(factory: sessionmaker[Session], name: str) -> Account | None:
    with transaction(factory) as s:
        user = s.scalars(select(WebUser).where(WebUser.name == name)).one_or_none()
        return _account(user) if user is not None else None


def authenticate(
    factory: sessionmaker[Session], name: str, password: str, now: datetime
) -> Account | None:
    """The account when the name and password are right and it is enabled, else None."""
    try:
        clean = check_name(name)
    except InputError:
        clean = ""
    with transaction(factory) as s:
        user = (
            s.scalars(select(WebUser).where(WebUser.name == clean)).one_or_none() if clean else None
        )
        try:
            _hasher.verify(user.password_hash if user is not None else _DUMMY, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None or user.disabled:
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        user.last_login_at = now
        return _account(user)
