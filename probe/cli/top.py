"""``flowprobe top``: a running probe's biggest flows, live, in a full-screen view.

Every second (``--interval``) it asks the probe's control socket for its statistics and for as
many of its largest cached flows as the screen has rows, by bytes, packets or rate
(``flowprobe flows`` with ``--limit``), and redraws: totals and drop counters in a header, a
flow per line below. Keys: ``b`` bytes, ``p`` packets, ``r`` rate, ``q`` (or Ctrl-C) quits.
Drawn with curses from the standard library, so it works in any terminal terminfo knows,
over SSH, and fits an 80x24 screen. When the probe goes away (a replay that ended) the last
screen stays with a line saying so, and it asks again every interval.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from probe.cli.control_client import add_socket_flag

SORT_KEYS = {ord("b"): "bytes", ord("p"): "packets", ord("r"): "rate"}
QUIT_KEYS = {ord("q"), ord("Q"), 27}  # 27: Escape
HEADER_ROWS = 6  # title, packets, drops, flows, keys, column heads


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds from 0.1 to 3600")
    return value


def fit(text: str, width: int) -> str:
    """``text`` in ``width`` characters; a long address loses its middle, keeping the port."""
    if len(text) <= width:
        return text
    if width < 4:
        return text[:width]
    head = (width - 1) // 2
    return text[:head] + "~" + text[len(text) - (width - 1 - head):]


def age_text(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s // 60 % 60:02d}m"


class Screen:
    """What is on the screen, as lines of text (``lines``), apart from the drawing itself."""

    COLUMNS = (("proto", 6), ("packets", 7), ("bytes", 7), ("bit/s", 7), ("age", 6))

    def __init__(self, path: str) -> None:
        self.path = path
        self.sort = "bytes"
        self.stats: dict[str, Any] = {}
        self.flows: dict[str, Any] = {"flows": [], "total": 0}
        self.problem: str | None = None

    def header(self, width: int) -> list[str]:
        """Title and sort, then packets, drops, flows (each line fits 80 columns with every
        count at its widest, five characters), then the keys or what went wrong."""
        from probe.output import si_text as n
        from probe.service.stats import totals

        doc = self.stats
        svc = doc.get("service", {})
        t = totals(doc) if doc else {}
        points = doc.get("observation_points", [])
        dests = [d for ep in doc.get("exporting_processes", {}).values() for d in ep.values()]
        full = sum(c.get("packets_dropped", 0) for c in doc.get("caches", {}).values())
        sort = f"sort: {self.sort}"
        title = f"flowprobe top: pid {svc.get('pid', '?')}, up {age_text(svc.get('uptime_s', 0))}, "
        title += fit(str(svc.get("config", "")), width - len(title) - len(sort) - 1)
        return [
            title[:width - len(sort) - 1].ljust(width - len(sort)) + sort,
            f"packets: {n(sum(p.get('packets_read', 0) for p in points))} read  "
            f"{n(t.get('decoded', 0))} decoded  "
            f"{n(sum(sum(p.get('ignored', {}).values()) for p in points))} ignored  "
            f"{n(t.get('received', 0))} received by libpcap",
            f"drops:   {n(t.get('dropped', 0))} libpcap  {n(t.get('ifdropped', 0))} "
            f"interface  {n(full)} cache full  {n(sum(d.get('dropped', 0) for d in dests))} "
            "export",
            f"flows:   {n(t.get('active_flows', 0))} cached  {n(t.get('flows_expired', 0))} "
            f"expired  {n(t.get('records_exported', 0))} exported  "
            f"{n(sum(d.get('failures', 0) for d in dests))} export failures",
            self.problem or "keys: b bytes  p packets  r rate  q quit",
        ]

    def table(self, width: int, rows: int) -> list[str]:
        from probe.output import si_text, table_row

        fixed = sum(w for _, w in self.COLUMNS) + len(self.COLUMNS) + 1
        ends = max((width - fixed) // 2, 8)
        heads = [("source", ends), ("destination", ends), *self.COLUMNS]
        out = [" ".join(h.ljust(w) if i < 3 else h.rjust(w)
                        for i, (h, w) in enumerate(heads))]
        for flow in self.flows["flows"][:rows]:
            row = table_row(flow)  # proto, source and destination as `replay` prints them
            cells = (fit(row[3], ends), fit(row[5], ends), fit(row[2], 6),
                     si_text(flow["packets"]), si_text(flow["bytes"]),
                     si_text(flow["rate_bps"]), age_text(flow["age_s"]))
            out.append(" ".join(c.ljust(w) if i < 3 else c.rjust(w)
                                for i, (c, (_, w)) in enumerate(zip(cells, heads,
                                                                    strict=True))))
        return [line[:width] for line in out]

    def refresh(self, rows: int) -> None:
        """Ask the probe; on failure keep the last answer and say why."""
        from probe.errors import UserError
        from probe.service.control import request

        try:
            self.stats = request(self.path, "stats")["stats"]
            self.flows = request(self.path, "flows", sort=self.sort, limit=max(rows, 1))["flows"]
            self.problem = None
        except UserError as exc:
            self.problem = f"asking again (q quits): {exc.problems[0]}"


def _draw(stdscr: Any, screen: Screen) -> None:
    import curses

    height, width = stdscr.getmaxyx()
    width = max(width - 1, 1)  # the last column of the last line cannot be written
    stdscr.erase()
    lines = screen.header(width)
    lines += screen.table(width, max(height - HEADER_ROWS, 0))
    for y, line in enumerate(lines[:height]):
        attr = curses.A_REVERSE if y == HEADER_ROWS - 1 else \
            curses.A_BOLD if y == HEADER_ROWS - 2 and screen.problem else curses.A_NORMAL
        stdscr.addnstr(y, 0, line.ljust(width) if attr == curses.A_REVERSE else line, width,
                       attr)
    stdscr.noutrefresh()
    curses.doupdate()


def _loop(stdscr: Any, screen: Screen, interval: float) -> None:
    import curses
    import time

    curses.use_default_colors()
    with contextlib.suppress(curses.error):  # a terminal that cannot hide the cursor
        curses.curs_set(0)
    stdscr.timeout(100)  # getch waits at most 0.1 s: keys are taken at once
    due = 0.0
    while True:
        height, _ = stdscr.getmaxyx()
        if time.monotonic() >= due:
            screen.refresh(height - HEADER_ROWS)
            due = time.monotonic() + interval
            _draw(stdscr, screen)
        key = stdscr.getch()
        if key in QUIT_KEYS:
            return
        if key in SORT_KEYS and SORT_KEYS[key] != screen.sort:
            screen.sort = SORT_KEYS[key]
            due = 0.0  # ask again now, in the new order
        elif key == curses.KEY_RESIZE:
            _draw(stdscr, screen)


def top(args: argparse.Namespace) -> int:
    import curses

    from probe.cli.control_client import ask
    from probe.service.control import default_path

    ask(args, "ping")  # no probe: one line, exit 2, before the screen is taken over
    screen = Screen(args.control_socket or default_path())
    screen.sort = args.sort
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C quits as q does
        curses.wrapper(_loop, screen, args.interval)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("top", help="watch a running probe's biggest flows, live",
                       description="A full-screen view of a running probe (`flowprobe run`, "
                                   "or a replay started with --control-socket), redrawn every "
                                   "second: packets read, decoded and dropped, flows cached "
                                   "and expired, export counters, then the largest cached "
                                   "flows. Keys: b sort by bytes, p by packets, r by rate "
                                   "(bits per second since the flow was first seen), q quits.")
    add_socket_flag(p)
    p.add_argument("--sort", choices=("bytes", "packets", "rate"), default="bytes",
                   help="the order to start with (default bytes)")
    p.add_argument("--interval", type=_interval, default=1.0, metavar="S",
                   help="seconds between redraws (default 1)")
    p.set_defaults(func=top)
