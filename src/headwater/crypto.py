"""Encryption of downstream credentials at rest (Fernet: AES-128-CBC with HMAC-SHA256)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from headwater.config import SettingsError, make_data_dir

__all__ = ["SecretBox", "load_or_create_key"]


class SecretBox:
    """Seals and opens small JSON secrets; its repr never shows the key."""

    def __init__(self, key: str | bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, secret: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(secret, sort_keys=True).encode()).decode()

    def open(self, sealed: str) -> dict[str, Any]:
        try:
            value = json.loads(self._fernet.decrypt(sealed.encode()))
        except InvalidToken as exc:
            raise ValueError("stored secret cannot be decrypted with the current key") from exc
        if not isinstance(value, dict):
            raise ValueError("stored secret is not a JSON object")
        return value

    def __repr__(self) -> str:
        return "SecretBox(<hidden>)"


def load_or_create_key(configured: str | None, data_dir: Path) -> str:
    """The configured key, else the key file in ``data_dir`` (created with mode 0600, in a
    folder created with mode 0700). SettingsError when either is unusable."""
    if configured:
        _check_key(configured, "HEADWATER_SECRET_KEY")
        return configured
    path = data_dir / "secret.key"
    try:
        if path.exists():
            key = path.read_text().strip()
            _check_key(key, f"the key file {str(path)!r}")
            return key
        make_data_dir(data_dir)
        key = Fernet.generate_key().decode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
    except OSError as exc:
        raise SettingsError(f"cannot use the key file {str(path)!r}: {exc.strerror}") from None
    return key


def _check_key(key: str, where: str) -> None:
    try:
        Fernet(key)
    except (ValueError, TypeError):
        raise SettingsError(
            f"{where} is not a Fernet key (32 bytes in URL-safe base64, 44 characters)"
        ) from None
