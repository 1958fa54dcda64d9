"""The README is a short front page, and every relative link in it and in docs/ leads somewhere:
the file exists and a #anchor names one of its headings, by GitHub's rules."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
INDENTED_CODE = re.compile(r"^(?: {4}|\t).*$", re.M)  # 4-space code blocks (none sits inside a list here)
CODE_SPAN = re.compile(r"(`+).*?\1", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def prose(text):
    """The text with code blocks and code spans removed: a link there is not a link."""
    return CODE_SPAN.sub("", INDENTED_CODE.sub("", FENCE.sub("", text)))


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation other than - and _ removed,
    spaces to -. (Markup such as `code` or *emphasis* is dropped with the punctuation.)"""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path):
    """Every anchor a Markdown file's headings give; repeated headings get -1, -2, ..."""
    seen, found = {}, set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def relative_links(path):
    """(target, anchor) of each link in ``path`` that leads within the repository."""
    for target in LINK.findall(prose(path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
            continue
        file, _, anchor = target.partition("#")
        yield file, anchor


def broken_links(path):
    """What is wrong with each relative link of ``path``, one line each."""
    problems = []
    for file, anchor in relative_links(path):
        target = (path.parent / file).resolve() if file else path
        if not target.exists():
            problems.append(f"{path.name}: {file} does not exist")
        elif anchor and (target.suffix != ".md" or anchor not in anchors(target)):
            problems.append(f"{path.name}: {file or path.name}#{anchor} names no heading there")
    return problems


def test_the_readme_is_a_front_page_of_at_most_300_lines():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 300, f"README.md has {lines} lines; move detail to docs/"


def test_the_docs_pages_exist_and_the_front_page_links_each():
    assert len(PAGES) > 1
    linked = {(ROOT / file).resolve() for file, _ in relative_links(ROOT / "README.md")}
    assert [p.name for p in PAGES[1:] if p.resolve() not in linked] == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    assert list(relative_links(page)), f"{page.name} links nowhere"
    assert broken_links(page) == []


def test_slugs_follow_githubs_rules():
    assert slug("Evaluate: LSE-D, LSE-C and FID") == "evaluate-lse-d-lse-c-and-fid"
    assert slug("Colour (`media/yuv.py`)") == "colour-mediayuvpy"
    assert slug("The reference's JPEG frames") == "the-references-jpeg-frames"
    assert slug("1. Preprocess") == "1-preprocess"
    assert slug("keep_last and run_id") == "keep_last-and-run_id"


def test_a_broken_link_or_anchor_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A section\n\n## A section\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[fine](other.md) [fine](other.md#a-section) [repeated](other.md#a-section-1) [here](#page)\n"
        "[web](https://example.com/x.md) `[code](nowhere.md)`\n\n"
        "    [indented code](nowhere.md)\n\n"
        "[gone](missing.md) [no heading](other.md#no-such-section) [not here](#other-page)\n"
        "![image](pictures/missing.png)\n"
    )
    assert broken_links(page) == [
        "page.md: missing.md does not exist",
        "page.md: other.md#no-such-section names no heading there",
        "page.md: page.md#other-page names no heading there",
        "page.md: pictures/missing.png does not exist",
    ]
