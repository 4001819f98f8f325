"""pipeline/streams/docs/corpus.py: WordNet data lines and roff man pages, from tmp fixtures."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import pytest

from pipeline.errors import InferstreamError
from pipeline.streams.docs import corpus
from pipeline.streams.docs.corpus import (
    CorpusError,
    Gloss,
    ensure_corpus,
    man_page_texts,
    roff_to_text,
    wordnet_glosses,
)

LICENSE = "  1 This software and database is being provided to you, the LICENSEE, by  \n"
NOUNS = (
    LICENSE
    + "  2 Princeton University under the following license.  \n"
    "02084071 05 n 02 dog 0 domestic_dog 0 001 @ 02083346 n 0000 | a member of the genus "
    'Canis; "the dog barked all night"  \n'
    "07555863 13 n 01 food 0 002 @ 00021265 n 0000 | any solid substance that is used as a "
    "source of nourishment  \n"
)
VERBS = LICENSE + "01835496 38 v 01 travel 0 000 01 + 01 00 | change location; move  \n"
ADJS = (
    LICENSE
    + "00001740 00 a 01 able 0 000 | (usually followed by `to') having the necessary means  \n"
    "00002098 00 s 01 unable 0 000 | not having the necessary means  \n"
)
ADVS = LICENSE + "00001740 02 r 01 very 0 000 | to a high degree  \n"


def _wordnet(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for pos, text in {"noun": NOUNS, "verb": VERBS, "adj": ADJS, "adv": ADVS}.items():
        (root / f"data.{pos}").write_text(text)
    return root


def test_glosses_are_parsed_with_ids_and_lexnames_in_file_order(tmp_path: Path) -> None:
    glosses = wordnet_glosses(_wordnet(tmp_path / "wordnet"))
    assert glosses == [
        Gloss("n02084071", 'a member of the genus Canis; "the dog barked all night"',
              "noun.animal"),
        Gloss("n07555863", "any solid substance that is used as a source of nourishment",
              "noun.food"),
        Gloss("v01835496", "change location; move", "verb.motion"),
        Gloss("a00001740", "(usually followed by `to') having the necessary means", "adj.all"),
        Gloss("s00002098", "not having the necessary means", "adj.all"),
        Gloss("r00001740", "to a high degree", "adv.all"),
    ]


def test_a_bad_synset_line_or_lex_filenum_is_a_corpus_error(tmp_path: Path) -> None:
    root = _wordnet(tmp_path / "wordnet")
    (root / "data.verb").write_text("01835496 99 v 01 travel 0 000 | change location  \n")
    with pytest.raises(CorpusError, match="lex_filenum '99'"):
        wordnet_glosses(root)
    (root / "data.verb").write_text("01835496 38 v 01 travel 0 000 no gloss here\n")
    with pytest.raises(CorpusError, match="not a WordNet synset line"):
        wordnet_glosses(root)


def test_a_missing_data_file_is_a_one_line_error_saying_what_to_install(tmp_path: Path) -> None:
    root = _wordnet(tmp_path / "wordnet")
    (root / "data.adv").unlink()
    with pytest.raises(CorpusError) as info:
        wordnet_glosses(root)
    message = str(info.value)
    assert "data.adv" in message and "wordnet-base" in message and "\n" not in message
    assert isinstance(info.value, InferstreamError) and info.value.exit_code == 2


ROFF = r""".\" Automatically generated; a comment
.TH CAT 1 "2024" "GNU coreutils" "User Commands"
.SH NAME
cat \- concatenate files and print on the standard output
.SH SYNOPSIS
.B cat
[\fIOPTION\fR]... [\fI\,FILE\/\fR]...
'br
\&\fB\s-1CA\s0.pl\fR \(em a size change \" trailing comment
Use \fB\-\-help\fP or \f(CWcat \e\fP\*(R" for \(lqmore\(rq.
\{\
.IP
"""


def test_roff_requests_comments_and_escapes_are_removed_readably() -> None:
    assert roff_to_text(ROFF).splitlines() == [
        "cat - concatenate files and print on the standard output",
        "[OPTION]... [FILE]...",
        "CA.pl - a size change",
        'Use --help or cat \\ for "more".',
    ]


def _page(root: Path, section: str, name: str, roff: str) -> None:
    (root / f"man{section}").mkdir(parents=True, exist_ok=True)
    with gzip.open(root / f"man{section}" / f"{name}.gz", "wt") as f:
        f.write(roff)


def test_man_pages_are_read_in_order_skipping_includes_and_short_pages(tmp_path: Path) -> None:
    body = ".SH DESCRIPTION\n" + "\\fBword\\fR and more words here.\n" * 20
    _page(tmp_path, "1", "zeta.1", body)
    _page(tmp_path, "1", "alpha.1", body)
    _page(tmp_path, "1", "link.1", ".so man1/alpha.1\n")
    _page(tmp_path, "5", "conf.5", body)
    (tmp_path / "man1" / "broken.1.gz").write_bytes(b"not gzip")
    pages = man_page_texts(limit=10, root=tmp_path, sections=("1", "5"), min_chars=100)
    assert [page_id for page_id, _ in pages] == ["1/alpha.1", "1/zeta.1", "5/conf.5"]
    assert pages[0][1].splitlines()[0] == "word and more words here."
    assert [i for i, _ in man_page_texts(2, root=tmp_path, sections=("1", "5"))] == [
        "1/alpha.1", "1/zeta.1"]


def test_ensure_corpus_returns_an_installed_root_without_apt(tmp_path: Path, monkeypatch) -> None:
    root = _wordnet(tmp_path / "wordnet")
    monkeypatch.setattr(corpus, "apt_prefix", lambda: pytest.fail("apt consulted"))
    assert ensure_corpus(root) == root


def test_ensure_corpus_without_root_or_sudo_says_how_to_install(tmp_path: Path,
                                                                 monkeypatch) -> None:
    monkeypatch.setattr(corpus, "apt_prefix", lambda: None)
    with pytest.raises(CorpusError, match=r"sudo apt-get install wordnet-base"):
        ensure_corpus(tmp_path / "none")


def test_ensure_corpus_installs_and_reports_a_failed_install(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "wordnet"
    calls = []
    monkeypatch.setattr(corpus, "apt_prefix", lambda: [])

    def failing(prefix, package, log):
        calls.append(package)
        return subprocess.CompletedProcess([], 100, "", "E: Unable to locate package x\n")

    monkeypatch.setattr(corpus, "apt_install", failing)
    with pytest.raises(CorpusError) as info:
        ensure_corpus(root, log=lambda _: None)
    assert calls == ["wordnet-base"]
    assert "E: Unable to locate package x" in str(info.value) and "\n" not in str(info.value)

    def installing(prefix, package, log):
        _wordnet(root)
        return subprocess.CompletedProcess([], 0, "", "")

    monkeypatch.setattr(corpus, "apt_install", installing)
    assert ensure_corpus(root, log=lambda _: None) == root
