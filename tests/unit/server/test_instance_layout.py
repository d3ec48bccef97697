"""docs/instance.md's directory layout is what `init` creates: every path init makes is
documented, every documented path marked for init exists, and documented modes hold.

The layout block's format (one entry a line, two spaces of indent a level): a name (``/``
ends a directory; ``<...>`` stands for any text), then its description. A description that
starts with ``(serve)``, ``(rotate ca)`` or ``(rotate log)`` is made later, not by init. ``mode 0NNN`` in a
description is the entry's mode; ``files 0NNN`` the mode of every file directly in it."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from sealtrail.server.instance import Instance

DOC = Path(__file__).resolve().parents[3] / "docs" / "instance.md"


class Entry:
    def __init__(self, path: str, description: str) -> None:
        self.path = path  # relative to DIR, directories ending with /
        self.description = description
        pattern = "".join(".+" if part.startswith("<") else re.escape(part)
                          for part in re.split(r"(<[^>]+>)", path))
        self.pattern = re.compile(pattern)
        self.by_init = not re.match(r"\((serve|rotate ca|rotate log)\)", description)
        mode = re.search(r"\bmode (0[0-7]{3})\b", description)
        files = re.search(r"\bfiles (0[0-7]{3})\b", description)
        self.mode = int(mode[1], 8) if mode else None
        self.files_mode = int(files[1], 8) if files else None


def documented_layout() -> list[Entry]:
    section = DOC.read_text().split("\n## Directory layout\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    lines = [line for line in block.splitlines() if line.strip()]
    assert lines[0].startswith("DIR/"), "the layout starts at DIR/"
    entries: list[Entry] = []
    parents: list[str] = []
    for line in lines[1:]:
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 2 == 0 and indent >= 2, f"bad indentation: {line!r}"
        level = indent // 2 - 1
        name, _, description = line.strip().partition("  ")
        assert level <= len(parents), f"{name} is indented below no directory"
        del parents[level:]
        path = "".join(parents) + name
        entries.append(Entry(path, description.strip()))
        if name.endswith("/"):
            parents.append(name)
    return entries


def test_the_documented_layout_is_what_init_creates(tmp_path: Path) -> None:
    root = Path(Instance.init(str(tmp_path / "instance"), port=8080,
                              builtin_issuer=True).directory)
    entries = documented_layout()
    created = {path.relative_to(root).as_posix() + ("/" if path.is_dir() else ""): path
               for path in root.rglob("*")}
    undocumented = [path for path in created
                    if not any(e.pattern.fullmatch(path) for e in entries)]
    assert undocumented == [], "created by init but not in docs/instance.md"
    missing = [e.path for e in entries
               if e.by_init and not any(e.pattern.fullmatch(path) for path in created)]
    assert missing == [], "in docs/instance.md but not created by init"
    later = [path for path in created
             if all(not e.by_init for e in entries if e.pattern.fullmatch(path))]
    assert later == [], "documented as made later, but init makes them"
    for entry in entries:
        for path, real in created.items():
            if not entry.pattern.fullmatch(path):
                continue
            mode = stat.S_IMODE(real.stat().st_mode)
            if entry.mode is not None:
                assert mode == entry.mode, (path, oct(mode))
            if entry.files_mode is not None:
                for child in real.iterdir():
                    if child.is_file():
                        assert stat.S_IMODE(child.stat().st_mode) == entry.files_mode, child
