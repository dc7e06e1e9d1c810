"""The documents in the repository cite only files that are in the repository."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# README.md is left out: its maintainer updates it from each issue's report.
DOCUMENTS = sorted([*(REPO / "docs").glob("*.md"), REPO / "CONTRIBUTING.md", REPO / "CHANGELOG.md"])
TOP = ("filemem", "devtools", "tests", "bench", "scripts", "docs", "etc")
CITED = re.compile(r"`([^`\s]+)`|\]\(([^)\s]+)\)")


def cited_paths(text: str) -> list[str]:
    """Backticked or linked words that name a file of ours: under a top-level directory, or a
    document or module by its suffix. Placeholders (<uuid>, {host}) end the path there; a
    `*` is a glob that must match."""
    found = []
    for match in CITED.finditer(text):
        word = (match.group(1) or match.group(2)).rstrip(".,:;")
        word = re.split(r"[<{]|::", word)[0]
        if word.startswith("/work/") or word.split("/")[0] in TOP or word.endswith((".md", ".py")):
            found.append(word)
    return found


def exists(word: str) -> bool:
    # Module paths in the docs may be written from the package (compute/host.py).
    bases = (REPO, REPO / "filemem", REPO / "filemem/api")
    if "*" in word:
        return any(any(base.glob(word)) for base in bases)
    return any((base / word).exists() for base in bases)


def test_the_documents_exist() -> None:
    assert all(doc.is_file() for doc in DOCUMENTS)


def test_every_cited_file_is_in_the_repository() -> None:
    missing = [
        f"{doc.relative_to(REPO)}: {word}"
        for doc in DOCUMENTS
        for word in cited_paths(doc.read_text())
        if word.startswith("/") or not exists(word)
    ]
    assert missing == []


def test_a_missing_file_is_found() -> None:
    assert cited_paths("see `docs/nowhere.md` and [x](tests/unit/none.py), `filemem/db`") == [
        "docs/nowhere.md",
        "tests/unit/none.py",
        "filemem/db",
    ]
    assert not exists("docs/nowhere.md")
    assert exists("tests/unit/test_docs_ref*.py") and not exists("tests/unit/nothing*.py")
    assert cited_paths("`/work/briefs/contract.md`") == ["/work/briefs/contract.md"]
