"""Markdown from a model to safe HTML: tables, code highlighting, math, then nh3.

Everything a model writes goes through :func:`render`; nothing else puts model
text into a page. Raw HTML in the markdown is not interpreted (it shows as text),
and the result is sanitized by nh3 against an allow-list anyway, so a reply, a
code block or a link cannot run script. Math (``$...$``, ``$$...$$``, ``\\(...\\)``)
becomes MathML, which browsers draw natively. Rendering is cheap enough to
repeat on the whole accumulated text while a reply streams (see
``tests/webapp/chat/test_markdown.py`` for the figures).
"""

from __future__ import annotations

import html
from functools import lru_cache

import nh3
from latex2mathml.converter import convert as latex_to_mathml
from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.tasklists import tasklists_plugin
from mdit_py_plugins.texmath import texmath_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

MAX_HIGHLIGHT_CHARS = 100_000  # beyond this a code block is shown plain: highlighting is the slow part

MATHML_TAGS = {
    "math", "semantics", "annotation", "mrow", "mi", "mo", "mn", "ms", "mtext", "mspace", "msup", "msub",
    "msubsup", "mfrac", "msqrt", "mroot", "mstyle", "mtable", "mtr", "mtd", "munder", "mover",
    "munderover", "menclose", "mpadded", "mphantom", "merror", "mmultiscripts", "mprescripts", "none",
}
MATHML_ATTRIBUTES = {
    "display", "mathvariant", "stretchy", "fence", "separator", "lspace", "rspace", "columnalign",
    "rowalign", "columnspacing", "rowspacing", "accent", "accentunder", "movablelimits", "notation",
    "width", "height", "depth", "linethickness", "scriptlevel", "displaystyle", "symmetric", "largeop",
    "minsize", "maxsize", "form", "encoding",
}
HTML_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "s", "del", "ins",
    "code", "pre", "kbd", "sub", "sup", "blockquote", "ul", "ol", "li", "a", "img", "table", "thead",
    "tbody", "tr", "th", "td", "span", "div", "input", "section", "label", "dl", "dt", "dd",
}
ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title", "id"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "pre": {"class"},
    "span": {"class"},
    "div": {"class"},
    "th": {"style"},
    "td": {"style"},
    "ol": {"start"},
    "li": {"class", "id"},
    "ul": {"class"},
    "input": {"type", "checked", "disabled", "class"},
    "section": {"class"},
    "sup": {"class", "id"},
    "math": MATHML_ATTRIBUTES | {"xmlns"},
    **{tag: MATHML_ATTRIBUTES for tag in MATHML_TAGS - {"math"}},
}

_formatter = HtmlFormatter(nowrap=True)


def _highlight(code: str, lang: str, _attrs: str) -> str:
    lang = (lang or "").strip().split()[0].lower() if lang else ""
    label = f' class="language-{html.escape(lang)}"' if lang else ""
    body = html.escape(code)
    if lang and len(code) <= MAX_HIGHLIGHT_CHARS:
        try:
            body = highlight(code, get_lexer_by_name(lang), _formatter)
        except ClassNotFound:
            pass
    return f'<pre class="highlight"><code{label}>{body}</code></pre>\n'


def _math(display: str):
    def render(self, tokens, idx, options, env) -> str:
        source = tokens[idx].content
        try:
            mathml = latex_to_mathml(source, display=display)
        except Exception:  # latex2mathml raises many kinds on bad input: show the source instead
            return f'<code class="math-error">{html.escape(source)}</code>'
        return f'<div class="math">{mathml}</div>' if display == "block" else mathml
    return render


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # html=False: raw HTML in a reply is shown as text, never interpreted.
    md = (MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False,
                                    "highlight": _highlight, "breaks": True})
          .enable(["table", "strikethrough"])
          .use(dollarmath_plugin, allow_space=True, double_inline=True)
          .use(texmath_plugin, delimiters="brackets")
          .use(footnote_plugin)
          .use(tasklists_plugin))
    inline, block = _math("inline"), _math("block")
    for rule in ("math_inline", "math_inline_double", "math_single", "math_inline_bracket"):
        md.add_render_rule(rule, inline)
    for rule in ("math_block", "math_block_label", "math_block_eqno", "math_block_bracket"):
        md.add_render_rule(rule, block)
    return md


def sanitize(fragment: str) -> str:
    """Keep only the allow-listed tags, attributes and URL schemes."""
    return nh3.clean(fragment, tags=HTML_TAGS | MATHML_TAGS, attributes=ATTRIBUTES,
                     url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow",
                     strip_comments=True)


def render(text: str) -> str:
    """Markdown (possibly cut off mid-stream) to sanitized HTML."""
    if not text:
        return ""
    return sanitize(_parser().render(text))


def render_plain(text: str) -> str:
    """Text shown as typed (a user's own message): escaped, line breaks kept."""
    return html.escape(text).replace("\n", "<br>\n")


def _fence_opener(line: str) -> str | None:
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3:
        return None
    for mark in ("```", "~~~"):
        if stripped.startswith(mark):
            return mark[0] * (len(stripped) - len(stripped.lstrip(mark[0])))
    return None


def settled_end(text: str, start: int = 0) -> int:
    """How far (from ``start``, itself a block boundary) the text is made of finished blocks.

    A block is finished once a blank line outside any code fence or ``$$`` math
    block is followed by an unindented line: what follows cannot change it (near
    enough for a live preview; the finished reply is rendered whole).
    """
    end = start
    fence: str | None = None
    in_math = False
    after_blank = False
    pos = start
    for line in text[start:].splitlines(keepends=True):
        stripped = line.strip()
        if not line.endswith("\n"):
            # The last line is still being written; once it starts unindented after a
            # blank line, it begins a new block all the same.
            if fence is None and not in_math and after_blank and stripped and not line[0].isspace():
                end = pos
            break
        if fence is not None:
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                fence = None
        elif in_math:
            if stripped.endswith("$$") or stripped.endswith("\\]"):
                in_math = False
        elif stripped:
            if after_blank and not line[0].isspace():
                end = pos
            opener = _fence_opener(line)
            if opener:
                fence = opener
            elif stripped in ("$$", "\\[") or (stripped.startswith("$$") and not stripped[2:].rstrip().endswith("$$")):
                in_math = True
        after_blank = fence is None and not in_math and not stripped
        pos += len(line)
    return end


class LiveRender:
    """Renders a growing reply in pieces: each finished block once, the unfinished tail each time.

    Re-rendering the whole text on every tick costs O(length) and grows without
    bound on a long answer; this keeps each tick to the size of the last block.
    """

    def __init__(self) -> None:
        self.settled = 0

    def update(self, text: str) -> tuple[str, str]:
        """HTML of the blocks finished since the last call (to append), and of the tail (to replace)."""
        cut = settled_end(text, self.settled)
        finished = ""
        if cut > self.settled:
            finished = render(text[self.settled:cut])
            self.settled = cut
        return finished, render(text[self.settled:])
