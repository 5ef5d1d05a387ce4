"""WhatsApp formatter: the Go compatibility corpus (reference §5.7), deviations, and properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.formatter import WHATSAPP_MESSAGE_LIMIT, split_for_whatsapp, to_whatsapp

# Rows of §5.7 where our output equals the Go formatter's output.
GO_CORPUS = [
    ("**Bold text** and **another bold**", "*Bold text* and *another bold*"),
    ("__Bold text__", "*Bold text*"),
    ("*Italic text* and *another italic*", "_Italic text_ and _another italic_"),
    ("~~strikethrough text~~", "~strikethrough text~"),
    ("***Disque Denúncia:***", "_*Disque Denúncia:*_"),
    ("**bold *and italic* together**", "*bold _and italic_ together*"),
    ("**bold***italic*", "*bold*_italic_"),
    ("# Header 1\n## Header 2\n### Header 3", "*Header 1*\n\n*Header 2*\n\n*Header 3*"),
    ("# Título #", "*Título*"),
    ("Visit [Google](https://google.com) for search", "Visit https://google.com for search"),
    ("![Alt text](image.png)", "[Image: Alt text]"),
    ("`inline code` and *x*", "`inline code` and _x_"),
    ("```\ncode **block**\n```", "```\ncode **block**\n```"),
    (
        "List:\n* **Bold item**\n* *Italic item*\n* `Code item`",
        "List:\n* *Bold item*\n* _Italic item_\n* `Code item`",
    ),
    (
        "*   **`calculator_add`**: Soma dois números.",
        "* *`calculator_add`*: Soma dois números.",
    ),
    ("- item a\n+ item c\n1. first", "- item a\n+ item c\n1. first"),
    (
        "- [x] Review the report.\n- [ ] Prepare feedback.",
        "- Review the report.\n- Prepare feedback.",
    ),
    ("Text\n\n---\n\nMore", "Text\n\nMore"),
    (
        "| Month | Revenue |\n|---|---|\n| Jan | 10,000 |\n| February | 12 |",
        "```Month    | Revenue\nJan      | 10,000\nFebruary | 12```",
    ),
    (
        "The main conclusion[^1] is growth.\n[^1]: Based on Q1 2024 data.",
        "The main conclusion[1] is growth.\n\n---\n_Notas:_\n[1] Based on Q1 2024 data.",
    ),
    ("x [^nope] y", "x  y"),
    ("snake_case_name", "snake_case_name"),
    ("https://x.com/a_b_c", "https://x.com/a_b_c"),
    ("> Quote here", "> Quote here"),
    ("Line one\n\n\n\nLine two   \nLine three\t", "Line one\n\nLine two\nLine three"),
]

# Rows of §5.7 where Go has a known bug: the expected value is our (better) output.
GO_BUGS_FIXED = [
    pytest.param(
        "# Header with **bold** and *italic*",
        "*Header with bold and _italic_*",
        id="header-bold-not-nested: Go's '*Header with *bold* ...*' ends the bold early",
    ),
    pytest.param(
        "Para\n\n# Header\nText",
        "Para\n\n*Header*\n\nText",
        id="header-keeps-blank-line-before: Go's regex swallows it",
    ),
    pytest.param(
        'Código: ```{"a": "b"}```',
        'Código: ```{"a": "b"}```',
        id="quotes-kept-in-code: Go turns every double quote into a single one",
    ),
    pytest.param(
        'Ele disse "olá" e saiu',
        'Ele disse "olá" e saiu',
        id="quotes-kept-in-text: Go turns every double quote into a single one",
    ),
    pytest.param(
        "Abre {r'\\\"Samba & Feijoada\\\"'} às 13h",
        'Abre "Samba & Feijoada" às 13h',
        id="repr-artefact-unwrapped-keeping-double-quotes",
    ),
    pytest.param(
        "2 * 3 * 4 = 24",
        "2 * 3 * 4 = 24",
        id="spaced-asterisks-are-not-emphasis: Go gives '2 _ 3 _ 4 = 24'",
    ),
    # CommonMark reads x*y*z as x<em>y</em>z (intraword * may emphasise), so a real parser
    # gives Go's 'x_y_z'. WhatsApp never styles inside a word, so that would only swap the
    # author's characters: intraword emphasis keeps its original markers.
    pytest.param(
        "x*y*z and a*b",
        "x*y*z and a*b",
        id="intraword-emphasis-kept: WhatsApp cannot style inside a word",
    ),
]


@pytest.mark.parametrize(("markdown", "expected"), GO_CORPUS)
def test_go_corpus(markdown: str, expected: str) -> None:
    assert to_whatsapp(markdown) == expected


@pytest.mark.parametrize(("markdown", "expected"), GO_BUGS_FIXED)
def test_go_corpus_known_bugs_fixed(markdown: str, expected: str) -> None:
    assert to_whatsapp(markdown) == expected


def test_long_text_is_not_truncated() -> None:
    # Go cuts at 4096 bytes (possibly inside a UTF-8 character) and appends an English note;
    # here the text stays whole and split_for_whatsapp makes the parts.
    text = "a" * 5000
    assert to_whatsapp(text) == text
    assert split_for_whatsapp(to_whatsapp(text)) == ["a" * 4096, "a" * 904]


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("```python\nx = 1\n```", "```\nx = 1\n```"),
        ("~~~\nx = 1\n~~~", "```\nx = 1\n```"),
        ("[x](https://pt.wikipedia.org/wiki/São_Paulo)", "https://pt.wikipedia.org/wiki/São_Paulo"),
        ("<https://example.com/a_b>", "https://example.com/a_b"),
        ("1. a\n\n2. b\n\nafter", "1. a\n\n2. b\n\nafter"),
        ("- x\n  - y", "- x\n  - y"),
        ("> q\n>\n> r", "> q\n>\n> r"),
        ("| a | b |\n|---|---|\n| **x** | `y` |", "```a | b\nx | y```"),
        ("| é | b |\n|---|---|\n| ação | c |", "```é    | b\nação | c```"),
        (
            "a[^2] b[^1]\n\n[^1]: one\n[^2]: **two**",
            "a[1] b[2]\n\n---\n_Notas:_\n[1] *two*\n[2] one",
        ),
        ("line one\n   indented", "line one\n   indented"),
        ("foo**bar**baz", "foo**bar**baz"),
        ("", ""),
    ],
)
def test_other_constructs(markdown: str, expected: str) -> None:
    assert to_whatsapp(markdown) == expected


def test_formatting_twice_changes_emphasis() -> None:
    # Documented: WhatsApp's *bold* is Markdown's italic, so the formatter must run once.
    once = to_whatsapp("**x**")
    assert once == "*x*"
    assert to_whatsapp(once) == "_x_"


# ---- split_for_whatsapp ----


def test_split_short_and_empty() -> None:
    assert split_for_whatsapp("") == []
    assert split_for_whatsapp("hello") == ["hello"]
    assert WHATSAPP_MESSAGE_LIMIT == 4096
    assert split_for_whatsapp("é" * 4096) == ["é" * 4096]  # characters, not bytes


def test_split_prefers_paragraph_then_line_then_sentence() -> None:
    assert split_for_whatsapp("First one. More\n\nSecond para", 20) == [
        "First one. More",
        "Second para",
    ]
    assert split_for_whatsapp("First one. More\nSecond line", 20) == [
        "First one. More",
        "Second line",
    ]
    assert split_for_whatsapp("One sentence. Two sentence. Three", 20) == [
        "One sentence.",
        "Two sentence. Three",
    ]


def test_split_never_cuts_inside_a_word() -> None:
    assert split_for_whatsapp("alpha beta gamma delta", 16) == ["alpha beta gamma", "delta"]
    assert split_for_whatsapp("x" * 40, 16) == ["x" * 16, "x" * 16, "x" * 8]


def test_split_keeps_code_block_whole_when_possible() -> None:
    code = "```\nline 1\nline 2\n```"
    text = "some words here " + code
    assert split_for_whatsapp(text, 30) == ["some words here", code]


def test_split_reopens_fence_in_long_code_block() -> None:
    lines = "\n".join(f"line {i}" for i in range(10))
    parts = split_for_whatsapp(f"intro\n```\n{lines}\n```\nafter", 30)
    assert parts[0] == "intro"
    assert all(len(part) <= 30 and part.count("```") == 2 for part in parts[1:])
    assert parts[-1].endswith("```\nafter")


def test_split_rejects_tiny_limit() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        split_for_whatsapp("abc", 3)


# ---- properties ----

_PROSE = st.text(alphabet=st.sampled_from(list("abcdeéã XYZ019.,!?\n\t")), min_size=0, max_size=400)
_CODE = st.builds(lambda body: f"```\n{body}\n```", st.text(alphabet="abc \n", max_size=120))
_FORMATTED = st.lists(st.one_of(_PROSE, _CODE), max_size=6).map("\n\n".join)


def _squash(text: str) -> str:
    return "".join(text.split())


@settings(max_examples=300)
@given(text=st.one_of(st.text(max_size=400), _PROSE), limit=st.integers(16, 120))
def test_split_parts_fit_and_lose_only_whitespace(text: str, limit: int) -> None:
    parts = split_for_whatsapp(text, limit)
    assert all(0 < len(part) <= limit for part in parts)
    if "```" not in text:
        assert _squash("".join(parts)) == _squash(text)


@settings(max_examples=300)
@given(text=_FORMATTED, limit=st.integers(16, 120))
def test_split_with_code_adds_only_fences(text: str, limit: int) -> None:
    parts = split_for_whatsapp(text, limit)
    assert all(len(part) <= limit for part in parts)
    assert _squash("".join(parts)).replace("```", "") == _squash(text).replace("```", "")
    assert all(part.count("```") % 2 == 0 for part in parts)


@settings(max_examples=300)
@given(text=st.text(max_size=300))
def test_to_whatsapp_never_raises(text: str) -> None:
    assert isinstance(to_whatsapp(text), str)


# Letters, digits, spaces, line breaks and punctuation that Markdown gives no meaning to; a
# line opening with "1." is an ordered list (its marker spacing is normalised), so it is left out.
_PLAIN = st.text(alphabet=st.sampled_from(list("abcxyzÁçõ019 \n\t,.;:?!'\"()/%@$")), max_size=300).filter(
    lambda text: re.search(r"(?m)^[ \t]*\d+[.)]", text) is None
)


def _clean(text: str) -> str:
    text = re.sub(r"[ \t]+$", "", text, flags=re.MULTILINE)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


@settings(max_examples=300)
@given(text=_PLAIN)
def test_plain_text_only_gets_whitespace_cleanup(text: str) -> None:
    assert to_whatsapp(text) == _clean(text)
