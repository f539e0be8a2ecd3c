"""A small PNG chart of a selected group's rate, for Slack threads posted with a bot token.

The same series as the message's sparkline (`slack_blocks.rate_series`): each earlier window as its
mean per sub-window (Count rules only), then this window's sub-windows, on one scale, the onset marked.
People would rather look than read: bars, a dashed line at the onset, the scale's top and the times
under the bars. Everything drawn is what the message already shows people (keys after `slack_safe`).

Pure: numbers in, PNG bytes out (Pillow, imported on first use), no file or network I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from processors.core.slack_blocks import rate_series

WIDTH, HEIGHT = 640, 220
_MARGIN_L, _MARGIN_R, _MARGIN_T, _MARGIN_B = 56, 16, 42, 36
_BG, _AXIS, _TEXT = (255, 255, 255), (120, 120, 120), (40, 40, 40)
_EARLIER, _NOW, _AFTER, _ONSET = (190, 190, 190), (70, 130, 200), (214, 69, 65), (214, 69, 65)


@dataclass(frozen=True, slots=True)
class Chart:
    png: bytes
    filename: str
    title: str
    alt_text: str  # what a screen reader says: the same numbers as the picture


def _hhmm(t: int) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%H:%M:%S")


def _num(v: float) -> str:
    return f"{v:,.0f}" if v >= 10 or v == int(v) else f"{v:.1f}"


def rate_chart(g, counted: bool, rule: str) -> Chart | None:
    """The chart of one selected group, or None when its sub-window counts are not known exactly."""
    earlier, buckets, mark = rate_series(g, counted)
    if not buckets:
        return None
    from io import BytesIO

    from PIL import Image, ImageDraw, ImageFont

    keys = ", ".join(f"{k}={v}" for k, v in g.keys.items()) or "(all)"
    title = f"{rule} · {keys}: events per {g.bucket_seconds} s"
    values = (*earlier, *buckets)
    top = max(values) or 1
    img = Image.new("RGB", (WIDTH, HEIGHT), _BG)
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=12)
    small = ImageFont.load_default(size=11)
    d.text((_MARGIN_L, 6), title if len(title) <= 90 else title[:89] + "…", fill=_TEXT, font=font)
    x0, x1, y0, y1 = _MARGIN_L, WIDTH - _MARGIN_R, _MARGIN_T, HEIGHT - _MARGIN_B
    d.line([(x0, y1), (x1, y1)], fill=_AXIS)
    d.line([(x0, y0), (x0, y1)], fill=_AXIS)
    d.text((x0 - 6, y0), _num(top), fill=_TEXT, font=small, anchor="ra")
    d.text((x0 - 6, y1), "0", fill=_TEXT, font=small, anchor="rb")
    gap = 1 if earlier else 0  # one empty slot between the earlier windows and this one
    slots = len(earlier) + gap + len(buckets)
    step = (x1 - x0) / slots
    bar = max(1.0, step * 0.8)

    def draw(slot: int, v: float, colour) -> None:
        left = x0 + slot * step + (step - bar) / 2
        h = (y1 - y0) * v / top
        if h > 0:
            d.rectangle([left, y1 - h, left + bar, y1 - 1], fill=colour)

    for i, v in enumerate(earlier):
        draw(i, v, _EARLIER)
    first = len(earlier) + gap
    for i, v in enumerate(buckets):
        draw(first + i, v, _AFTER if mark is not None and i >= mark else _NOW)
    if earlier:
        d.text((x0 + len(earlier) * step / 2, y1 + 4), f"{len(earlier)} earlier window(s), mean",
               fill=_AXIS, font=small, anchor="ma")
    start = g.window.start
    d.text((x0 + first * step, y1 + 4), _hhmm(start), fill=_TEXT, font=small, anchor="la")
    d.text((x1, y1 + 4), _hhmm(start + len(buckets) * g.bucket_seconds), fill=_TEXT, font=small, anchor="ra")
    if mark is not None:
        x = x0 + (first + mark) * step
        for y in range(y0, y1, 6):
            d.line([(x, y), (x, min(y + 3, y1))], fill=_ONSET, width=2)
        d.text((x, y0 - 4), f"onset {_hhmm(g.onset.at)} UTC", fill=_ONSET, font=small, anchor="mb")
    out = BytesIO()
    img.save(out, format="PNG", optimize=True)
    alt = (f"{title}. This window from {_hhmm(start)} UTC: " + ", ".join(str(b) for b in buckets)
           + (f". Earlier windows, mean per {g.bucket_seconds} s: " + ", ".join(_num(v) for v in earlier) if earlier else "")
           + (f". Onset at {_hhmm(g.onset.at)} UTC." if mark is not None else "."))
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{rule}-{keys}")[:80]
    return Chart(out.getvalue(), f"sieve-rate-{safe}.png", title, alt[:1000])
