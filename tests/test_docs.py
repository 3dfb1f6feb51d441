"""The documentation resolves: links and anchors in README.md and docs/*.md, and the
repository files that the sources cite.

Links. Every inline link or image `[text](target)` and every reference definition
`[name]: target` of README.md and docs/*.md, outside code (fenced blocks and code spans),
is checked; targets with a scheme (`https:`, `mailto:`) are not. A relative target must
exist, relative to the Markdown file's folder, inside the repository. A `#anchor` (alone:
this file; after a path: that file) must be the anchor of an ATX heading (`## Title`) of
the target Markdown file under GitHub's rule: the heading's text (code and link markup
dropped) lowercased, every character that is not a letter, digit, space, '-' or '_'
removed, spaces turned into '-'; a repeated anchor gets '-1', '-2', ... in order.

Citations. The comments and docstrings of every .py file under lib/, deeplab/,
dff_deeplab/, experiments/ and tests/, the comments of the shell scripts and yaml files
under experiments/, and the text of README.md and docs/*.md (code included), are searched
for words that name a repository file, and each must exist relative to the repository root:
- a path that starts with one of the repository's folders (`SOURCE_DIRS`: `lib/`, `docs/`,
  `operator_cxx/`, `experiments/`, ...) and ends in a file name with an extension
  (`docs/design.md`, `operator_cxx/flow_warp.cu`, `lib/accel/graphs/index.json`) or in '/'
  (a folder: `lib/accel/live/`); `*` is a glob that must match at least one path;
- a capitalised Markdown name alone (`README.md`): a file at the root.
A section cited as `docs/<page>.md, "Title"` (or `README.md, section 'Demo'`) must be a
heading of that file (compared by anchor).

Not checked: URLs, words with a placeholder (`<name>`, `{a,b}`, `%04d`, `$VAR`, `...`, a
folder named by one letter as in `experiments/x/cfgs/a.yaml`, or `NAME` in capitals after
the first folder), and paths under output/, data/ and model/, which runs and downloads
create (they are not part of the repository).
"""
import ast
import io
import re
import tokenize
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
MARKDOWN = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
SOURCE_ROOTS = ("lib", "deeplab", "dff_deeplab", "experiments", "tests")
SOURCE_DIRS = ("lib", "deeplab", "dff_deeplab", "experiments", "tests", "docs",
               "operator_cxx", "external", "sample_data", ".ci")

FENCE = re.compile(r"^\s{0,3}(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.I)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
LINE_ANCHOR = re.compile(r"^L\d+(-L\d+)?$")

CITED_PATH = re.compile(r"(?<![\w./~$-])((?:%s)/[\w./*<>{}%%$,-]*)"
                        % "|".join(re.escape(d) for d in SOURCE_DIRS))
CITED_ROOT_MD = re.compile(r"(?<![\w./-])([A-Z][A-Z0-9_-]*\.md)\b")
CITED_SECTION = re.compile(r"(?<![\w./-])((?:docs/)?[\w-]+\.md),\s+(?:section\s+)?"
                           r"[\"']([^\"']+)[\"']")
PLACEHOLDER = re.compile(r"[<>{}%$]|\.\.\.|/[A-Za-z]/|/[A-Z][A-Z0-9_]*(?:/|$)")
EXTENSION = re.compile(r"\.[A-Za-z0-9]+$")


def without_fences(text: str) -> List[Tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if match:
            if fence is None:
                fence = match.group(1)
            elif match.group(1) == fence:
                fence = None
            continue
        if fence is None:
            lines.append((number, line))
    return lines


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text)                         # HTML tags
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> Set[str]:
    """Every anchor of a Markdown file: its headings' (with GitHub's -N for repeats)."""
    found: Set[str] = set()
    seen: Dict[str, int] = {}
    for _, line in without_fences(path.read_text(encoding="utf-8")):
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if not match:
            continue
        anchor = github_anchor(match.group(2))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def links(path: Path) -> Iterator[Tuple[int, str]]:
    """(line number, target) of every link outside code in a Markdown file."""
    for number, line in without_fences(path.read_text(encoding="utf-8")):
        line = CODE_SPAN.sub("", line)
        for match in INLINE_LINK.finditer(line):
            yield number, match.group(1)
        match = REFERENCE_DEF.match(line)
        if match:
            yield number, match.group(1)


def link_problem(source: Path, target: str) -> str:
    """Why `target`, linked from `source`, does not resolve ('' when it does)."""
    if SCHEME.match(target):
        return ""
    file_part, _, anchor = unquote(target).partition("#")
    resolved = (source.parent / file_part).resolve() if file_part else source
    if not resolved.is_relative_to(REPO):
        return "points outside the repository"
    if not resolved.exists():
        return f"{resolved.relative_to(REPO)} does not exist"
    if not anchor:
        return ""
    if resolved.suffix != ".md":
        return "" if LINE_ANCHOR.match(anchor) else f"#{anchor} into a file that is not Markdown"
    if anchor not in anchors(resolved):
        return f"no heading of {resolved.relative_to(REPO)} has the anchor #{anchor}"
    return ""


def comments_and_docstrings(path: Path) -> Iterator[Tuple[int, str]]:
    """(line number, text) of every comment and docstring of a Python file."""
    source = path.read_text(encoding="utf-8")
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                yield body[0].lineno, body[0].value.value


def cited_paths(text: str) -> Iterator[str]:
    """The repository paths that `text` cites (see the module docstring for the rule)."""
    for match in CITED_PATH.finditer(text):
        path = match.group(1).rstrip(".,;:")
        if PLACEHOLDER.search(path) or not (path.endswith("/") or EXTENSION.search(path)):
            continue
        yield path
    yield from CITED_ROOT_MD.findall(text)


def path_exists(path: str) -> bool:
    """Whether a cited path (glob allowed) names something in the repository."""
    if "*" in path:
        return any(REPO.glob(path.rstrip("/")))
    return (REPO / path).exists()


def source_files() -> List[Path]:
    """Every .py file of the source folders, and the shell scripts and yaml of experiments/."""
    python = [p for root in SOURCE_ROOTS for p in (REPO / root).rglob("*.py")
              if "__pycache__" not in p.parts]
    scripts = [p for ext in ("*.sh", "*.yaml") for p in (REPO / "experiments").rglob(ext)]
    return sorted(python + scripts)


def comments(path: Path) -> Iterator[Tuple[int, str]]:
    """(line number, text) of every comment and docstring of a source file."""
    if path.suffix == ".py":
        yield from comments_and_docstrings(path)
        return
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("#"):
            yield number, line


def section_problems(text: str) -> Iterator[str]:
    """Citations `<file>.md, "Section"` in `text` whose file has no such heading."""
    for match in CITED_SECTION.finditer(text):
        cited, section = match.groups()
        target = REPO / cited
        if target.is_file() and github_anchor(section) not in anchors(target):
            yield f'{cited}, "{section}": no such heading'


def test_anchor_rule_follows_github():
    assert github_anchor("Quick start") == "quick-start"
    assert github_anchor("The paper's table in one command") == "the-papers-table-in-one-command"
    assert github_anchor("BF16 (not available yet)") == "bf16-not-available-yet"
    assert github_anchor("`--runtime torch`: the runtime") == "--runtime-torch-the-runtime"
    assert github_anchor("Multi-device and dist_sync") == "multi-device-and-dist_sync"
    assert github_anchor("See [the design](docs/design.md)") == "see-the-design"


def test_link_checker_finds_broken_links(tmp_path):
    """The checker itself: a missing file, a missing anchor, a repeated heading's anchor."""
    doc = REPO / "README.md"
    assert link_problem(doc, "https://example.org/x") == ""
    assert link_problem(doc, "docs/no-such-file.md") != ""
    assert link_problem(doc, "#no-such-heading-anywhere") != ""
    assert link_problem(doc, "../outside.md") == "points outside the repository"
    page = tmp_path / "page.md"
    page.write_text("# Title\n## Part\n## Part\n```\n## Not a heading\n```\n"
                    "[a](#part-1) `[b](#nope)` [c](#title)\n")
    assert anchors(page) == {"title", "part", "part-1"}
    assert [target for _, target in links(page)] == ["#part-1", "#title"]


def test_citation_rule_finds_paths():
    text = ("see docs/design.md, operator_cxx/flow_warp.cu and README.md; not output/x.md, "
            "lib/accel/<name>.py, external/mxnet/NAME/x.py, experiments/.../*_test.py, "
            "experiments/x/cfgs/a.yaml, https://x.org/docs/a.md or lib/accel")
    assert list(cited_paths(text)) == ["docs/design.md", "operator_cxx/flow_warp.cu", "README.md"]
    assert list(section_problems('(docs/design.md, "Inference"; README.md, section \'Nope\')')) \
        == ["README.md, \"Nope\": no such heading"]


@pytest.mark.parametrize("doc", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_markdown_links_and_anchors_resolve(doc):
    problems = [f"{doc.relative_to(REPO)}:{number}: ({target}) {why}"
                for number, target in links(doc) for why in [link_problem(doc, target)] if why]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_markdown_cites_existing_files(doc):
    text = doc.read_text(encoding="utf-8")
    missing = sorted({path for path in cited_paths(text) if not path_exists(path)})
    assert not missing, f"{doc.relative_to(REPO)} cites files that do not exist: {missing}"


def test_sources_cite_existing_files():
    """Every file a comment or docstring of lib/, deeplab/, dff_deeplab/, experiments/ or
    tests/ names exists (the design document, for one, is in the repository's docs/), and
    every section it names is a heading of that file."""
    missing = [f"{path.relative_to(REPO)}:{line}: {problem}"
               for path in source_files()
               for line, text in comments(path)
               for problem in [f"{c} does not exist" for c in cited_paths(text)
                               if not path_exists(c)] + list(section_problems(text))]
    assert not missing, "citations that do not resolve:\n" + "\n".join(missing)
