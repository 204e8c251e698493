"""One frame of a recorded terminal session as an SVG (the README's picture of the sweep display).

    script -q -c "python runner.py -m ..." capture.txt     # record a sweep on a terminal
    python scripts/terminal_svg.py capture.txt docs/sweep_progress.svg --title "python runner.py -m ..."

The live display redraws itself by moving the cursor up and erasing lines;
the capture is cut at those moves, and the frame that shows the most running
jobs' validation values (with the lines printed above it so far) is drawn
with rich's ``Text.from_ansi`` and ``Console.export_svg``.
"""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

from rich.console import Console
from rich.text import Text

PANEL = "\x1b[1msweep\x1b[0m"  # the panel's first cell: what comes before it in a frame was printed above
REDRAW = re.compile(r"\r?\x1b\[2K(?:\x1b\[1A\x1b\[2K)*")  # rich's Live: back to the panel's first line


def screen(capture: str) -> str:
    """The lines printed above the panel so far, then the panel: of the frame showing the most running jobs,
    then the most validation values, then the latest."""
    segments = REDRAW.split(capture)
    shown = [(_panel(seg).count("\n"), seg.count("=0."), i) for i, seg in enumerate(segments) if "epochs done" in seg]
    if not shown:
        raise SystemExit("no frame of the live display with running jobs in the capture")
    *_, last = max(shown)
    printed = "".join(seg.split(PANEL, 1)[0] for seg in segments[1:last])  # segments[0]: the recorder's header
    text = printed + segments[last]
    return text.replace("\r\n", "\n").replace("\x1b[?25l", "").replace("\x1b[?25h", "")


def _panel(segment: str) -> str:
    return PANEL + segment.split(PANEL, 1)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture")
    parser.add_argument("svg")
    parser.add_argument("--title", default="layerlab sweep")
    parser.add_argument("--width", type=int, default=130)
    args = parser.parse_args()
    frame = screen(Path(args.capture).read_text(errors="replace"))
    console = Console(record=True, width=args.width, file=io.StringIO(), force_terminal=True)
    console.print(Text.from_ansi(frame.rstrip()))
    Path(args.svg).write_text(console.export_svg(title=args.title))


if __name__ == "__main__":
    main()
