"""Draw the picture of a result that the plugin's README shows (``docs/result.png``).

The embed, its components and the waveform image are the plugin's own: ``result_embed``
and ``result_view`` as delivery calls them, and the hub's waveform PNG of the demo song's
stems. Only the frame around them (Discord's dark theme, the message header) is drawn
here, as HTML screenshotted by headless Chromium::

    uv run --all-packages python -m tests.discord.readme_picture [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import base64
import html
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from playwright.sync_api import sync_playwright
from stemhub_discord.render import result_embed, result_view
from stemhub_discord.stems import AGAIN_OPTIONS
from stemhub_discord.texts import human_size

from stemhub import (
    AudioInfo,
    Job,
    JobRequest,
    JobStatus,
    Output,
    OutputFormat,
    Source,
    SourceKind,
    Stage,
    StemSet,
)
from stemhub.demo import demo_stems
from stemhub.web.waveforms import Waveforms, peaks_of, render_png

TARGET = Path(__file__).resolve().parents[2] / "plugins" / "discord" / "docs" / "result.png"
ATTACHED = ("vocals", "drums")
SIZES = {"vocals": 3_460_000, "drums": 3_350_000, "bass": 3_310_000, "other": 3_420_000}


def example_job() -> Job:
    job = Job(
        request=JobRequest(
            source=Source(kind=SourceKind.URL, url="https://cdn.example/night-drive.mp3"),
            stems=StemSet.FOUR_STEMS,
            output_format=OutputFormat.MP3,
        ),
        status=JobStatus.COMPLETED,
        stage=Stage.DELIVER,
        audio=AudioInfo(duration_s=215.0, bpm=118.0, key="F# minor"),
    )
    job.outputs = {
        stem: Output(stem=stem, format=OutputFormat.MP3, size_bytes=size, duration_s=215.0)
        for stem, size in SIZES.items()
    }
    return job


def waveform_png() -> bytes:
    stems = demo_stems(seconds=24.0, sample_rate=22050)
    peaks = {
        stem: peaks_of(np.abs(audio).max(axis=1).astype(np.float32))
        for stem, audio in stems.items()
    }
    return render_png(Waveforms(peaks))


def _markdown(text: str, now: datetime) -> str:
    """The little markdown an embed uses: links, bold, Discord's relative timestamps."""
    out = html.escape(text)
    out = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="#">\1</a>', out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)

    def relative(match: re.Match[str]) -> str:
        days = round((int(match[1]) - now.timestamp()) / 86400)
        return f'<span class="ts">in {days} days</span>'

    return re.sub(r"&lt;t:(\d+):R&gt;", relative, out).replace("\n", "<br>")


def page(embed: dict[str, Any], components: list[dict[str, Any]], png: bytes) -> str:
    now = datetime.now(UTC)
    image = base64.b64encode(png).decode()
    fields = "".join(
        f'<div class="field{" inline" if f.get("inline") else ""}">'
        f'<div class="name">{html.escape(f["name"].strip(chr(0x200B)))}</div>'
        f'<div class="value">{_markdown(f["value"], now)}</div></div>'
        for f in embed["fields"]
    )
    files = "".join(
        f'<div class="file"><div class="icon">&#9835;</div><div><a href="#">'
        f'night-drive - {stem}.mp3</a><div class="size">{human_size(SIZES[stem])}</div>'
        "</div></div>"
        for stem in ATTACHED
    )
    rows = []
    for row in components:
        items = []
        for c in row["components"]:
            if c["type"] == 2:
                emoji = c.get("emoji", {}).get("name", "")
                items.append(f'<div class="button">{emoji} {html.escape(c["label"])}</div>')
            else:
                items.append(
                    f'<div class="select">{html.escape(c["placeholder"])}<i>&#8964;</i></div>'
                )
        rows.append(f'<div class="row">{"".join(items)}</div>')
    colour = f"#{embed['color']:06x}"
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin:0; background:#313338; font:15px/1.375 "gg sans","Noto Sans",Arial,sans-serif;
  color:#dbdee1; }}
.message {{ display:flex; gap:16px; padding:14px 18px 16px; width:560px; }}
.avatar {{ width:40px; height:40px; border-radius:50%; background:#5865f2; flex:none;
  display:flex; align-items:center; justify-content:center; color:white; font-size:20px; }}
.head b {{ color:#f2f3f5; }} .app {{ background:#5865f2; color:white; font-size:10px;
  border-radius:3px; padding:1px 4px; margin:0 4px; vertical-align:2px; }}
.head span.time {{ color:#949ba4; font-size:12px; }}
.embed {{ background:#2b2d31; border-left:4px solid {colour}; border-radius:4px;
  padding:8px 16px 16px 12px; margin-top:4px; max-width:500px; }}
.title a {{ color:#00a8fc; font-weight:600; text-decoration:none; }}
.description {{ font-size:14px; margin-top:8px; }}
.fields {{ display:grid; grid-template-columns:repeat(3,1fr); gap:8px; margin-top:8px; }}
.field {{ grid-column:1/-1; font-size:14px; }} .field.inline {{ grid-column:auto; }}
.name {{ font-weight:600; color:#f2f3f5; margin-bottom:2px; }}
a {{ color:#00a8fc; text-decoration:none; }} .ts {{ background:#3f4147; border-radius:3px;
  padding:0 2px; }}
.image img {{ width:100%; border-radius:4px; margin-top:16px; display:block; }}
.footer {{ font-size:12px; color:#b5bac1; margin-top:8px; }}
.file {{ display:flex; gap:10px; align-items:center; background:#2b2d31; border:1px solid #1e1f22;
  border-radius:8px; padding:10px; margin-top:8px; width:380px; }}
.file .icon {{ font-size:26px; color:#949ba4; }} .size {{ font-size:12px; color:#949ba4; }}
.row {{ display:flex; gap:8px; margin-top:8px; }}
.button {{ background:#4e5058; color:white; border-radius:3px; padding:4px 16px; font-size:14px;
  line-height:24px; }}
.select {{ background:#1e1f22; color:#949ba4; border-radius:4px; padding:8px; width:384px;
  display:flex; justify-content:space-between; font-size:14px; }}
</style></head><body><div class="message"><div class="avatar">&#127899;</div><div>
<div class="head"><b>stemhub</b><span class="app">APP</span>
<span class="time">Today at 21:14</span></div>
<div class="embed"><div class="title"><a href="#">{html.escape(embed["title"])}</a></div>
<div class="description">{_markdown(embed["description"], now)}</div>
<div class="fields">{fields}</div>
<div class="image"><img src="data:image/png;base64,{image}"></div>
<div class="footer">{html.escape(embed["footer"]["text"])}</div></div>
{files}{"".join(rows)}</div></div></body></html>"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--out", type=Path, default=TARGET)
    args = parser.parse_args()
    job = example_job()
    expires = datetime.now(UTC) + timedelta(days=3)
    base = f"https://stems.example.com/files/{job.id[:4]}…"
    links = {stem: (f"{base}/{stem}.mp3?exp=…&sig=…", expires) for stem in SIZES}
    page_url = f"https://stems.example.com/r/{job.id[:4]}…"
    # as delivery builds it: the result page's line joins the notes under the stems
    note = f"\N{LEFT-POINTING MAGNIFYING GLASS} [Listen, solo and mix]({page_url})"
    embed = result_embed(job, links=links, attached=set(ATTACHED), note=note, page_url=page_url)
    embed.set_image(url="attachment://waveforms.png")
    view = result_view(job, has_links=True, again=AGAIN_OPTIONS)
    markup = page(embed.to_dict(), view.to_components(), waveform_png())  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "result.html"
        source.write_text(markup, encoding="utf-8")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"]
            )
            tab = browser.new_page(viewport={"width": 600, "height": 400})
            tab.goto(source.as_uri())
            args.out.parent.mkdir(parents=True, exist_ok=True)
            tab.locator(".message").screenshot(path=str(args.out))
            browser.close()
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
