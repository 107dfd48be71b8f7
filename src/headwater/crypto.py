"""Encryption of downstream credentials at rest (Fernet: AES-128-CBC with HMAC-SHA256)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

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
    """The configured key, else the key file in ``data_dir`` (created with mode 0600)."""
    if configured:
        Fernet(configured)  # fail fast on a malformed key
        return configured
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key
