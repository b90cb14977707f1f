"""The documentation's links resolve: every relative link names a file that exists, every
``#anchor`` a heading of its target (GitHub's slugs), and every backticked repository path
(``service/web/health.py``) a file or folder that exists, so a module renamed without its
docs fails here."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The repository's own folders: a backticked path starting with one of them is a claim
# that the path exists. Listed, not read from disk, so a folder renamed away still counts.
REPO_FOLDERS = frozenset(
    {"bench", "devstack", "docs", "infra", "mock_wechat", "ops", "service", "tests", ".ci"}
)
# A path ending so is a file wherever it points (`Pulumi.dev.yaml` has no folder).
FILE_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".toml", ".json", ".html", ".txt", ".sh")
# Written at run time, never in the repository (make dev's state file).
RUNTIME_PATHS = (".dev/",)

FENCE = re.compile(r"^\s*(```+|~~~+)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]*)>?(?:\s+\"[^\"]*\")?\s*\)"
)
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
HTML_ANCHOR = re.compile(r"<a\s+(?:[^>]*\s)?(?:id|name)=\"([^\"]+)\"")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
REPO_PATH = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+/?$")


def documentation_files(root: Path = ROOT) -> list[Path]:
    """The documentation a reader follows: the README, docs/ and the folders' READMEs."""
    files = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    files += [root / name for name in ("bench/README.md", "tests/README.md", "infra/README.md")]
    return files


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}"


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, where Markdown is Markdown."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if match:
            mark = match.group(1)
            if fence is None:
                fence = mark
            elif mark[0] == fence[0] and len(mark) >= len(fence):
                fence = None
            continue
        if fence is None:
            yield number, line


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text as rendered, lowercased, punctuation and
    symbols dropped (letters of any script, digits, '_' and '-' kept), spaces to '-'."""
    text = CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("*", "")  # emphasis
    kept = []
    for char in text.lower():
        category = unicodedata.category(char)
        if char in "-_" or char == " " or category[0] in "LNM":
            kept.append(char)
    return "".join(kept).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a Markdown file offers: its headings' slugs (a repeat gets -1, -2, …,
    as on GitHub) and explicit ``<a id>``/``<a name>`` anchors."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(text):
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        if slug in seen:
            seen[slug] += 1
            found.add(f"{slug}-{seen[slug]}")
        else:
            seen[slug] = 0
            found.add(slug)
    return found


def links(text: str) -> Iterator[tuple[int, str]]:
    """(line, target) of every inline, image and reference link outside code."""
    for number, line in prose_lines(text):
        prose = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
        for match in INLINE_LINK.finditer(prose):
            yield number, match.group(1)
        reference = REFERENCE_LINK.match(prose)
        if reference:
            yield number, reference.group(1)


def code_paths(text: str) -> Iterator[tuple[int, str]]:
    """(line, path) of every backticked span that names a path in the repository."""
    for number, line in prose_lines(text):
        for match in CODE_SPAN.finditer(line):
            span = match.group(2).strip()
            if not REPO_PATH.match(span) or span.startswith(RUNTIME_PATHS) or "..." in span:
                continue  # not a path, written at run time, or a placeholder (`service/...`)
            if span.split("/", 1)[0] in REPO_FOLDERS or span.endswith(FILE_SUFFIXES):
                yield number, span


def check_file(path: Path, root: Path = ROOT) -> list[Problem]:
    """Everything in one Markdown file that points at something missing."""
    text = path.read_text(encoding="utf-8")
    name = path.relative_to(root).as_posix()
    problems: list[Problem] = []
    for number, target in links(text):
        if SCHEME.match(target):
            continue  # a web address: not ours to check offline
        if target.startswith("/"):
            problems.append(Problem(name, number, f"{target}: use a path relative to the file"))
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not resolved.is_relative_to(root.resolve()) or not resolved.exists():
            problems.append(Problem(name, number, f"{target}: no such file"))
            continue
        if anchor and resolved.suffix == ".md":
            if unquote(anchor) not in anchors(resolved.read_text(encoding="utf-8")):
                where = resolved.relative_to(root.resolve()).as_posix()
                problems.append(Problem(name, number, f"{target}: no heading #{anchor} in {where}"))
    for number, repo_path in code_paths(text):
        if not ((root / repo_path).exists() or (path.parent / repo_path).exists()):
            problems.append(Problem(name, number, f"`{repo_path}`: no such file or folder"))
    return problems


def check(files: list[Path], root: Path = ROOT) -> list[Problem]:
    return [problem for path in files for problem in check_file(path, root)]


# --- the repository's documentation ---------------------------------------------------


def test_every_documentation_file_exists() -> None:
    missing = [str(path.relative_to(ROOT)) for path in documentation_files() if not path.exists()]
    assert not missing, missing


@pytest.mark.parametrize(
    "path", documentation_files(), ids=lambda path: path.relative_to(ROOT).as_posix()
)
def test_links_anchors_and_paths_resolve(path: Path) -> None:
    problems = check_file(path)
    assert not problems, "\n".join(map(str, problems))


def test_the_readme_links_every_docs_page() -> None:
    """A newcomer reaches every page from the README."""
    linked = {
        (ROOT / unquote(target.partition("#")[0])).resolve()
        for _, target in links((ROOT / "README.md").read_text(encoding="utf-8"))
        if not SCHEME.match(target)
    }
    pages = {path.resolve() for path in (ROOT / "docs").glob("*.md")}
    pages |= {(ROOT / "bench/README.md").resolve(), (ROOT / "tests/README.md").resolve()}
    assert pages <= linked, sorted(str(p.relative_to(ROOT)) for p in pages - linked)


def test_the_readme_stays_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 200, f"README.md has {lines} lines: move the detail to docs/"


def test_the_layout_names_modules_that_exist() -> None:
    """The README's repository layout (a code block, which the path check cannot read) names
    modules as `file.py` under their folder's line."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index("## Repository layout") :]
    block = block[block.index("```") + 3 :]
    block = block[: block.index("```")]
    folder = ""
    missing = []
    for line in block.splitlines():
        head = re.match(r"^([a-z_]+)/\s", line)
        if head:
            folder = head.group(1)
        for module in re.findall(r"\b([a-z_]+\.py)\b", line):
            if folder and not (ROOT / folder / module).exists():
                missing.append(f"{folder}/{module}")
    assert not missing, missing


def mermaid_semicolons(text: str) -> list[int]:
    """Lines of Mermaid diagrams with a bare ';': Mermaid ends a statement there, so the
    rest of a message becomes a statement of its own and the whole diagram fails to render
    (write '#59;')."""
    lines, inside = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith("```"):
            inside = line.strip() == "```mermaid"
            continue
        if inside and ";" in line.replace("#59;", ""):
            lines.append(number)
    return lines


@pytest.mark.parametrize(
    "path", documentation_files(), ids=lambda path: path.relative_to(ROOT).as_posix()
)
def test_mermaid_diagrams_have_no_bare_semicolons(path: Path) -> None:
    assert mermaid_semicolons(path.read_text(encoding="utf-8")) == []


# --- the checks themselves fail when they should ----------------------------------------


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Messages, and going live (全网发布)", "messages-and-going-live-全网发布"),
        (
            "Delivering messages and events to your services",
            "delivering-messages-and-events-to-your-services",
        ),
        (
            "3. Create the foundation, then the image, then the services",
            "3-create-the-foundation-then-the-image-then-the-services",
        ),
        ("When Pub/Sub is away", "when-pubsub-is-away"),
        ("Routes: `MESSAGE_ROUTES`", "routes-message_routes"),
        ("The merchant's authorization", "the-merchants-authorization"),
        ("A **bold** [link](x.md) — dash", "a-bold-link--dash"),
        ("全网发布：上线", "全网发布上线"),
    ],
)
def test_github_slugs(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_a_bare_semicolon_in_a_diagram_is_found() -> None:
    text = "```mermaid\nsequenceDiagram\n    A->>B: one#59; two\n    B-->>A: one; two\n```\n"
    assert mermaid_semicolons(text + "a; b outside\n") == [4]


def test_repeated_headings_get_numbered_anchors() -> None:
    text = "# Setup\n\n## Setup\n\n```\n# Setup (a comment in code)\n```\n\n### Setup\n"
    assert anchors(text) == {"setup", "setup-1", "setup-2"}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small repository: a README and one docs page, every link good."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "service").mkdir()
    (tmp_path / "service" / "health.py").write_text("")
    (tmp_path / "docs" / "page.md").write_text(
        "# Page\n\n## Going live (全网发布)\n\nBack to the [README](../README.md#start).\n"
    )
    (tmp_path / "README.md").write_text(
        "# Start\n\nSee [the page](docs/page.md#going-live-全网发布), "
        "[encoded](docs/page.md#going-live-%E5%85%A8%E7%BD%91%E5%8F%91%E5%B8%83), "
        "[here](#start), [web](https://example.com/x#y), `service/health.py`, `service/`, "
        "`service/...`, `.dev/stack.json`.\n\n"
        "[ref]: docs/page.md\n\n"
        "```\n[in code](missing.md) `service/gone.py`\n```\n"
    )
    return tmp_path


def problems_in(root: Path) -> list[str]:
    files = [root / "README.md", root / "docs" / "page.md"]
    return [str(problem) for problem in check(files, root)]


def test_a_good_tree_passes(tree: Path) -> None:
    assert problems_in(tree) == []


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


@pytest.mark.parametrize(
    ("broken", "reported"),
    [
        ("[gone](docs/missing.md)", "docs/missing.md: no such file"),
        ("[moved](infra/README.md)", "infra/README.md: no such file"),
        ("[outside](../elsewhere.md)", "../elsewhere.md: no such file"),
        ("[rooted](/docs/page.md)", "/docs/page.md: use a path relative to the file"),
        ("[image](docs/shot.png)", "docs/shot.png: no such file"),
        ("[r2]: docs/nothing.md", "docs/nothing.md: no such file"),
        (
            "[anchor](docs/page.md#going-live)",
            "docs/page.md#going-live: no heading #going-live in docs/page.md",
        ),
        ("[here](#nowhere)", "#nowhere: no heading #nowhere in README.md"),
        ("Served by `service/web/health.py`.", "`service/web/health.py`: no such file or folder"),
        ("See `bench/outage_bench.py`.", "`bench/outage_bench.py`: no such file or folder"),
        ("See `notes/plan.md`.", "`notes/plan.md`: no such file or folder"),
    ],
)
def test_each_check_fails_on_a_broken_reference(tree: Path, broken: str, reported: str) -> None:
    append(tree / "README.md", f"\n{broken}\n")
    assert problems_in(tree) == [f"README.md:11: {reported}"]


def test_a_renamed_heading_breaks_the_links_to_it(tree: Path) -> None:
    page = tree / "docs" / "page.md"
    page.write_text(page.read_text().replace("Going live", "Release"))
    assert problems_in(tree) == [
        "README.md:3: docs/page.md#going-live-全网发布: "
        "no heading #going-live-全网发布 in docs/page.md",
        "README.md:3: docs/page.md#going-live-%E5%85%A8%E7%BD%91%E5%8F%91%E5%B8%83: no heading "
        "#going-live-%E5%85%A8%E7%BD%91%E5%8F%91%E5%B8%83 in docs/page.md",
    ]


def test_a_renamed_module_breaks_the_docs_that_name_it(tree: Path) -> None:
    (tree / "service" / "health.py").rename(tree / "service" / "healthz.py")
    assert problems_in(tree) == ["README.md:3: `service/health.py`: no such file or folder"]
