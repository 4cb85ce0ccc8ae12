"""Where results live: a local directory or a ``pyarrow.fs`` URI, checked before anything opens it."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from farm.errors import ConfigError

# URI query options that would carry a credential (pyarrow's S3 takes access_key/secret_key/session_token).
_SECRET_OPTION = re.compile(r"key|secret|token|password|credential", re.IGNORECASE)


def refuse_credentials(root: str, field: str = "--results") -> str:
    """``root``, or :class:`ConfigError` (exit 2) if it is a URI carrying a credential (``s3://KEY:SECRET@…``,
    ``?secret_key=…``): credentials come only by reference, from the environment (``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``) or the machine's role, never in a URI that lands in logs, shell
    history and result rows. The message does not repeat the secret."""
    if "://" not in root:
        return root
    parts = urlsplit(root)
    options = [k for k, _ in parse_qsl(parts.query, keep_blank_values=True) if _SECRET_OPTION.search(k)]
    if "@" in parts.netloc or options:
        where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
        what = f"option {options[0]!r}" if options else "a user name or password before '@'"
        raise ConfigError.single(
            "results",
            field,
            f"{where}: the URI carries a credential ({what}); give credentials by reference instead: "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE in the environment (docs/results.md)",
        )
    return root
