"""Agent Markdown -> WhatsApp text, and splitting long replies into WhatsApp-sized parts.

:func:`to_whatsapp` parses the agent's Markdown with markdown-it-py (CommonMark plus tables and
strikethrough, plus small footnote rules of our own) and renders WhatsApp syntax from the syntax
tree: ``*bold*``, ``_italic_``, ``~strike~``, backtick code kept as written, headers as a bold line,
tables as a monospace block, links as their URL, footnotes as ``[n]`` with a ``_Notas:_`` section.

Apply it exactly once. It is *not* idempotent on Markdown emphasis: WhatsApp's ``*bold*`` is
Markdown's italic, so a second pass turns ``*x*`` into ``_x_``. It is idempotent on text without
Markdown: such text only gets the whitespace cleanup (at most one blank line in a row, no trailing
spaces on lines, no leading/trailing blank space overall). It never raises and never truncates:
long results go through :func:`split_for_whatsapp`.

Where it differs from the Go formatter on purpose: double quotes are kept (Go turns them into
single quotes, even in code); ``{r'\"X\"'}`` repr leaks become ``"X"``; ``2 * 3`` and intraword
``x*y*z`` stay as written (WhatsApp cannot style inside a word); bold inside a header is not nested;
a blank line before a header is kept; table cells are padded by characters, empty cells are kept
and styling markers are dropped inside the monospace table; code content, including its
whitespace, is never touched (Go's cleanup ran over it); nothing is truncated.

:func:`split_for_whatsapp` cuts an already formatted text into parts of at most ``limit``
characters, at the best boundary available: paragraph, then line, then sentence, then word, never
inside a ````` ``` ````` block when that can be avoided.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline
from markdown_it.tree import SyntaxTreeNode

__all__ = ["WHATSAPP_MESSAGE_LIMIT", "split_for_whatsapp", "to_whatsapp"]

WHATSAPP_MESSAGE_LIMIT = 4096
"""Longest WhatsApp text message, in characters."""

# A part must hold a reopened fence, one character of code and the closing fence.
_MIN_LIMIT = 16

_FENCE = "```"
_STYLE_MARKERS = {"strong": "*", "em": "_", "s": "~"}
# Blocks that WhatsApp shows better with a blank line around them, whatever the source had.
_SPACED_BLOCKS = frozenset({"heading", "table", "hr"})

_FOOTNOTE_DEF = re.compile(r"\[\^([^\]\s]+)\]:[ \t]*")
_FOOTNOTE_REF = re.compile(r"\[\^([^\]\s]+)\]")
_TASK_BOX = re.compile(r"\[[ xX]\](?:[ \t]+|$)")
# A Python repr leaking from the agent's tools, e.g. {r'\"Samba\"'}; the parser already removed
# the backslashes, so only the wrapper is left to drop.
_REPR_ARTEFACT = re.compile(r"\{r'\"(.*?)\"'\}")
_QUOTE_MARKERS = re.compile(r"^[ \t>]*")
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)


# --------------------------------------------------------------------------------------------
# Parser: CommonMark + tables + strikethrough + footnotes, continuation indentation kept.
# --------------------------------------------------------------------------------------------


def _footnote_def_rule(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """``[^label]: text`` (plus lines indented under it) is stored in env, not rendered in place."""
    if state.sCount[start] - state.blkIndent >= 4:
        return False
    pos = state.bMarks[start] + state.tShift[start]
    match = _FOOTNOTE_DEF.match(state.src, pos, state.eMarks[start])
    if match is None:
        return False
    if silent:
        return True
    lines = [state.src[match.end() : state.eMarks[start]]]
    line = start + 1
    while line < end and not state.isEmpty(line) and state.sCount[line] - state.blkIndent >= 4:
        lines.append(state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]])
        line += 1
    state.env.setdefault("footnotes", {}).setdefault(match.group(1), "\n".join(lines).strip())
    state.line = line
    return True


def _footnote_ref_rule(state: StateInline, silent: bool) -> bool:
    """``[^label]`` becomes a numbered reference; an undefined one is dropped (as Go does)."""
    match = _FOOTNOTE_REF.match(state.src, state.pos, state.posMax)
    if match is None:
        return False
    label = match.group(1)
    if not silent and label in state.env.get("footnotes", {}):
        order: list[str] = state.env.setdefault("footnote_order", [])
        if label not in order:
            order.append(label)
        token = state.push("footnote_ref", "", 0)
        token.meta = {"number": order.index(label) + 1}
    state.pos = match.end()
    return True


def _newline_rule(state: StateInline, silent: bool) -> bool:
    """Like markdown-it's newline rule, but the next line keeps its indentation.

    CommonMark drops it; in a chat message the author's indentation is visible content.
    """
    if state.src[state.pos] != "\n":
        return False
    if not silent:
        stripped = state.pending.rstrip(" ")
        hard = len(state.pending) - len(stripped) >= 2
        state.pending = stripped
        state.push("hardbreak" if hard else "softbreak", "br", 0)
    state.pos += 1
    return True


def _build_parser() -> MarkdownIt:
    # html off: raw HTML from the agent is shown as text rather than dropped.
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    md.block.ruler.before(
        "reference", "footnote_def", _footnote_def_rule, {"alt": ["paragraph", "reference"]}
    )
    md.inline.ruler.before("link", "footnote_ref", _footnote_ref_rule)
    md.inline.ruler.at("newline", _newline_rule)
    return md


_PARSER = _build_parser()


# --------------------------------------------------------------------------------------------
# Renderer: syntax tree -> WhatsApp text.
# --------------------------------------------------------------------------------------------


@dataclass
class _Renderer:
    lines: Sequence[str]
    env: dict[str, Any]
    _styles: set[str] = field(default_factory=set)

    # ---- blocks ----

    def blocks(self, nodes: Sequence[SyntaxTreeNode]) -> str:
        out = ""
        previous: SyntaxTreeNode | None = None
        force_blank = False
        for node in nodes:
            if node.type == "hr":
                force_blank = True
                continue
            text = self.block(node)
            if not text:
                continue
            if out:
                blank = force_blank or self._wants_blank(previous, node)
                out += "\n\n" if blank else "\n"
            out += text
            previous, force_blank = node, False
        return out

    def _wants_blank(self, previous: SyntaxTreeNode | None, node: SyntaxTreeNode) -> bool:
        """Keep the author's blank lines between blocks (spaced block types always get one)."""
        if previous is None or {previous.type, node.type} & _SPACED_BLOCKS:
            return True
        line = node.map[0] - 1 if node.map else -1
        if not 0 <= line < len(self.lines):
            return True
        return _QUOTE_MARKERS.sub("", self.lines[line]).strip() == ""

    def block(self, node: SyntaxTreeNode) -> str:
        handler = self._BLOCKS.get(node.type)
        if handler is None:  # unknown container: keep its content
            return self.blocks(node.children)
        return handler(self, node)

    def paragraph(self, node: SyntaxTreeNode) -> str:
        text = self.inline(node.children[0]) if node.children else ""
        return self._indent_of(node) + _strip_line_ends(text)

    def _indent_of(self, node: SyntaxTreeNode) -> str:
        """The parser trims a paragraph's first line; restore it at top level, where it shows."""
        if node.map is None or node.parent is None or not node.parent.is_root:
            return ""
        match = re.match(r"[ \t]*", self.lines[node.map[0]])
        return match.group(0) if match else ""

    def heading(self, node: SyntaxTreeNode) -> str:
        # The whole line is bold already: nested bold markers would end it early in WhatsApp.
        self._styles.add("strong")
        try:
            text = self.inline(node.children[0]) if node.children else ""
        finally:
            self._styles.discard("strong")
        text = _strip_line_ends(text)
        return f"*{text}*" if text else ""

    def fence(self, node: SyntaxTreeNode) -> str:
        # The language label is dropped: WhatsApp would show it as the first line of code.
        content = node.content if node.content.endswith("\n") else node.content + "\n"
        return f"{_FENCE}\n{content}{_FENCE}" if node.content else f"{_FENCE}\n{_FENCE}"

    def code_block(self, node: SyntaxTreeNode) -> str:
        # Indented text is kept exactly as written: it is rarely meant as code in a chat reply.
        if node.map is not None and node.parent is not None and node.parent.is_root:
            return _strip_line_ends("\n".join(self.lines[node.map[0] : node.map[1]])).rstrip("\n")
        return "\n".join("    " + line for line in node.content.rstrip("\n").split("\n"))

    def blockquote(self, node: SyntaxTreeNode) -> str:
        inner = self.blocks(node.children)
        return "\n".join(f"> {line}" if line else ">" for line in inner.split("\n"))

    def bullet_list(self, node: SyntaxTreeNode) -> str:
        return self.blocks(node.children)

    def list_item(self, node: SyntaxTreeNode) -> str:
        marker = f"{node.info}{node.markup} " if node.info else f"{node.markup} "
        _strip_task_box(node)
        body = self.blocks(node.children)
        if not body:
            return marker.rstrip()
        pad = " " * len(marker)
        first, *rest = body.split("\n")
        return "\n".join([marker + first, *(pad + line if line else line for line in rest)])

    def table(self, node: SyntaxTreeNode) -> str:
        rows = [
            [self._plain(cell) for cell in row.children]
            for section in node.children
            for row in section.children
        ]
        if not rows:
            return ""
        widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(rows[0]))]
        body = "\n".join(_table_row(row, widths) for row in rows)
        return f"{_FENCE}{body}{_FENCE}"

    def _plain(self, cell: SyntaxTreeNode) -> str:
        """A table cell without styling: the table is monospace, where WhatsApp shows markers."""
        self._styles.update(("strong", "em", "s", "code"))
        try:
            return self.inline(cell.children[0]).strip() if cell.children else ""
        finally:
            self._styles.clear()

    _BLOCKS: ClassVar[dict[str, Callable[[_Renderer, SyntaxTreeNode], str]]] = {
        "paragraph": paragraph,
        "heading": heading,
        "fence": fence,
        "code_block": code_block,
        "blockquote": blockquote,
        "bullet_list": bullet_list,
        "ordered_list": bullet_list,
        "list_item": list_item,
        "table": table,
    }

    # ---- inline ----

    def inline(self, node: SyntaxTreeNode) -> str:
        out = ""
        children = node.children
        for index, child in enumerate(children):
            following = children[index + 1] if index + 1 < len(children) else None
            out += self.span(child, out[-1:], _first_char(following))
        return out

    def span(self, node: SyntaxTreeNode, before: str, after: str) -> str:
        kind = node.type
        if kind == "text":
            return _REPR_ARTEFACT.sub(r'"\1"', node.content)
        if kind in ("softbreak", "hardbreak"):
            return "\n"
        if kind == "code_inline":
            if "code" in self._styles:
                return node.content
            return f"{node.markup}{node.content}{node.markup}"
        if kind in _STYLE_MARKERS:
            return self._styled(node, before, after)
        if kind == "link":
            return self._link(node)
        if kind == "image":
            alt = node.content.strip()
            return f"[Image: {alt}]" if alt else "[Image]"
        if kind == "footnote_ref":
            return f"[{node.meta['number']}]"
        return self.inline(node) if node.children else node.content

    def _styled(self, node: SyntaxTreeNode, before: str, after: str) -> str:
        kind = node.type
        if kind in self._styles:  # already styled (e.g. bold inside a header): no new markers
            return self.inline(node)
        if before.isalnum() or after.isalnum():
            # Inside a word (x*y*z): WhatsApp would not style it, so keep the author's markers.
            return f"{node.markup}{self.inline(node)}{node.markup}"
        self._styles.add(kind)
        try:
            inner = self.inline(node)
        finally:
            self._styles.discard(kind)
        marker = _STYLE_MARKERS[kind]
        return f"{marker}{inner}{marker}"

    def _link(self, node: SyntaxTreeNode) -> str:
        text = self.inline(node)
        href = str(node.attrs.get("href", ""))
        if node.markup == "autolink" or not href:
            return text
        # Percent-encoded by the parser; show it as the author wrote it (e.g. "São_Paulo").
        return _PARSER.normalizeLinkText(href)

    def footnotes(self) -> str:
        order: list[str] = self.env.get("footnote_order", [])
        notes: list[str] = []
        index = 0
        while index < len(order):  # a note may cite a later one, which extends the order
            label = order[index]
            text = self.env["footnotes"][label]
            tree = SyntaxTreeNode(_PARSER.parseInline(text, self.env))
            notes.append(f"[{index + 1}] {_strip_line_ends(self.inline(tree.children[0]))}")
            index += 1
        return "\n".join(notes)


def _first_char(node: SyntaxTreeNode | None) -> str:
    if node is None or node.type != "text":
        return ""
    return node.content[:1]


def _strip_line_ends(text: str) -> str:
    return _TRAILING_SPACE.sub("", text)


def _strip_task_box(item: SyntaxTreeNode) -> None:
    """``- [x] task`` -> ``- task``: WhatsApp has no checkboxes."""
    if not item.children or item.children[0].type != "paragraph":
        return
    inline = item.children[0].children[0] if item.children[0].children else None
    first = inline.children[0] if inline is not None and inline.children else None
    if first is not None and first.token is not None and first.type == "text":
        first.token.content = _TASK_BOX.sub("", first.token.content, count=1)


def _table_row(cells: list[str], widths: list[int]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
    return " | ".join(padded).rstrip()


def to_whatsapp(markdown: str) -> str:
    """Convert agent Markdown to WhatsApp formatting. Apply once; see the module docstring."""
    env: dict[str, Any] = {}
    tokens = _PARSER.parse(markdown, env)
    renderer = _Renderer(lines=markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n"), env=env)
    body = renderer.blocks(SyntaxTreeNode(tokens).children).strip()
    notes = renderer.footnotes()
    if notes:
        body = f"{body}\n\n---\n_Notas:_\n{notes}"
    return body


# --------------------------------------------------------------------------------------------
# Splitter: formatted text -> parts of at most `limit` characters.
# --------------------------------------------------------------------------------------------

# Only ASCII whitespace is a cut point: a no-break space is there to keep words together.
_SPACE = " \t\n\r\f\v"
_SPACE_RUN = re.compile(r"[ \t\n\r\f\v]+")
_SENTENCE_END = re.compile(r"[.!?\u2026][\"')\]*_~\u201d\u2019]*$")
# Boundary kinds, best first.
_PARAGRAPH, _LINE, _SENTENCE, _WORD = range(4)


def split_for_whatsapp(text: str, limit: int = WHATSAPP_MESSAGE_LIMIT) -> list[str]:
    """Split formatted text into parts of at most ``limit`` characters (not bytes).

    Cuts at the last paragraph boundary that fits, else the last line break, else the last
    sentence end, else the last space; only whitespace at a cut is dropped. Code blocks are kept
    whole when possible; one longer than ``limit`` is cut at a line and its fence closed and
    reopened around the cut. Only a single word longer than ``limit`` is cut inside.

    :raises ValueError: ``limit`` is below 16, too small to hold a reopened code fence (a
        caller's bug, not a gateway failure).
    """
    if limit < _MIN_LIMIT:
        raise ValueError(f"limit must be at least {_MIN_LIMIT} characters, got {limit}")
    if not text:
        return []
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        head, rest = _cut(rest, limit)
        parts.append(head)
    if rest:
        parts.append(rest)
    return parts


def _cut(text: str, limit: int) -> tuple[str, str]:
    """One part from the front of ``text`` (longer than ``limit``), and what is left."""
    regions = _code_regions(text)
    at = _boundary(text, limit, regions)
    if at is not None:
        start, end = at
        return text[:start], text[end:]
    inside = next((r for r in regions if r[0] < limit < r[1]), None)
    if inside is not None:
        split = _cut_code(text, limit, inside)
        if split is not None:
            return split
        if inside[0] > 0:  # the fence opens too late to fit a piece of it: cut before it
            return text[: inside[0]], text[inside[0] :]
    return text[:limit], text[limit:]


def _code_regions(text: str) -> list[tuple[int, int]]:
    """Spans from an opening ``` to its closing ``` (inclusive); an unpaired fence is text."""
    fences = [m.start() for m in re.finditer(_FENCE, text)]
    return [(fences[i], fences[i + 1] + len(_FENCE)) for i in range(0, len(fences) - 1, 2)]


def _boundary(text: str, limit: int, regions: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The best whitespace run outside code whose cut leaves a non-empty head <= limit."""
    best: tuple[int, int, int] | None = None  # (kind, start, end)
    for match in _SPACE_RUN.finditer(text, 0, limit + 1):
        start, end = match.span()
        if start == 0 or any(a < start < b for a, b in regions):
            continue
        kind = _boundary_kind(text, start, match.group(0))
        if best is None or kind <= best[0]:
            best = (kind, start, end)
    if best is None:
        return None
    # The run may go on past the window; it is all whitespace, so drop all of it.
    whole = _SPACE_RUN.match(text, best[1])
    return best[1], whole.end() if whole else best[2]


def _boundary_kind(text: str, start: int, run: str) -> int:
    newlines = run.count("\n")
    if newlines >= 2:
        return _PARAGRAPH
    if newlines == 1:
        return _LINE
    if _SENTENCE_END.search(text, max(0, start - 8), start):
        return _SENTENCE
    return _WORD


def _cut_code(text: str, limit: int, region: tuple[int, int]) -> tuple[str, str] | None:
    """Cut inside a code block too long to move whole: close the fence, reopen it after."""
    first = region[0] + len(_FENCE) + 1  # at least one character of code in the head
    reopen = _FENCE + "\n"
    # Best: right after a line break, so the code lines stay whole.
    newline = text.rfind("\n", first, limit - len(_FENCE))
    if newline >= first:
        at = newline + 1
        return text[:at] + _FENCE, reopen + text[at:]
    # Else after a space, else anywhere; the closing fence then needs a line break of its own.
    room = limit - len(_FENCE) - 1
    if room < first:
        return None
    space = max(text.rfind(" ", first, room), text.rfind("\t", first, room))
    at = space + 1 if space >= first else room
    return text[:at] + "\n" + _FENCE, reopen + text[at:]
