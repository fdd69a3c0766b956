"""Building blocks of foley's HTML report pages: plain HTML with one inline style sheet.

No scripts, no fonts or styles from the network; pictures and audio are files named by relative
links, so a page opens from the file system and can be moved together with its run folder.
Table cells are made by the helpers below (`td`, `number_td`, `bar_td`, `heat_td`); text is escaped
here, never by the callers.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

SPECTROGRAM_SIZE = (200, 47)  # displayed width x height in pixels (the image is n_mels x frames, scaled)
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 24px 48px;color:#222;background:#fff}
nav{position:sticky;top:0;z-index:1;background:#f3f4f7;padding:6px 10px;border-bottom:1px solid #d8dae0;margin:0 -24px}
nav a{margin-right:14px;color:#2848a8;text-decoration:none}
h1{font-size:22px;margin:16px 0 4px}
h2{font-size:18px;border-bottom:2px solid #d8dae0;padding-bottom:2px;margin-top:30px}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #d8dae0;padding:3px 7px;text-align:left;vertical-align:middle}
th{background:#f3f4f7;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.mean td{font-weight:600;background:#f7f7f9}
.bar{position:relative;display:inline-block;width:110px;height:11px;background:#e8ebf5;margin-right:8px;vertical-align:middle}
.bar span{position:absolute;left:0;top:0;bottom:0;background:#5877d1}
.bar i{position:absolute;top:4px;height:3px;background:#1a1a1a}
td.heat{text-align:right;font-variant-numeric:tabular-nums;min-width:44px}
td.marked{outline:2px solid #e0457b;outline-offset:-2px;font-weight:700}
.note{color:#666;font-style:italic;margin:4px 0}
.row{display:flex;gap:10px;align-items:flex-start;margin:6px 0}
.row>.label{width:150px;flex:none;font-weight:600;padding-top:4px}
.clips{display:flex;flex-wrap:wrap;gap:8px}
figure.clip{margin:0;width:200px}
figure.clip img{display:block;width:200px;height:47px;image-rendering:auto;border:1px solid #ccc}
figure.clip audio{display:block;width:200px;height:28px;margin-top:2px}
figcaption{font-size:11px;color:#555}
img.plot{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f9;border:1px solid #e4e4ea;padding:8px;overflow:auto;max-height:420px;font-size:12px}
""".strip()


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def page(title: str, subtitle: str, contents: Sequence[tuple[str, str]], body: str) -> str:
    """A whole page: a navigation bar of (anchor, title) pairs, a heading and the body."""
    nav = "".join(f'<a href="#{esc(anchor)}">{esc(name)}</a>' for anchor, name in contents)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{esc(title)}</title>\n'
            f"<style>\n{STYLE}\n</style>\n</head>\n<body>\n<nav>{nav}</nav>\n<h1>{esc(title)}</h1>\n"
            f'<p class="note">{esc(subtitle)}</p>\n{body}\n</body>\n</html>\n')


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}">\n<h2>{esc(title)}</h2>\n{body}\n</section>\n'


def heading(title: str, anchor: str | None = None) -> str:
    return f'<h3 id="{esc(anchor)}">{esc(title)}</h3>\n' if anchor else f"<h3>{esc(title)}</h3>\n"


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>\n'


def paragraph(text: str) -> str:
    return f"<p>{esc(text)}</p>\n"


def link(href: str, text: str) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def preformatted(text: str) -> str:
    return f"<pre>{esc(text)}</pre>\n"


def image(href: str, alt: str, css: str = "plot") -> str:
    return f'<img class="{esc(css)}" src="{esc(href)}" alt="{esc(alt)}">\n'


def td(text: object) -> str:
    return f"<td>{esc(text)}</td>"


def number_td(text: object) -> str:
    return f'<td class="num">{esc(text)}</td>'


def _percent(value: float, scale: float) -> float:
    return 0.0 if scale <= 0 or not math.isfinite(value) else min(100.0, max(0.0, 100.0 * value / scale))


def bar_td(value: float, scale: float, text: str, low: float | None = None, high: float | None = None) -> str:
    """A number with a bar of length value / scale; [low, high] drawn as a whisker across the bar."""
    whisker = ""
    if low is not None and high is not None:
        left, right = _percent(low, scale), _percent(high, scale)
        whisker = f'<i style="left:{left:.1f}%;width:{max(right - left, 0.5):.1f}%"></i>'
    bar = f'<span class="bar"><span style="width:{_percent(value, scale):.1f}%"></span>{whisker}</span>'
    return f'<td class="num">{bar}{esc(text)}</td>'


HEAT_STOPS = ((255, 255, 217), (65, 182, 196), (37, 52, 148))  # pale yellow, teal, dark blue (as ColorBrewer's YlGnBu)


def heat_colour(t: float) -> tuple[str, str]:
    """Background and text colour for t in [0, 1], along HEAT_STOPS (piecewise linear)."""
    t = min(1.0, max(0.0, t)) if math.isfinite(t) else 0.0
    segment = min(int(t * (len(HEAT_STOPS) - 1)), len(HEAT_STOPS) - 2)
    local = t * (len(HEAT_STOPS) - 1) - segment
    start, end = HEAT_STOPS[segment], HEAT_STOPS[segment + 1]
    red, green, blue = (round(a + (b - a) * local) for a, b in zip(start, end))
    return f"#{red:02x}{green:02x}{blue:02x}", "#fff" if t > 0.55 else "#111"


def heat_td(text: str, t: float, marked: bool = False) -> str:
    background, colour = heat_colour(t)
    css = "heat marked" if marked else "heat"
    return f'<td class="{css}" style="background:{background};color:{colour}">{esc(text)}</td>'


def table(header: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str] | None = None) -> str:
    """A table of header names (escaped here) and rows of cells made by the *_td helpers."""
    head = "".join(f"<th>{esc(name)}</th>" for name in header)
    classes = row_classes or [""] * len(rows)
    body = "".join(f'<tr class="{esc(css)}">' + "".join(cells) + "</tr>\n" for cells, css in zip(rows, classes))
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def clip_figure(image_href: str | None, audio_href: str | None, caption: str) -> str:
    """One clip: its spectrogram, a player (no audio is loaded until it is played) and a caption."""
    width, height = SPECTROGRAM_SIZE
    parts = ['<figure class="clip">']
    if image_href is not None:
        parts.append(f'<img class="spectrogram" src="{esc(image_href)}" width="{width}" height="{height}" '
                     f'alt="log-mel spectrogram of {esc(caption)}">')
    if audio_href is not None:
        parts.append(f'<audio controls preload="none"><source src="{esc(audio_href)}" type="audio/wav"></audio>')
    parts.append(f"<figcaption>{esc(caption)}</figcaption></figure>")
    return "".join(parts)


def clip_row(label: str, figures: Sequence[str], remark: str = "") -> str:
    """A labelled row of clips (a set of one class: generated, reference, a floor)."""
    extra = f'<div class="note">{esc(remark)}</div>' if remark else ""
    return (f'<div class="row"><div class="label">{esc(label)}{extra}</div>'
            f'<div class="clips">{"".join(figures)}</div></div>\n')
