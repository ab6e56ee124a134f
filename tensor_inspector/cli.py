"""Command line: ``tensor-inspector ls|show|export|import|diff|trace|gui|demo``.

Scripts rely on these names and on the JSON keys. Errors are one sentence on
stderr with exit code 1 (a traceback only with ``--debug``); usage errors exit 2.
Qt is imported only by ``gui``/``demo``; frameworks only when a file needs them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tensor_inspector.core.nodes import Node
    from tensor_inspector.session.answers import FileInfo

SUBCOMMANDS = ("ls", "show", "export", "import", "diff", "trace", "gui", "demo")
DIFFERENT = 3  # diff's exit code when values differ beyond tolerance or tensors are unpaired
NONFINITE = 3  # trace's exit code when a node produced NaN or Inf


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust",
        action="store_true",
        help="vouch for the file: allow loads that can run code (pickles, TorchScript)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument(
        "--isolate",
        action="store_true",
        help="read in a separate, sandboxed reader process (a crash or a hostile file cannot reach this one)",
    )


def _feeds_and_slice(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--slice", metavar="EXPR", help="numpy index, e.g. '0,:,3:7'")
    parser.add_argument(
        "--feed",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="graph input: a JSON literal (x=[1,2,3]) or @file.npy",
    )


def _tolerance(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text} is not a tolerance (a number >= 0)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tensor-inspector",
        description="Open ML weight files, evaluate any node, view, export and edit tensors.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("ls", help="list the nodes of a file")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="print a JSON list of {id, kind, dtype, shape}")
    p.add_argument("--all", action="store_true", help="include group nodes")
    _common(p)

    p = sub.add_parser("show", help="statistics and a preview of one node")
    p.add_argument("path")
    p.add_argument("node", nargs="?", help="node id (optional when the file holds one tensor)")
    p.add_argument("--json", action="store_true")
    _feeds_and_slice(p)
    _common(p)

    p = sub.add_parser("export", help="write a node's exact values to .npy (or .npz/.csv)")
    p.add_argument("path")
    p.add_argument("node", nargs="?")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--dtype", help="cast to this dtype (default: exactly as stored)")
    _feeds_and_slice(p)
    _common(p)

    p = sub.add_parser("import", help="write a copy of a file with one tensor replaced by a .npy")
    p.add_argument("path")
    p.add_argument("node")
    p.add_argument("input", metavar="IN.npy")
    p.add_argument("-o", "--output", metavar="OUT", help="file to write (PATH only with --in-place)")
    p.add_argument(
        "--in-place",
        action="store_true",
        help="overwrite PATH, keeping the previous version as a backup (.bak)",
    )
    p.add_argument("--cast", action="store_true", help="allow a lossy dtype cast of IN.npy")
    _common(p)

    p = sub.add_parser(
        "diff",
        help="compare two files (or two tensors, FILE::NODE) value by value",
        description="Pair the tensors of A and B by name (framework conventions and layouts understood) "
        "and compare their values. Exit code 0: all within tolerance, nothing unpaired; 3: not.",
    )
    p.add_argument("a", metavar="A", help="a file, or one tensor as FILE::NODE")
    p.add_argument("b", metavar="B", help="a file, or one tensor as FILE::NODE")
    p.add_argument(
        "--map",
        metavar="RULES.json",
        help='extra pairing rules: [{"a": REGEX, "b": REPLACEMENT, "transpose": [axes]}]',
    )
    p.add_argument("--atol", type=_tolerance, default=0.0, help="absolute tolerance (default 0)")
    p.add_argument("--rtol", type=_tolerance, default=0.0, help="relative tolerance, times |b| (default 0)")
    p.add_argument(
        "--json", action="store_true", help="print the pairs (worst first) and unpaired names as JSON"
    )
    _common(p)

    p = sub.add_parser(
        "trace",
        help="run a graph once: every node's statistics and the op that first produced NaN/Inf",
        description="Run a signature or program once and summarise every node's output in execution "
        "order. Exit code 0: all finite; 3: a node produced NaN or Inf (named as the first producer).",
    )
    p.add_argument("path")
    p.add_argument("entry", nargs="?", metavar="ENTRY", help="signature or program (default: the first)")
    p.add_argument(
        "--feed",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="graph input: a JSON literal (x=[1,2,3]) or @file.npy",
    )
    p.add_argument(
        "--json", action="store_true", help="print every node's statistics and the producer as JSON"
    )
    p.add_argument(
        "--keep-mb",
        type=_tolerance,
        default=1024,
        metavar="N",
        help="keep node values up to N MiB; beyond, statistics only (default 1024)",
    )
    _common(p)

    for name, text in (("gui", "open files in the window"), ("demo", "open the bundled demo files")):
        p = sub.add_parser(name, help=text)
        if name == "gui":
            p.add_argument("paths", nargs="*")
        p.add_argument("--select", metavar="NODE", help="node id to select after opening")
        p.add_argument("--screenshot", metavar="OUT.png", help="render the window to OUT.png and exit")
        _common(p)
    return parser


@contextmanager
def _opened(args: argparse.Namespace) -> Iterator[tuple[Any, FileInfo]]:
    """The session (in-process, or reader processes with --isolate) and the opened file."""
    from tensor_inspector.session.isolated import IsolatedSession
    from tensor_inspector.session.local import LocalSession

    session: Any = IsolatedSession() if args.isolate else LocalSession()
    try:
        info = session.open(Path(args.path), trust=args.trust)
        try:
            yield session, info
        finally:
            session.close(info.handle)
    finally:
        if args.isolate:
            session.shutdown()


def _node(info: FileInfo, node_id: str | None) -> Node:
    """The node named ``node_id``, or the file's only value when none is named."""
    from tensor_inspector.core.errors import InspectorError, NodeNotFound

    if node_id:
        for node in info.nodes:
            if node.id == node_id:
                return node
        raise NodeNotFound(node_id)
    values = [n for n in info.nodes if n.has_value]
    if len(values) == 1:
        return values[0]
    raise InspectorError(f"{info.path.name} holds {len(values)} nodes; name one (see 'tensor-inspector ls').")


def _value(session: Any, info: FileInfo, args: argparse.Namespace) -> tuple[Node, np.ndarray]:
    from tensor_inspector.core.slicing import parse_index
    from tensor_inspector.session.feeds import parse_feeds

    node = _node(info, args.node)
    index = parse_index(args.slice) if args.slice else None
    feeds = parse_feeds(args.feed, session.feed_specs(info.handle, node.id)) if args.feed else None
    value = session.value(info.handle, node.id, index=index or None, feeds=feeds)
    return node, np.asarray(value.array)


def cmd_ls(args: argparse.Namespace) -> int:
    with _opened(args) as (_session, info):
        nodes = [n for n in info.nodes if args.all or n.has_value]
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "id": n.id,
                            "kind": n.kind.value,
                            "dtype": n.dtype,
                            "shape": list(n.shape) if n.shape is not None else None,
                        }
                        for n in nodes
                    ],
                    indent=1,
                )
            )
            return 0
        from tensor_inspector.core.dtypes import short_name

        rows = [
            (
                n.id,
                n.kind.value,
                short_name(n.dtype) or "-",
                "x".join("?" if d is None else str(d) for d in n.shape) if n.shape is not None else "-",
            )
            for n in nodes
        ]
        width = max((len(r[0]) for r in rows), default=2)
        for r in rows:
            print(f"{r[0]:<{width}}  {r[1]:<9} {r[2]:<8} {r[3] or 'scalar'}")
        print(f"# {len(rows)} nodes, {info.format_name}", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from tensor_inspector.core.stats import compute_stats

    with _opened(args) as (session, info):
        node, value = _value(session, info, args)
        node_id = node.id
        stats = compute_stats(value)
        if args.json:
            d = stats.as_dict()
            print(
                json.dumps(
                    {
                        "id": node_id,
                        "dtype": d["dtype"],
                        "shape": d["shape"],
                        "min": d["min"],
                        "max": d["max"],
                        "mean": d["mean"],
                        "std": d["std"],
                        "nan": d["nan"],
                        "inf": d["inf"],
                        "zeros": d["zeros"],
                    }
                )
            )
            return 0
        print(f"{node_id}  ({node.kind.value}, {info.format_name})")
        print(f"dtype {stats.dtype}   shape {list(stats.shape)}   {stats.nbytes:,} bytes")
        for key in ("min", "max", "mean", "std"):
            print(f"{key:>5} {getattr(stats, key)}")
        print(f"  nan {stats.nan}   +inf {stats.posinf}   -inf {stats.neginf}   zeros {stats.zeros}")
        if stats.note:
            print(f"note: {stats.note}")
        for key, val in node.metadata.items():
            print(f"{key}: {val}")
        with np.printoptions(threshold=200, edgeitems=3, linewidth=100):
            print(value)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tensor_inspector.core.export import export_array

    with _opened(args) as (session, info):
        node, value = _value(session, info, args)
        out = export_array(value, args.output, dtype=args.dtype, key=node.id)
    print(f"wrote {out} ({value.dtype}, shape {list(value.shape)})", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from tensor_inspector.core.errors import InspectorError
    from tensor_inspector.session.importing import load_replacement

    target = Path(args.output) if args.output else None
    same = target is not None and target.absolute() == Path(args.path).absolute()
    if args.in_place:
        target = Path(args.path)
    elif target is None:
        raise InspectorError("Give -o OUT (or --in-place to overwrite PATH with a backup).")
    elif same:
        raise InspectorError("OUT is PATH: add --in-place to overwrite it (a backup is kept).")
    with _opened(args) as (session, info):
        node = _node(info, args.node)
        value = load_replacement(Path(args.input), node, allow_cast=args.cast)
        saved = session.save(info.handle, {node.id: value}, target)
    backup = f"; previous version kept as {saved.backup}" if saved.backup else ""
    print(f"wrote {saved.opened.path} with {args.node} replaced (verified){backup}", file=sys.stderr)
    return 0


def _target(text: str) -> tuple[Path, str | None]:
    """``FILE`` or ``FILE::NODE`` (a path that itself exists with ``::`` in it stays a path)."""
    if "::" in text and not Path(text).exists():
        path, node = text.split("::", 1)
        return Path(path), node or None
    return Path(text), None


def _rules(path: str | None) -> list[Any]:
    from tensor_inspector.core.compare_names import parse_rules

    if path is None:
        return []
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise _UsageError(f"cannot read the rules file {path} ({exc.strerror or exc}).") from None
    except ValueError as exc:
        raise _UsageError(f"the rules file {path} is not JSON ({exc}).") from None
    try:
        return parse_rules(data)
    except Exception as exc:
        raise _UsageError(str(exc)) from None


class _UsageError(Exception):
    """A wrong argument found after parsing (exit code 2, like argparse's own)."""


def cmd_diff(args: argparse.Namespace) -> int:
    from tensor_inspector.session.compare import compare_files, plan_files
    from tensor_inspector.session.isolated import IsolatedSession
    from tensor_inspector.session.local import LocalSession

    (path_a, node_a), (path_b, node_b) = _target(args.a), _target(args.b)
    try:
        rules = _rules(args.map)
    except _UsageError as exc:
        print(f"tensor-inspector diff: error: {exc}", file=sys.stderr)
        return 2
    session: Any = IsolatedSession() if args.isolate else LocalSession()
    try:
        info_a = session.open(path_a, trust=args.trust)
        info_b = session.open(path_b, trust=args.trust)
        plan = plan_files(info_a, info_b, rules, node_a, node_b)
        report = compare_files(session, info_a, info_b, plan, args.atol, args.rtol)
    finally:
        session.close_all()
        if args.isolate:
            session.shutdown()
    if args.json:
        print(json.dumps(report.as_json(), indent=1))
    else:
        _print_report(report, args.atol, args.rtol)
    return 0 if report.ok else DIFFERENT


def _print_report(report: Any, atol: float, rtol: float) -> None:
    from tensor_inspector.core.compare_names import describe_transform

    rows = [("A", "B", "layout", "max|a-b|", "max rel", "mean|a-b|", "rmse", "cosine", "beyond")]
    for c in report.pairs:
        m = c.metrics
        names = (c.a, c.b, describe_transform(c.transform) or "")
        if m is None:
            rows.append((*names, c.note, "", "", "", "", "NOT COMPARED"))
            continue
        figures = (m.max_abs, m.max_rel, m.mean_abs, m.rmse)
        beyond = "equal" if m.equal else f"{m.beyond:,}" if m.beyond else "0"
        if m.nan_mismatch or m.inf_mismatch:
            beyond += f" ({m.nan_mismatch} NaN, {m.inf_mismatch} Inf)"
        rows.append((*names, *(f"{x:.3g}" for x in figures), f"{m.cosine:.9g}", beyond))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    for label, names in (("only in A", report.only_a), ("only in B", report.only_b)):
        for name in names:
            print(f"{label}: {name}")
    bad = sum(1 for c in report.pairs if c.metrics is None or not c.metrics.within)
    skipped = f"; {len(report.skipped)} optimizer/bookkeeping tensors skipped" if report.skipped else ""
    print(
        f"# {len(report.pairs)} pairs, {bad} beyond tolerance (atol {atol:g}, rtol {rtol:g}); "
        f"{len(report.only_a)} only in A, {len(report.only_b)} only in B{skipped}",
        file=sys.stderr,
    )


def cmd_trace(args: argparse.Namespace) -> int:
    from tensor_inspector.core.errors import InspectorError
    from tensor_inspector.session.feeds import parse_feeds

    with _opened(args) as (session, info):
        if args.entry and not any(node.id == args.entry for node in info.nodes):  # before its feeds
            raise InspectorError(
                f"{args.entry!r} cannot be traced: {info.path.name} has no such signature or program."
            )
        feeds = parse_feeds(args.feed, session.feed_specs(info.handle, args.entry)) if args.feed else None
        keep = int(args.keep_mb * (1 << 20))
        progress = _TraceProgress() if sys.stderr.isatty() else None
        try:
            report = session.trace(info.handle, args.entry, feeds, keep_bytes=keep, progress=progress)
        finally:
            if progress is not None:
                progress.clear()
    if args.json:
        print(json.dumps(report.as_json(), indent=1))
    else:
        _print_trace(report)
    return 0 if report.first_nonfinite is None else NONFINITE


class _TraceProgress:
    """``tracing: 120 / 850 nodes`` on one terminal line, rewritten at most every 0.2 s."""

    def __init__(self) -> None:
        self._shown_at = 0.0
        self._width = 0

    def __call__(self, done: int, total: int) -> None:
        import time

        now = time.monotonic()
        if now - self._shown_at < 0.2 and done < total:
            return
        self._shown_at = now
        text = f"tracing: {done} / {total} nodes"
        self._width = max(self._width, len(text))
        sys.stderr.write("\r" + text.ljust(self._width))
        sys.stderr.flush()

    def clear(self) -> None:
        if self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()


def _print_trace(report: Any) -> None:
    def figure(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    rows = [("node", "op", "dtype", "shape", "min", "max", "mean", "std", "nan", "inf", "zeros")]
    for n in report.nodes:
        mark = "  <- first NaN/Inf" if n.id == report.first_nonfinite else ""
        shape = "x".join(str(d) for d in n.shape) or "scalar"
        figures = (figure(n.min), figure(n.max), figure(n.mean), figure(n.std))
        rows.append((n.id, n.op, n.dtype, shape, *figures, str(n.nan), str(n.inf), str(n.zeros) + mark))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    kept = sum(1 for n in report.nodes if n.kept)
    print(f"# {report.entry}: {len(report.nodes)} nodes, {kept} values kept", file=sys.stderr)
    if report.first_nonfinite is None:
        print("All values are finite.")
    else:
        inputs = ", ".join(report.node(report.first_nonfinite).inputs) or "no traced inputs"
        print(f"First NaN/Inf produced by {report.first_nonfinite} (inputs: {inputs})")


NO_DISPLAY = "No display found: set DISPLAY, or use --screenshot to render without one."


def display_missing(screenshot: str | None) -> bool:
    """True when a window would be shown nowhere: no X11 or Wayland display (ssh, containers).

    Qt would fall back to offscreen rendering and run invisibly until killed. A screenshot
    or an explicit QT_QPA_PLATFORM asks for that rendering; Windows and macOS sessions
    always have their display.
    """
    if screenshot or os.environ.get("QT_QPA_PLATFORM") or sys.platform in ("win32", "darwin"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def cmd_window(args: argparse.Namespace) -> int:
    from tensor_inspector.core.errors import InspectorError

    if display_missing(args.screenshot):  # checked before Qt is imported: it answers at once
        raise InspectorError(NO_DISPLAY)
    from tensor_inspector.app.window import launch

    if args.command == "demo":
        return launch.run_demo(screenshot=args.screenshot, select=args.select)
    return launch.run_gui(args.paths, select=args.select, screenshot=args.screenshot, trust=args.trust)


COMMANDS = {
    "ls": cmd_ls,
    "show": cmd_show,
    "export": cmd_export,
    "import": cmd_import,
    "diff": cmd_diff,
    "trace": cmd_trace,
    "gui": cmd_window,
    "demo": cmd_window,
}


DEBUG_VARIABLE = "TENSOR_INSPECTOR_DEBUG"  # read by session.reader_process for the reader's environment
_QUIET_VARIABLES = ("CUDA_VISIBLE_DEVICES", DEBUG_VARIABLE, "TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS")


@contextmanager
def quiet_frameworks(debug: bool) -> Iterator[None]:
    """Framework chatter off (unless ``debug``), set before any framework is imported.

    TensorFlow logs its CUDA probing ("failed call to cuInit") as an error, which only
    TF_CPP_MIN_LOG_LEVEL=3 hides; Python-side deprecation warnings of the frameworks are
    noise for users too. GPUs are hidden unless the user chose some: reading weights needs
    none, and TensorFlow would otherwise reserve a GPU's memory that a training job may be
    using. The reader processes inherit this environment (and the debug flag through
    TENSOR_INSPECTOR_DEBUG). Restored afterwards: scripts call ``main`` in-process.
    """
    saved = {key: os.environ.get(key) for key in _QUIET_VARIABLES}
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    if debug:
        os.environ[DEBUG_VARIABLE] = "1"
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.simplefilter("ignore")
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["gui", *argv]  # `tensor-inspector [PATH ...]` opens the window
    if argv[0] == "--version":
        from tensor_inspector import __version__

        print(__version__)
        return 0
    args = build_parser().parse_args(argv)
    try:
        with quiet_frameworks(args.debug):
            return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one sentence for users; details with --debug
        from tensor_inspector.core.errors import InspectorError

        if args.debug:
            traceback.print_exc()
            details = getattr(getattr(exc, "failure", None), "details", "")
            if details:  # what the reader process saw
                print(f"In the reader process:\n{details}", file=sys.stderr)
        if isinstance(exc, InspectorError):
            message = str(exc)
        elif isinstance(exc, MemoryError):
            message = "Not enough memory for this value; use --slice to read part of it."
        else:
            message = f"Unexpected error ({type(exc).__name__}: {exc}); run with --debug for details."
        print(f"tensor-inspector: error: {message}", file=sys.stderr)
        return 1


def main_gui() -> int:
    """``tensor-inspector-gui``: the window, started without a console on Windows.

    Windows gives such a program no standard streams (None); messages are dropped there
    instead of failing on the first print.
    """
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # open for the process's life
    return main()


if __name__ == "__main__":
    sys.exit(main())
