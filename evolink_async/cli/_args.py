"""The ``evolink`` command line's arguments (argparse, no third-party parser)."""

from __future__ import annotations

import argparse

from .. import __version__
from ..checks import NumberRule
from ._callbacks import add_callback_arguments
from ._fleet import add_fleet_parsers
from ._imagine import add_mj_parsers
from ._options import COUNT_OPTION, CREDITS_OPTION, PORT_OPTION, SCALE_OPTION, SECONDS_OPTION, Parser, option

__all__ = ["build_parser"]

_EPILOG = """\
environment: EVOLINK_API_KEY, EVOLINK_BASE_URL, EVOLINK_FILES_BASE_URL, EVOLINK_POLL_SCALE.
exit codes: 0 every input has its results; 1 an input failed (see the summary);
2 bad usage or configuration (a wrong key, a wrong or unreachable URL: nothing was
submitted); 130 interrupted (run the same command
again to resume; a second Ctrl-C stops at once); 141 the output's reader went away (| head).
start here: evolink demo"""


#: ``evolink demo --count``: sample images are drawn in memory, so a typo of 10**9 must not run.
_DEMO_COUNT = option(NumberRule(whole=True, minimum=1, maximum=1000), name="count")
_SEED = option(NumberRule(whole=True, minimum=0, maximum=2**63 - 1), name="seed")


def _connection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    keys = group.add_mutually_exclusive_group()
    keys.add_argument(
        "--api-key", help="API key (default: $EVOLINK_API_KEY); never printed, but visible to other "
        "local users in the process list (ps): prefer $EVOLINK_API_KEY or --api-key-file",
    )  # fmt: skip
    keys.add_argument("--api-key-file", metavar="FILE",
                      help="read the API key from FILE (its first line; e.g. a file only you can read)")  # fmt: skip
    group.add_argument("--base-url", help="task API (default: $EVOLINK_BASE_URL or https://api.evolink.ai)")
    group.add_argument("--files-base-url", help="Files API (default: $EVOLINK_FILES_BASE_URL or https://files-api.evolink.ai)")
    group.add_argument(
        "--poll-scale", type=SCALE_OPTION,
        help="poll faster by this factor, to match a time-scaled sandbox (default: $EVOLINK_POLL_SCALE or 1)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON object per line, for scripts")


def _batch(sub: argparse._SubParsersAction[Parser], name: str, help_text: str, *,
           prompt: bool, model: str | None = None, speed: bool = False) -> None:  # fmt: skip
    parser = sub.add_parser(name, help=help_text, description=help_text, epilog=_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("input_dir", metavar="DIR", help="folder of images (results are never taken as inputs)")
    parser.add_argument("--out", required=True, help="results folder; its journal makes a re-run resume")
    if prompt:
        parser.add_argument("--prompt", required=True, help="what to do to each image")
    if model is not None:
        parser.add_argument("--model", default=model, help=f"model (default: {model})")
    if speed:
        parser.add_argument("--speed", choices=("fast", "turbo"), help="turbo costs about twice fast")
    parser.add_argument("-r", "--recursive", action="store_true", help="include sub-folders")
    parser.add_argument("--glob", default="*", help="only files whose name or relative path matches (e.g. '*.jpg')")
    parser.add_argument("--max-in-flight", type=COUNT_OPTION, default=8, help="unfinished tasks at most (default: 8)")
    parser.add_argument("--timeout", type=SECONDS_OPTION, help="seconds per task before reporting it timed out")
    parser.add_argument("--dry-run", action="store_true", help="check inputs and estimate the cost; spend nothing")
    parser.add_argument("--retry-failed", action="store_true", help="submit inputs that failed in an earlier run again")
    parser.add_argument("--new-journal", action="store_true",
                        help="start a new journal when the one in --out is missing or damaged (refused otherwise: "
                        "it could pay again for what was done); results already in --out are kept as done")  # fmt: skip
    parser.add_argument("--follow-symlinks", action="store_true",
                        help="take symbolic links to files outside DIR (by default such an input fails)")  # fmt: skip
    parser.add_argument("--max-credits", type=CREDITS_OPTION,
                        help="stop new submits before this run's credits exceed it")  # fmt: skip
    parser.add_argument("--metrics-port", type=PORT_OPTION, metavar="PORT",
                        help="serve the run's metrics in Prometheus text format on 127.0.0.1:PORT/metrics "
                        "(needs opentelemetry-sdk; 0: a free port, printed)")  # fmt: skip
    parser.add_argument("--keep-uploads", action="store_true",
                        help="keep each uploaded input file after its task ended (by default it is deleted: "
                        "the Files API keeps 100 files per key)")  # fmt: skip
    parser.add_argument("--normalize", action="store_true",
                        help="convert images the service would refuse (BMP, TIFF, HEIC, sides out of range) to "
                        "PNG next to the journal instead of failing them "
                        '(needs pip install "evolink-async[images]")')  # fmt: skip
    add_callback_arguments(parser)
    _connection(parser)
    parser.set_defaults(command="batch", operation=name)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="evolink", description="Batch-edit image folders with Evolink, resumably, with live progress.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"evolink-async {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND", required=True)
    _batch(sub, "edit", "edit every image of a folder as the prompt says", prompt=True, model="qwen-image-edit")
    _batch(sub, "remove-bg", "cut the subject of every image out of its background", prompt=False)
    _batch(sub, "retexture", "restyle every image of a folder to the prompt's texture", prompt=True, speed=True)
    add_fleet_parsers(sub, _connection)
    add_mj_parsers(sub)
    for name, help_text in (("status", "show a task once"), ("watch", "follow a task until it ends")):
        task = sub.add_parser(name, help=help_text, description=help_text)
        task.add_argument("task_id")
        if name == "watch":
            task.add_argument("--timeout", type=SECONDS_OPTION, help="give up after this many seconds")
        _connection(task)
        task.set_defaults(command=name)
    download = sub.add_parser("download", help="save a completed task's results",
                              description="save a completed task's results into a folder")  # fmt: skip
    download.add_argument("task_id")
    download.add_argument("--out", required=True, help="folder for the results (<task id>.result-<n>.<ext>)")
    _connection(download)
    download.set_defaults(command="download")
    sandbox = sub.add_parser("sandbox", help="serve the local emulator on 127.0.0.1 (evolink sandbox --help)",
                             add_help=False)  # fmt: skip
    sandbox.add_argument("sandbox_args", nargs=argparse.REMAINDER)
    sandbox.set_defaults(command="sandbox")
    demo = sub.add_parser("demo", help="the whole batch on sample images, against an in-process sandbox (no key)")
    demo.add_argument("--dir", default="evolink-demo", help="where inputs and results go (default: ./evolink-demo)")
    demo.add_argument("--count", type=_DEMO_COUNT, default=6, help="sample images (default: 6)")
    demo.add_argument("--time-scale", type=SCALE_OPTION, default=0.05, help="sandbox speed (0.05: 20x faster)")
    demo.add_argument("--seed", type=_SEED, default=7, help="sandbox seed (outcomes repeat)")
    demo.add_argument("--json", action="store_true", help="one JSON object per line")
    demo.set_defaults(command="demo")
    return parser
