"""`[credentials]`: where the encrypted store and its key live.

Both default into the data directory. The key may instead come from the environment
(`TOOLKILN_CREDENTIALS_KEY`, comma-separated Fernet keys, newest first) and the key file's
location from `TOOLKILN_CREDENTIALS_KEY_FILE`: the environment moves secrets, never policy.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

__all__ = ["ENV_KEY", "ENV_KEY_FILE", "CredentialSettings"]

ENV_KEY = "TOOLKILN_CREDENTIALS_KEY"
ENV_KEY_FILE = "TOOLKILN_CREDENTIALS_KEY_FILE"


class CredentialSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Default: <data_dir>/credentials.db and <data_dir>/credentials.key (relative paths: to data_dir).
    path: Path | None = None
    key_path: Path | None = None

    def db_path(self, data_dir: Path) -> Path:
        return data_dir / (self.path or Path("credentials.db"))

    def key_file(self, data_dir: Path) -> Path:
        env = os.environ.get(ENV_KEY_FILE)
        if env:
            return Path(env).expanduser()
        return data_dir / (self.key_path or Path("credentials.key"))
