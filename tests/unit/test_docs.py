"""The README stays a short front page whose links all lead somewhere (issue 31 item 5).

The docs site itself (docs/, mkdocs.yml) is checked by ``make lint``'s ``mkdocs build
--strict``; the README is not part of that site, so its own links are checked here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# [text](target): the targets of inline Markdown links.
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_is_at_most_15_kb() -> None:
    size = len(README.read_bytes())
    assert size <= 15 * 1024, f"README.md is {size} bytes: move the detail into docs/"


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.read_text().split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]


def test_every_relative_link_in_the_readme_names_a_file_in_the_repository() -> None:
    targets = [t for t in LINK.findall(README.read_text()) if "://" not in t]
    assert targets, "the README links to its docs"
    missing = [t for t in targets if not (ROOT / t.split("#")[0]).is_file()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
