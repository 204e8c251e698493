"""One frame of a recorded terminal session as an SVG (the README's picture of the sweep display).

    script -q -c "python runner.py -m ..." capture.txt     # record a sweep on a terminal
    python scripts/terminal_svg.py capture.txt docs/sweep_progress.svg --title "python runner.py -m ..."

The live display redraws itself by moving the cursor up and erasing lines;
the capture is cut at those moves, and the last frame that shows running
jobs with a validation value (and the lines printed above it) is drawn with
rich's ``Text.from_ansi`` and ``Console.export_svg``.
"""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

from rich.console import Console
from rich.text import Text

REDRAW = re.compile(r"\r\x1b\[2K(?:\x1b\[1A\x1b\[2K)+")


def last_frame(capture: str) -> str:
    frames = [f for f in REDRAW.split(capture) if "epochs done" in f and "=0." in f]
    if not frames:
        raise SystemExit("no frame of the live display with a running job's value in the capture")
    return frames[-1].replace("\r\n", "\n").replace("\x1b[?25l", "").replace("\x1b[?25h", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture")
    parser.add_argument("svg")
    parser.add_argument("--title", default="layerlab sweep")
    parser.add_argument("--width", type=int, default=130)
    args = parser.parse_args()
    frame = last_frame(Path(args.capture).read_text(errors="replace"))
    console = Console(record=True, width=args.width, file=io.StringIO(), force_terminal=True)
    console.print(Text.from_ansi(frame.rstrip()))
    Path(args.svg).write_text(console.export_svg(title=args.title))


if __name__ == "__main__":
    main()
