"""Requests whose body is raw data, not a JSON document: image uploads, streamed to disk."""

from __future__ import annotations

import re

from starlette.types import Scope

# PUT /image/v2/images/{id}/file: its handler bounds the size ([api] image_size_cap) as it
# streams, so neither the 1 MiB JSON limit nor the NUL scan (which reads the body whole) apply.
_UPLOAD = re.compile(r"^/image/v2/images/[^/]+/file$")


def is_raw_upload(scope: Scope) -> bool:
    return scope.get("method") == "PUT" and bool(_UPLOAD.match(scope.get("path", "")))
