"""Text corpora for the docs stream, read from Debian packages: WordNet's glosses (labelled with
their lexicographer file, e.g. ``noun.animal``) and the plain text of installed man pages.

Pure functions over files; `ensure_corpus` is the only one with a side effect (apt-get).
"""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InferstreamError
from pipeline.stack.apt import apt_install, apt_prefix

WORDNET_ROOT = Path("/usr/share/wordnet")
WORDNET_PACKAGE = "wordnet-base"
MAN_ROOT = Path("/usr/share/man")
POS_FILES = ("noun", "verb", "adj", "adv")

# lexnames(5WN): the lex_filenum of a synset line indexes this list. wordnet-base does not ship
# the `lexnames` file itself, and the numbering is fixed since WordNet 1.5.
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
    "adj.ppl",
)  # fmt: skip


class CorpusError(InferstreamError):
    """A corpus that is missing or unreadable (and could not be installed)."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Gloss:
    """One WordNet synset's definition: `id` is its synset type letter and offset ("n08001234"),
    `label` its lexicographer file ("noun.animal")."""

    id: str
    text: str
    label: str


def parse_wordnet_data(lines: Iterable[str]) -> list[Gloss]:
    """The glosses of a WordNet data.* file's lines, in file order (by offset). License lines
    start with two spaces; a synset line is `offset lex_filenum ss_type ... | gloss`."""
    glosses = []
    for line in lines:
        if line.startswith("  ") or not line.strip():
            continue
        head, sep, gloss = line.partition(" | ")
        fields = head.split(" ", 3)
        if not sep or len(fields) < 3:
            raise CorpusError(f"not a WordNet synset line: {line[:60]!r}")
        offset, lex_filenum, ss_type = fields[:3]
        try:
            label = LEXNAMES[int(lex_filenum)]
        except (ValueError, IndexError):
            raise CorpusError(f"bad lex_filenum {lex_filenum!r} in synset {offset}") from None
        glosses.append(Gloss(id=f"{ss_type}{offset}", text=gloss.strip(), label=label))
    return glosses


def wordnet_glosses(root: Path = WORDNET_ROOT) -> list[Gloss]:
    """Every gloss of WordNet's data.{noun,verb,adj,adv} under root, in that file order."""
    glosses: list[Gloss] = []
    for pos in POS_FILES:
        path = root / f"data.{pos}"
        try:
            with path.open(encoding="utf-8", errors="replace") as f:
                glosses.extend(parse_wordnet_data(f))
        except OSError as exc:
            raise CorpusError(f"cannot read {path}: {exc.strerror} (apt-get install "
                              f"{WORDNET_PACKAGE})") from None
    return glosses


# \fB, \fI, \fR, \fP, \f(CW, \f[B]: font changes; \s-1, \s0: size changes; \(em-style
# named characters; \*x strings; \{ \}: conditional blocks.
_FONT = re.compile(r"\\f(\(..|\[[^]]*\]|.)|\\s[-+]?(\d+|\(\d\d|\[\d+\])|\\[{}]")
_NAMED = {"em": "-", "en": "-", "hy": "-", "bu": "*", "aq": "'", "dq": '"', "lq": '"',
          "rq": '"', "oq": "'", "cq": "'", "co": "(c)", "rg": "(R)", "ti": "~", "ha": "^",
          "mi": "-", "pl": "+", "<=": "<=", ">=": ">=", "->": "->", "<-": "<-"}
_NAMED_RE = re.compile(r"\\\((..)|\\\[([^]]*)\]")
_STRING = re.compile(r"\\\*(\(..|\[[^]]*\]|.)")
_ESCAPE = re.compile(r"\\(.)")
_SPACES = re.compile(r"[ \t]+")


def _escaped(match: re.Match[str]) -> str:
    r"""A one-character escape's text: \e and \\ are a backslash, \- \. \' \<space> the
    character itself, anything else (\&, \c, \%, \|, ...) nothing."""
    char = match.group(1)
    return "\\" if char in "e\\" else char if char in "-. '" else ""


def roff_to_text(roff: str) -> str:
    """Readable plain text from roff source, crudely: request and comment lines (starting with
    '.' or "'") are dropped, font and character escapes removed or replaced."""
    out = []
    for line in roff.splitlines():
        if line.startswith((".", "'")):
            continue
        if line.startswith('\\"'):  # comment line without the leading '.'
            continue
        line = line.split('\\"', 1)[0]
        if line.endswith("\\") and not line.endswith("\\\\"):
            line = line[:-1]  # an escaped newline: the text goes on on the next line
        line = _FONT.sub("", line)
        line = _STRING.sub("", line)
        line = _NAMED_RE.sub(lambda m: _NAMED.get(m.group(1) or m.group(2), ""), line)
        line = _ESCAPE.sub(_escaped, line)
        line = _SPACES.sub(" ", line).strip()
        if line:
            out.append(line)
    return "\n".join(out)


def man_page_texts(
    limit: int, root: Path = MAN_ROOT, sections: Iterable[str] = ("1", "2", "3", "5", "8"),
    min_chars: int = 200,
) -> list[tuple[str, str]]:
    """Up to `limit` (id, plain text) pairs of gzipped man pages under root/man<section>/, in
    sorted path order; id is "<section>/<file name without .gz>". Pages that only `.so`-include
    another, or with fewer than min_chars of text, are skipped."""
    pages: list[tuple[str, str]] = []
    for section in sections:
        for path in sorted((root / f"man{section}").glob("*.gz")):
            if len(pages) >= limit:
                return pages
            try:
                with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
                    text = roff_to_text(f.read())
            except (OSError, EOFError):
                continue  # a truncated or non-gzip file: not worth failing a corpus over
            if len(text) >= min_chars:
                pages.append((f"{section}/{path.name.removesuffix('.gz')}", text))
    return pages


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_corpus(root: Path = WORDNET_ROOT, log: Callable[[str], None] = _stderr) -> Path:
    """root, once its WordNet data files exist: apt-installs wordnet-base when they are missing
    (as root or through passwordless sudo), else raises CorpusError saying how to install it."""
    def missing() -> list[str]:
        return [p for p in POS_FILES if not (root / f"data.{p}").is_file()]

    if not missing():
        return root
    prefix = apt_prefix()
    if prefix is None:
        raise CorpusError(f"WordNet is missing ({root}/data.*): run `sudo apt-get install "
                          f"{WORDNET_PACKAGE}` (no root, no passwordless sudo here)")
    result = apt_install(prefix, WORDNET_PACKAGE, log)
    still = missing()
    if still:
        last = (result.stderr or result.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise CorpusError(f"could not install {WORDNET_PACKAGE} ({root}/data.{still[0]} "
                          f"missing): apt-get: {last[0]}")
    return root


def wordnet_version(package: str = WORDNET_PACKAGE) -> str:
    """The installed Debian version of the WordNet package ("1:3.0-37"), or "unknown"."""
    try:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                                capture_output=True, text=True, check=False)
    except OSError:
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "unknown"
