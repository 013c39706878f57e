"""RFC 6728 names files by URI (``inet:uri``): a fileWriter's and a fileReader's ``file``.

flowprobe reads and writes local files, so it takes ``file:`` URIs (RFC 8089: ``file:///abs``,
``file://localhost/abs``, ``file:relative``) and, as people write them, plain paths.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit


def file_path(uri: str) -> tuple[str, str | None]:
    """(the local path ``uri`` names, what is wrong with it or None)."""
    parts = urlsplit(uri)
    if parts.scheme == "" or len(parts.scheme) == 1:  # a path (or a Windows drive letter)
        return uri, None if uri else "an empty file name"
    if parts.scheme != "file":
        return "", (f"{uri!r}: only local files can be read or written (a file: URI or a "
                    f"path), not {parts.scheme}:")
    if parts.netloc not in ("", "localhost"):
        return "", f"{uri!r}: names a file on host {parts.netloc!r}; only local files"
    if parts.query or parts.fragment:
        return "", f"{uri!r}: a file URI has no query or fragment"
    path = unquote(parts.path)
    return path, None if path else f"{uri!r}: no path"
