"""Download one file into a cache folder: a timeout per request, a SHA-256 check, an atomic rename.

Nothing process-wide is touched (no ``socket.setdefaulttimeout``): the
timeout belongs to this request alone, so other threads' sockets (MLflow's
HTTP client, say) keep theirs.  The file is streamed to a hidden temporary
file next to its destination and renamed into place only once its hash
matches, so a parallel reader never sees a partial or corrupt download.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import urllib.request
from pathlib import Path

_CHUNK_BYTES = 1 << 20


def fetch(url: str, dest: Path, sha256: str | None, *, timeout: float, progress=None) -> Path:
    """Download ``url`` to ``dest`` unless the SHA-256 of what arrives differs from ``sha256``.

    Args:
        url: where to download from (``https://``, ``http://`` or ``file://``).
        dest: the file to create; its folder is created when missing, an
            existing file is replaced atomically.
        sha256: the expected SHA-256, as hex; ``None`` when the source
            publishes none (the caller then checks what is inside).
        timeout: seconds that connecting and each read may block (per
            socket operation, as ``urllib.request.urlopen`` applies it).
        progress: ``None``, or called as ``progress(total_bytes_or_None)``
            once the response arrives; it returns a callable that is given
            the size of every chunk written (a ``tqdm`` bar's ``update``).

    Nothing is left behind when it raises.

    Returns:
        ``dest``.

    Raises:
        OSError: the server is unreachable or the request fails (``URLError``,
            ``HTTPError``, a timeout), or ``dest`` cannot be written.
        ValueError: what arrived does not have the expected hash.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "xb") as out:
            length = response.headers.get("Content-Length")
            advance = progress(int(length) if length else None) if progress else None
            while chunk := response.read(_CHUNK_BYTES):
                digest.update(chunk)
                out.write(chunk)
                if advance:
                    advance(len(chunk))
        got = digest.hexdigest()
        if sha256 is not None and got != sha256.lower():
            raise ValueError(f"the file from {url} has SHA-256 {got}, not the expected {sha256}")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest
