"""Regenerate ``eval/pydocs/docs/*.md`` from the Python 3.11 HTML documentation.

A one-off conversion, kept so the corpus can be rebuilt and checked. It reads
the Library Reference pages that Debian's ``python3.11-doc`` package installs
(``apt-get install python3.11-doc``), keeps only each page's main body (no
navigation, sidebars or footers) and writes it as Markdown:

* headings as ATX ``#`` .. ``######``;
* code examples as fenced blocks, with the language Sphinx highlighted them in;
* an API entry's signature as a line of inline code, its description after it;
* links reduced to their text, permalink marks and images dropped.

Needs ``beautifulsoup4`` and ``markdownify`` (a dev-only tool, not a runtime
dependency)::

    pip install beautifulsoup4 markdownify
    python eval/tools/build_pydocs.py            # write the files
    python eval/tools/build_pydocs.py --check    # only report what would change

Pages are chosen by name in ``PAGES``; a page whose Markdown is larger than
``MAX_PAGE_BYTES`` is refused rather than truncated (pick another page).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from bs4 import BeautifulSoup, Tag
from markdownify import MarkdownConverter

DEFAULT_SOURCE = Path("/usr/share/doc/python3.11/html/library")
DEFAULT_TARGET = Path(__file__).resolve().parents[1] / "pydocs" / "docs"
MAX_PAGE_BYTES = 150_000
MAX_TOTAL_BYTES = 2_500_000

# Library Reference pages, by HTML file stem. Groups of similar-topic modules
# sit together on purpose: a question about one has to beat its neighbours.
PAGES: tuple[str, ...] = (
    # serialisation and persistence
    "json", "pickle", "marshal", "shelve", "dbm", "csv", "configparser", "tomllib",
    "plistlib", "sqlite3",
    # files, paths and the OS
    "os.path", "pathlib", "shutil", "glob", "fnmatch", "tempfile", "filecmp", "stat",
    "fileinput", "io",
    # concurrency
    "threading", "multiprocessing", "multiprocessing.shared_memory", "concurrent.futures",
    "queue", "sched", "contextvars", "asyncio-task", "asyncio-queue", "asyncio-sync",
    "asyncio-subprocess", "asyncio-stream", "asyncio-runner", "subprocess", "signal",
    "selectors",
    # dates and times
    "datetime", "time", "calendar", "zoneinfo", "timeit",
    # text
    "re", "string", "textwrap", "difflib", "unicodedata", "locale", "gettext",
    # logging and diagnostics
    "logging", "logging.config", "logging.handlers", "warnings", "traceback",
    "faulthandler", "tracemalloc", "pdb", "profile",
    # networking and the web
    "urllib.request", "urllib.parse", "urllib.error", "urllib.robotparser",
    "http.client", "http.cookies", "http.server", "socketserver", "ipaddress",
    "smtplib", "email.message", "mimetypes", "base64", "html", "html.parser",
    "webbrowser", "uuid",
    # data structures and functional tools
    "collections", "collections.abc", "heapq", "bisect", "array", "weakref",
    "copy", "pprint", "reprlib", "enum", "graphlib", "dataclasses", "functools",
    "itertools", "operator", "contextlib", "abc", "types",
    # numbers
    "decimal", "fractions", "math", "cmath", "random", "statistics", "numbers",
    # archives, compression and hashing
    "zipfile", "tarfile", "gzip", "bz2", "lzma", "zlib", "hashlib", "hmac",
    "secrets",
    # the interpreter and command lines
    "sys", "sysconfig", "site", "gc", "atexit", "platform", "importlib.metadata",
    "importlib.resources", "argparse", "getopt", "shlex", "getpass",
)  # fmt: skip

_LANGUAGES = {"python3": "python", "default": "python", "pycon": "pycon",
              "shell-session": "console", "none": "text"}  # fmt: skip


class _Converter(MarkdownConverter):  # type: ignore[misc]
    def convert_pre(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        language = el.get("data-language", "")
        code = el.get_text().rstrip("\n")
        fence = "````" if "```" in code else "```"
        return f"\n\n{fence}{language}\n{code}\n{fence}\n\n"


def _language(block: Tag) -> str:
    for name in block.get("class", []):
        if name.startswith("highlight-"):
            language = name.removeprefix("highlight-")
            return _LANGUAGES.get(language, language)
    return ""


def _flatten(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _replace_with_paragraph(soup: BeautifulSoup, old: Tag, inner: Tag | str) -> None:
    paragraph = soup.new_tag("p")
    paragraph.append(inner)
    old.replace_with(paragraph)


def _clean(soup: BeautifulSoup, body: Tag) -> None:
    for junk in body.select(
        "a.headerlink, nav.contents, div.toctree-wrapper, img, span.target, "
        "div.version_switcher_placeholder, div.language_switcher_placeholder"
    ):
        junk.decompose()
    # Code examples: one <pre> per highlighted block, tagged with its language.
    for block in body.select("div[class*='highlight-']"):
        pre = block.find("pre")
        if pre is None:
            block.decompose()
            continue
        fresh = soup.new_tag("pre")
        fresh["data-language"] = _language(block)
        fresh.string = pre.get_text()
        block.replace_with(fresh)
    # Admonition titles ("Note", "See also", "Warning") read as a bold lead-in.
    for title in body.select("p.admonition-title"):
        strong = soup.new_tag("strong")
        strong.string = _flatten(title.get_text())
        title.clear()
        title.append(strong)
    # Definition lists: API entries become a line of inline code (the
    # signature) followed by their description; other terms become bold.
    for dl in body.find_all("dl"):
        classes = dl.get("class", [])
        api = "py" in classes or "std" in classes or "describe" in classes
        for dt in dl.find_all("dt", recursive=False):
            signature = _flatten(dt.get_text())
            if not signature:
                dt.decompose()
                continue
            inner = soup.new_tag("code" if api else "strong")
            inner.string = signature
            _replace_with_paragraph(soup, dt, inner)
        for dd in dl.find_all("dd", recursive=False):
            dd.unwrap()
        dl.unwrap()
    for aside in body.select("aside.footnote-list, aside.footnote"):
        aside.unwrap()
    # A paragraph is one line: the HTML's own line breaks are not the text's.
    for string in body.find_all(string=True):
        if string.find_parent("pre") is None and "\n" in string:
            string.replace_with(re.sub(r"\s+", " ", str(string)))


def convert(html: str) -> str:
    soup = BeautifulSoup(html, "html.parser")
    body = soup.select_one("div.body[role=main]") or soup.select_one("div.body")
    if body is None:
        raise ValueError("no div.body in the page")
    _clean(soup, body)
    markdown = _Converter(
        heading_style="ATX",
        bullets="-",
        strip=["a"],
        escape_asterisks=False,
        escape_underscores=False,
        escape_misc=False,
        wrap=False,
    ).convert_soup(body)
    lines = [line.rstrip() for line in markdown.splitlines()]
    text = "\n".join(lines).strip()
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.replace("\u00b6", "") + "\n"


def build(source: Path, target: Path, *, check: bool) -> int:
    outputs: dict[str, str] = {}
    problems: list[str] = []
    for stem in PAGES:
        page = source / f"{stem}.html"
        if not page.is_file():
            problems.append(f"{page}: missing (is python3.11-doc installed?)")
            continue
        text = convert(page.read_text(encoding="utf-8"))
        size = len(text.encode())
        if size > MAX_PAGE_BYTES:
            problems.append(f"{stem}: {size} bytes of Markdown, over {MAX_PAGE_BYTES}")
        outputs[f"{stem}.md"] = text
    total = sum(len(t.encode()) for t in outputs.values())
    if total > MAX_TOTAL_BYTES:
        problems.append(f"corpus is {total} bytes, over {MAX_TOTAL_BYTES}")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    changed = [
        name
        for name, text in outputs.items()
        if not (target / name).is_file() or (target / name).read_text(encoding="utf-8") != text
    ]
    stale = sorted(p.name for p in target.glob("*.md") if p.name not in outputs)
    if check:
        for name in changed:
            print(f"would rewrite {name}")
        for name in stale:
            print(f"would remove {name}")
        return 1 if changed or stale else 0
    target.mkdir(parents=True, exist_ok=True)
    for name in changed:
        (target / name).write_text(outputs[name], encoding="utf-8")
    for name in stale:
        (target / name).unlink()
    print(
        f"{len(outputs)} pages, {total / 1e6:.2f} MB; {len(changed)} written, {len(stale)} removed"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="library/ HTML folder")
    parser.add_argument("--target", type=Path, default=DEFAULT_TARGET, help="Markdown folder")
    parser.add_argument("--check", action="store_true", help="report differences, write nothing")
    args = parser.parse_args()
    return build(args.source, args.target, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
