"""``python -m evolink_async.sandbox`` flags of the Midjourney-proxy side (``--mj-*``)."""

from __future__ import annotations

import argparse

import attrs

from ..._core.checks import COUNT, DELAY, MAX_COUNT, PROBABILITY, SECONDS, NumberRule
from ._config import MidjourneyOptions

# The library's numeric rules, as for every option of the sandbox and the CLI.
_COUNT = COUNT.argparse_type("count")
#: ``--mj-queue-size``: jobs waiting besides the running ones; 0 refuses every job past them.
_QUEUE_SIZE = NumberRule(whole=True, minimum=0, maximum=MAX_COUNT).argparse_type("count")
_SECONDS = SECONDS.argparse_type("seconds")
_DELAY = DELAY.argparse_type("delay")
_PROBABILITY = PROBABILITY.argparse_type("probability")

__all__ = ["add_mj_arguments", "mj_options"]


def add_mj_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Midjourney-proxy side (routes under --mj-prefix on the task API port)")
    group.add_argument("--no-mj", action="store_true", help="do not serve the Midjourney-proxy routes")
    group.add_argument("--mj-prefix", default="/mj", help="path prefix of the MJ routes (default: /mj)")
    group.add_argument("--mj-api-key", default=None, help="the accepted MJ secret (default: --api-key)")
    group.add_argument("--mj-auth", choices=("any", "mj-api-secret", "bearer"), default="any", help="auth header")
    group.add_argument("--mj-unauthorized-body", default="", help="body of a 401 (default: empty, as novicezk)")
    group.add_argument("--mj-failure-status", choices=("FAILURE", "FAILED"), default="FAILURE")
    group.add_argument("--mj-failure-progress-100", action="store_true", help='failed tasks report "100%%"')
    group.add_argument("--mj-blank-status-for", type=_DELAY, default=0.0,
                       help='API seconds of status "" after submit')  # fmt: skip
    group.add_argument(
        "--mj-unknown-fetch", choices=("empty", "no_content", "not_found"), default="empty",
        help="fetch of an unknown id: 200 empty body, 204, or 404",
    )  # fmt: skip
    group.add_argument("--mj-no-list-by-condition", action="store_true", help="task/list-by-condition answers 404")
    group.add_argument("--mj-no-cancel", action="store_true", help="task/{id}/cancel answers 404")
    group.add_argument("--mj-concurrency", type=_COUNT, default=3, help="jobs running at once")
    group.add_argument("--mj-queue-size", type=_QUEUE_SIZE, default=10, help="jobs waiting at most (then code 23)")
    group.add_argument("--mj-queue-full-code", type=int, default=23, choices=(23, 9))
    group.add_argument("--mj-banned-word", action="append", default=None, help="a banned word (repeatable)")
    group.add_argument("--mj-banned-check", choices=("submit", "execute"), default="submit")
    group.add_argument("--mj-timeout", type=_SECONDS, default=300.0, help="API seconds before a stuck job fails")
    group.add_argument("--mj-hook-drop-rate", type=_PROBABILITY, default=0.0, help="notifyHook sends skipped")
    group.add_argument("--mj-hook-duplicate-rate", type=_PROBABILITY, default=0.0, help="notifyHook sends doubled")
    group.add_argument("--mj-hook-delay", type=_DELAY, nargs=2, default=(0.0, 0.0), metavar=("LOW", "HIGH"))


def mj_options(args: argparse.Namespace) -> MidjourneyOptions:
    options = MidjourneyOptions(
        enabled=not args.no_mj,
        prefix=args.mj_prefix,
        api_key=args.mj_api_key,
        auth=args.mj_auth,
        unauthorized_body=args.mj_unauthorized_body,
        failure_status=args.mj_failure_status,
        failure_progress="100%" if args.mj_failure_progress_100 else "",
        blank_status_for=args.mj_blank_status_for,
        unknown_fetch=args.mj_unknown_fetch,
        list_by_condition=not args.mj_no_list_by_condition,
        cancel=not args.mj_no_cancel,
        concurrency=args.mj_concurrency,
        queue_size=args.mj_queue_size,
        queue_full_code=args.mj_queue_full_code,
        banned_check=args.mj_banned_check,
        timeout=args.mj_timeout,
        hook_drop_rate=args.mj_hook_drop_rate,
        hook_duplicate_rate=args.mj_hook_duplicate_rate,
        hook_delay=tuple(args.mj_hook_delay),
    )
    if args.mj_banned_word is not None:
        options = attrs.evolve(options, banned_words=tuple(args.mj_banned_word))
    return options
