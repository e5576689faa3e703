"""The docs' commands are the ones the code accepts, and the offline ones run.

Every fenced shell block (bash, sh, shell) of README.md and docs/*.md is read:
- each `datajax-operator ...` and `datajax-sidecar ...` command is parsed by the real argparse parser
  (subcommand, every flag, choices and value types), each `make ...` target must exist in the Makefile;
- in a block without a `# needs: <what>` marker, every command must be one of those three, and the
  offline subcommands (`plan`, `crd`, `analyze`) are run from the repository root and must exit 0 (or the
  code a `# exit N` comment on the line names); a fenced block tagged `<lang> output` right after the
  block holds the exact output (stdout, then stderr) of its last command;
- a block with a leading comment line `# needs: gke` (or `cluster`, `docker`, `tpu-vm`, `gcp`, ...) needs
  something this machine does not have: its datajax/make commands are still parsed, nothing is run.
`../shared/fixtures/...` paths (the real vLLM scrapes beside the repository) are resolved the way the
other tests find them, so a worktree checkout runs the same commands.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from datajax_operator.api.resource import DataJaxModel
from datajax_operator.cli import build_parser as operator_parser
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.planner import make_plan
from datajax_runtime.cli import analyze
from datajax_runtime.cli import build_parser as sidecar_parser
from datajax_runtime.window import Figures, Pricing

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vllm_fixtures import FIXTURE_SET, fixtures_dir, scrape_time

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell"})
NEEDS = re.compile(r"^#\s*needs:\s*(\S.*)$")
EXPECT_EXIT = re.compile(r"#\s*exit\s+(\d+)\s*$")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
SEPARATORS = frozenset({"|", "||", "&&", ";", "&"})
REDIRECTS = frozenset({">", ">>", "<", "2>", "&>"})
MODULES = {"datajax-operator": "datajax_operator.cli", "datajax-sidecar": "datajax_runtime.cli"}
RUNNABLE = {"datajax-operator": frozenset({"plan", "crd"}), "datajax-sidecar": frozenset({"analyze"})}
CHECKED = frozenset({*MODULES, "make"})
SHARED_FIXTURES = f"../shared/{FIXTURE_SET.as_posix()}/"


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its info string, its text, and what it needs (if marked)."""

    path: Path
    line: int
    language: str
    tags: tuple[str, ...]
    text: str

    @property
    def needs(self) -> str | None:
        """The `# needs: <what>` marker among the block's leading comment lines."""
        for line in self.text.strip().split("\n"):
            if not line.strip().startswith("#"):
                return None
            match = NEEDS.match(line.strip())
            if match:
                return match.group(1)
        return None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass(frozen=True)
class Command:
    """One simple command of a shell block, with the exit code the docs promise."""

    block: Block
    line: int
    argv: tuple[str, ...]
    exit_code: int

    @property
    def program(self) -> str:
        return Path(self.argv[0]).name

    @property
    def runnable(self) -> bool:
        subcommand = self.argv[1] if len(self.argv) > 1 else ""
        return self.block.needs is None and subcommand in RUNNABLE.get(self.program, frozenset())

    @property
    def id(self) -> str:
        return f"{self.block.path.relative_to(ROOT)}:{self.line}:{' '.join(self.argv[:3])}"


def parse_blocks(path: Path, text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text (backtick or tilde fences, up to 3 spaces indent)."""
    blocks: list[Block] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, info = opening.group("fence"), opening.group("info").split()
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = FENCE.match(lines[j].strip())
            if closing and closing.group("fence").startswith(fence) and not closing.group("info").strip():
                break
            body.append(lines[j])
            j += 1
        language = info[0] if info else ""
        blocks.append(Block(path, i + 1, language, tuple(info[1:]), "\n".join(body)))
        i = j + 1
    return blocks


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined, each with its first line's offset in the block."""
    out: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for offset, raw in enumerate(text.split("\n")):
        if not pending:
            start = offset
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        out.append((start, pending + raw))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


def parse_commands(block: Block) -> list[Command]:
    """The simple commands of a shell block: split at | && || ; &, redirect targets and VAR=x dropped."""
    commands: list[Command] = []
    for offset, line in _logical_lines(block.text):
        expected = EXPECT_EXIT.search(line)
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        segment: list[str] = []
        segments: list[list[str]] = []
        redirected = False
        for token in lexer:
            if token in SEPARATORS:
                segments.append(segment)
                segment, redirected = [], False
            elif token in REDIRECTS or redirected:
                redirected = token in REDIRECTS
            else:
                segment.append(token)
        segments.append(segment)
        for found in segments:
            words = found
            while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                words = words[1:]
            if words:
                code = int(expected.group(1)) if expected else 0
                commands.append(Command(block, block.line + 1 + offset, tuple(words), code))
    return commands


def makefile_targets() -> set[str]:
    targets: set[str] = set()
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_][A-Za-z0-9_. -]*):(?!=)", line)
        if match:
            targets.update(match.group(1).split())
    return targets


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _shell_blocks() -> list[Block]:
    return [
        block
        for path in doc_files()
        for block in parse_blocks(path, path.read_text(encoding="utf-8"))
        if block.language in SHELL_LANGUAGES
    ]


SHELL_BLOCKS = _shell_blocks()
COMMANDS = [c for block in SHELL_BLOCKS for c in parse_commands(block) if c.program in CHECKED]
RUNS = [c for c in COMMANDS if c.runnable]


def _parser_for(program: str) -> argparse.ArgumentParser:
    return operator_parser() if program == "datajax-operator" else sidecar_parser()


def _parse_error(command: Command) -> str | None:
    """What argparse says about the command's arguments, or None when it accepts them."""
    parser = _parser_for(command.program)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(list(command.argv[1:]))
    except SystemExit as exited:
        return None if exited.code == 0 else stderr.getvalue().strip()
    return None


def _local(argument: str) -> str:
    if argument.startswith(SHARED_FIXTURES):
        return str(fixtures_dir() / argument[len(SHARED_FIXTURES) :])
    return argument


def _output_block(command: Command) -> Block | None:
    """The `<lang> output` block right after the command's block, when it is the block's last command."""
    blocks = parse_blocks(command.block.path, command.block.path.read_text(encoding="utf-8"))
    index = next(i for i, b in enumerate(blocks) if b.line == command.block.line)
    following = blocks[index + 1] if index + 1 < len(blocks) else None
    if following is None or "output" not in following.tags:
        return None
    if parse_commands(command.block)[-1] != command:
        return None
    return following


# -- the extractor itself, on a text whose answer is known ------------------------------------------

SAMPLE = """# Sample

```bash
make run    # the demo
datajax-operator plan -f examples/llama3-8b-v6e.yaml \\
  -o table | less
FOO=1 datajax-operator crd > crds/out.yaml && make lint
datajax-operator plan -f bad.yaml   # exit 2
```

```text output
PLAN
```

  ```bash
  # the model's columns
  # needs: gke
  kubectl get djm
  ```

```sh
make lint
# needs: gke (too late: a marker counts only above the first command)
```
"""


def test_extractor_reads_commands_markers_and_outputs() -> None:
    blocks = parse_blocks(ROOT / "SAMPLE.md", SAMPLE)
    assert [(b.language, b.tags, b.line) for b in blocks] == [
        ("bash", (), 3),
        ("text", ("output",), 11),
        ("bash", (), 15),
        ("sh", (), 21),
    ]
    assert [b.needs for b in blocks] == [None, None, "gke", None]
    commands = parse_commands(blocks[0])
    assert [c.argv for c in commands] == [
        ("make", "run"),
        ("datajax-operator", "plan", "-f", "examples/llama3-8b-v6e.yaml", "-o", "table"),
        ("less",),
        ("datajax-operator", "crd"),
        ("make", "lint"),
        ("datajax-operator", "plan", "-f", "bad.yaml"),
    ]
    assert [c.line for c in commands] == [4, 5, 5, 7, 7, 8]
    assert [c.exit_code for c in commands] == [0, 0, 0, 0, 0, 2]
    assert [c.argv for c in parse_commands(blocks[2])] == [("kubectl", "get", "djm")]


def test_a_wrong_flag_or_subcommand_is_caught() -> None:
    block = Block(ROOT / "SAMPLE.md", 1, "bash", (), "")
    good = Command(block, 1, ("datajax-sidecar", "analyze", "a", "b", "--seconds", "5", "--chips", "8",
                              "--usd-per-chip-hour", "2.7"), 0)  # fmt: skip
    assert _parse_error(good) is None
    assert "--cost" in str(_parse_error(Command(block, 1, (*good.argv, "--cost", "3"), 0)))
    assert _parse_error(Command(block, 1, ("datajax-operator", "deploy"), 0))
    assert _parse_error(Command(block, 1, ("datajax-operator", "plan", "-f", "x", "-o", "xml"), 0))


# -- the real docs ------------------------------------------------------------------------------------


def test_unmarked_shell_blocks_hold_only_checked_commands() -> None:
    """A block that runs kubectl, gcloud, helm or docker must say so with `# needs: ...`."""
    unmarked: dict[str, set[str]] = {}
    for block in SHELL_BLOCKS:
        if block.needs is None:
            for command in parse_commands(block):
                if command.program not in CHECKED:
                    unmarked.setdefault(block.where, set()).add(command.program)
    unmarked_lines = [
        f"{where}: runs {', '.join(sorted(programs))}: add a `# needs: <what>` line at the top of the block"
        for where, programs in unmarked.items()
    ]
    assert not unmarked_lines, "\n".join(unmarked_lines)


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_documented_command_is_accepted(command: Command) -> None:
    if command.program == "make":
        unknown = [a for a in command.argv[1:] if "=" not in a and a not in makefile_targets()]
        assert not unknown, f"{command.block.where}: no Makefile target {unknown}"
        return
    error = _parse_error(command)
    assert error is None, f"{command.block.where}: `{' '.join(command.argv)}` is rejected:\n{error}"


@pytest.mark.parametrize("command", RUNS, ids=[c.id for c in RUNS])
def test_offline_command_runs(command: Command) -> None:
    argv = [sys.executable, "-m", MODULES[command.program], *map(_local, command.argv[1:])]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == command.exit_code, (
        f"{command.block.where}: `{' '.join(command.argv)}` exited {done.returncode}:\n{done.stderr}"
    )
    expected = _output_block(command)
    if expected is None:
        return
    shown = done.stdout + done.stderr
    if expected.language == "json":
        assert json.loads(shown) == json.loads(expected.text), f"{expected.where} differs from the output"
    else:
        assert shown.rstrip("\n") == expected.text.rstrip("\n"), (
            f"{expected.where} differs from what `{' '.join(command.argv)}` prints:\n{shown}"
        )


def test_the_docs_commands_are_counted() -> None:
    """The numbers the parametrized tests above cover; they may only grow with the docs."""
    documented = {c.block.path.name for c in COMMANDS}
    outputs = [c for c in RUNS if _output_block(c) is not None]
    print(f"\n{len(SHELL_BLOCKS)} shell blocks, {len(COMMANDS)} commands checked, {len(RUNS)} run, "
          f"{len(outputs)} with their output compared")  # fmt: skip
    assert {"README.md", "architecture.md", "cost-model.md", "troubleshooting.md", "runtime-image.md"} <= (
        documented
    )
    assert len(COMMANDS) >= 14
    assert len(RUNS) >= 11
    assert len(outputs) >= 4
    claimed = {(b.path, b.line) for b in map(_output_block, RUNS) if b is not None}
    orphans = [
        b.where
        for path in doc_files()
        for b in parse_blocks(path, path.read_text(encoding="utf-8"))
        if "output" in b.tags and (b.path, b.line) not in claimed
    ]
    assert not orphans, f"output blocks that follow no offline command (nothing checks them): {orphans}"


# -- the figures the prose states -------------------------------------------------------------------


def _analyze(before: int, after: int, seconds: float, basis: str = "total") -> Figures:
    texts = [(fixtures_dir() / f"scrape-{i}.prom").read_text(encoding="utf-8") for i in (before, after)]
    return analyze(texts[0], texts[1], seconds, Pricing(chips=8, usd_per_chip_hour=2.7, basis=basis))


def test_cost_model_worked_example_is_what_the_code_computes() -> None:
    """Every number of the worked example, recomputed with the planner and the sidecar's window math."""
    text = (ROOT / "docs" / "cost-model.md").read_text(encoding="utf-8")
    model = DataJaxModel.model_validate(
        yaml.safe_load((ROOT / "examples" / "llama3-8b-v6e.yaml").read_text())
    )
    cost = make_plan(model, OperatorConfig()).cost
    a = _analyze(1, 2, 5.5565)
    b = _analyze(2, 3, 5.4726)
    out = _analyze(1, 2, 5.5565, basis="output")
    assert abs((scrape_time(2) - scrape_time(1)) - 5.5565) < 1e-4
    assert abs((scrape_time(3) - scrape_time(2)) - 5.4726) < 1e-4
    total_a = a.prompt_tokens_per_second + a.generation_tokens_per_second
    total_b = b.prompt_tokens_per_second + b.generation_tokens_per_second
    usd_per_hour = a.usd_per_hour + b.usd_per_hour
    tokens = total_a + total_b
    prompt = a.prompt_tokens_per_second + b.prompt_tokens_per_second
    hit = (
        a.prefix_cache_hit_ratio * a.prompt_tokens_per_second
        + b.prefix_cache_hit_ratio * b.prompt_tokens_per_second
    ) / prompt
    stated = [
        f"**${cost.usd_per_hour:.2f}/h**",
        f"**{cost.breakeven_tokens_per_second:,.0f} tokens/s**",
        f"**{a.prompt_tokens_per_second:,.1f} tokens/s**",
        f"**{a.generation_tokens_per_second:,.1f} tokens/s**",
        f"total **{total_a:,.1f} tokens/s**",
        f"**${a.usd_per_million_tokens:.3f}**",
        f"= **{a.prefix_cache_hit_ratio:.3f}**",
        f"**{a.p95_e2e_latency_seconds:.3f} s**",
        f"**${out.usd_per_million_tokens:.2f}**",
        f": {b.prompt_tokens_per_second:,.1f} prompt and {b.generation_tokens_per_second:,.1f} generated",
        f"hit ratio {b.prefix_cache_hit_ratio:.3f}, p95 {b.p95_e2e_latency_seconds:.3f} s",
        f"**${usd_per_hour:.2f}/h**",
        f"break-even = **{usd_per_hour * 1e6 / (3600 * 3):,.0f} tokens/s**",
        f"{total_a:,.1f} + {total_b:,.1f} = **{tokens:,.1f}**",
        f"= **${usd_per_hour / (tokens * 3600) * 1e6:.3f}**",
        f"${a.usd_per_million_tokens:.3f} and ${b.usd_per_million_tokens:.3f} would say "
        f"${(a.usd_per_million_tokens + b.usd_per_million_tokens) / 2:.3f}",
        f"= **{hit:.3f}**",
        f"max({a.p95_e2e_latency_seconds:.3f}, {b.p95_e2e_latency_seconds:.3f}) = "
        f"**{max(a.p95_e2e_latency_seconds, b.p95_e2e_latency_seconds):.3f} s**",
    ]
    missing = [figure for figure in stated if figure not in text]
    assert not missing, f"docs/cost-model.md does not state what the code computes: {missing}"
    starved = _analyze(0, 1, 1.7375, basis="output")
    assert (
        starved.generation_tokens_per_second < 2000 and f"{starved.generation_tokens_per_second:,.1f}" in text
    )


def test_runtime_image_page_lists_every_sidecar_flag() -> None:
    text = (ROOT / "docs" / "runtime-image.md").read_text(encoding="utf-8")
    subcommands = sidecar_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    flags = {
        option
        for name in ("serve", "analyze")
        for action in subcommands[name]._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    assert flags and not {f for f in flags if f"`{f}" not in text and f not in ("--seconds", "--output")}


def _anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(c for c in heading.strip().lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    fenced = {
        line for b in parse_blocks(path, text) for line in range(b.line, b.line + b.text.count("\n") + 2)
    }
    return {
        _anchor(line.lstrip("#"))
        for number, line in enumerate(text.split("\n"), start=1)
        if line.startswith("#") and number not in fenced
    }


def test_relative_links_and_anchors_resolve() -> None:
    broken = []
    for path in doc_files():
        prose = re.sub(r"`[^`\n]*`", "", path.read_text(encoding="utf-8"))  # code spans hold no links
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"^[a-z]+://", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.name}: {target}")
                continue
            if anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{path.name}: {target} (no such heading)")
    assert not broken, broken
