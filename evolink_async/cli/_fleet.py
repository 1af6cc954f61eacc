"""``evolink batch plan|work|status|export``: one batch shared by workers on many machines.

>>> main(["batch", "plan", "edits.jsonl", "--journal", "postgresql://db/edits", "--root", "/shared/in"])
>>> main(["batch", "work", "--journal", "postgresql://db/edits", "--max-in-flight", "32", "--out", "/shared/out"])
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import anyio

from .. import Bot, CallbackReceiver, Client, EvolinkClient, MidjourneyClient, PollPolicy, RetryPolicy, SpeedMode
from ..batch import (
    BatchEvent,
    ImagineSource,
    ManifestInput,
    PgJournal,
    PlannedSource,
    Worker,
    WorkerOptions,
    WorkerSummary,
    check_postgres_url,
    checked_inputs,
    default_wal_path,
    fleet_status,
    folder_manifest,
    is_postgres_url,
    read_manifest,
    shown_url,
)
from ..checks import check_path
from ..errors import JournalError, Remedy, ValidationError
from ._callbacks import add_callback_arguments, callback_options, callback_receiver, start_listening
from ._commands import _api_key
from ._exit_codes import EXIT_FAILED, EXIT_OK
from ._options import COUNT_OPTION, CREDITS_OPTION, PORT_OPTION, SECONDS_OPTION
from ._otel import RunTelemetry, start_telemetry
from ._remedies import cli_event, cli_message
from ._text import json_line, printable

__all__ = ["add_fleet_parsers", "run"]



def add_fleet_parsers(sub: Any, connection: Callable[[argparse.ArgumentParser], None]) -> None:
    """``evolink batch ...``; ``connection`` adds the API options (key, URLs, --json) to ``work``."""
    batch = sub.add_parser("batch", help="a batch shared by workers on many machines (PostgreSQL journal)",
                           description="One batch, many workers: plan it once, run `work` anywhere.")  # fmt: skip
    ops = batch.add_subparsers(metavar="OPERATION", required=True, dest="operation")

    def journal(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--journal", required=True, metavar="URL", help="postgresql://user@host/db")
        parser.set_defaults(command="fleet")

    plan = ops.add_parser("plan", help="load a manifest (or a folder) into the journal, once")
    plan.add_argument("source", metavar="MANIFEST.jsonl|DIR", help="JSON Lines manifest, or a folder of images")
    journal(plan)
    plan.add_argument("--root", help="where manifest paths live on the shared file system (a folder: itself)")
    plan.add_argument("--model", default="qwen-image-edit", help="for a folder: the model (default: qwen-image-edit)")
    plan.add_argument("--prompt", help="for a folder: the prompt")
    plan.add_argument("--speed", choices=("fast", "turbo"), help="for a folder: model_params.speed")
    plan.add_argument("-r", "--recursive", action="store_true", help="for a folder: include sub-folders")
    plan.add_argument("--glob", default="*", help="for a folder: only matching files")
    plan.add_argument("--json", action="store_true", help="one JSON object")

    work = ops.add_parser("work", help="claim inputs and work on them until the batch is done")
    journal(work)
    work.add_argument("--max-in-flight", type=COUNT_OPTION,
                      help="batch-wide bound on unfinished tasks (kept in the journal)")  # fmt: skip
    work.add_argument("--max-credits", type=CREDITS_OPTION, help="batch-wide credit budget for new submits")
    work.add_argument("--out", help="shared results folder (default: record result URLs only)")
    work.add_argument("--root", help="where manifest paths live on this machine (default: the plan's --root)")
    work.add_argument("--claim-size", type=COUNT_OPTION, default=8, help="inputs per claim (default: 8)")
    work.add_argument("--max-held", type=COUNT_OPTION, default=64,
                      help="inputs this worker holds at most (default: 64)")  # fmt: skip
    work.add_argument("--lease", type=SECONDS_OPTION, default=30.0,
                      help="lease seconds, renewed every third (default: 30)")  # fmt: skip
    work.add_argument("--poll-interval", type=SECONDS_OPTION, default=0.5,
                      help="seconds between claims that took nothing (a worker at its fair share of "
                      "--max-in-flight waits for its own inputs instead)")  # fmt: skip
    work.add_argument("--journal-outage", type=SECONDS_OPTION, default=60.0, metavar="SECONDS",
                      help="how long the journal may stay unreachable (retried, tasks still watched) before the "
                      "worker stops (default: 60)")  # fmt: skip
    work.add_argument("--wal", metavar="FILE",
                      help="this machine's write-ahead file of task ids, replayed at start (default: one per "
                      "journal under $XDG_STATE_HOME/evolink)")  # fmt: skip
    work.add_argument("--uncertain-slot-hold", type=SECONDS_OPTION, metavar="SECONDS",
                      help="batch-wide: how long an 'uncertain' input keeps its slot under --max-in-flight, its task "
                      "possibly running (kept in the journal; default 1800)")  # fmt: skip
    work.add_argument("--resubmit-uncertain", action="store_true",
                      help="resubmit 'uncertain' inputs with their same Idempotency-Key (only against a server that "
                      "de-duplicates by it)")  # fmt: skip
    work.add_argument("--keep-uploads", action="store_true",
                      help="keep each uploaded input file after its task ended (by default it is deleted)")
    work.add_argument("--metrics-port", type=PORT_OPTION, metavar="PORT",
                      help="serve this worker's metrics in Prometheus text format on 127.0.0.1:PORT/metrics "
                      "(needs opentelemetry-sdk; 0: a free port, printed)")  # fmt: skip
    # As for the one-machine batch: with callbacks, a submit whose answer was lost is settled by its
    # callback (the fan-out's recover path) instead of being sent again or left uncertain.
    add_callback_arguments(work)
    connection(work)
    mj = work.add_argument_group("Midjourney (a batch of prompt lines, model midjourney-imagine)")
    mj.add_argument("--protocol", choices=("evolink", "midjourney"), default="evolink",
                    help="the API of the planned lines: midjourney sends prompt lines to a Midjourney proxy "
                    "(key and host default to $MJ_PROXY_API_KEY and $MJ_PROXY_BASE_URL; default: evolink)")  # fmt: skip
    mj.add_argument("--path-prefix", default="/mj", help="the proxy's path of the MJ routes (default: /mj)")
    mj.add_argument("--auth", choices=("bearer", "mj-api-secret"), default="bearer",
                    help="how the proxy's key is sent (default: bearer)")  # fmt: skip
    mj.add_argument("--bot", choices=[b.value for b in Bot], default=Bot.MID_JOURNEY.value,
                    help="which bot draws, the same for every worker")  # fmt: skip
    mj.add_argument("--mode", choices=[m.value for m in SpeedMode], help="account speed (gateways)")

    status = ops.add_parser("status", help="counts by state, per worker, credits, rate, ETA")
    journal(status)
    status.add_argument("--json", action="store_true", help="one JSON object (per refresh with --watch)")
    status.add_argument("--watch", nargs="?", type=SECONDS_OPTION, const=2.0, metavar="SECONDS",
                        help="refresh until every input is finished (default every 2 s)")  # fmt: skip

    export = ops.add_parser("export", help="JSON Lines: every input's outcome and results")
    journal(export)
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.set_defaults(json=True)


#: Seconds the short commands (plan, status, export) try to reach the journal: a person waits for
#: them, and they have no --journal-outage (a worker, which may start while its server restarts, does).
SHORT_CONNECT = 5.0


def _check_url(url: str) -> None:
    if not is_postgres_url(url):
        raise ValidationError("--journal", "must be a postgresql:// URL (the one-machine batch keeps its "
                              "SQLite journal in --out)")  # fmt: skip
    check_postgres_url("--journal", url)


async def run(args: argparse.Namespace, reporter: object = None) -> int:
    """Run ``evolink batch <operation>`` (the reporter of the other commands is not used here)."""
    _check_url(args.journal)
    command = {"plan": _plan, "work": _work, "status": _status, "export": _export}[args.operation]
    try:
        return await command(args)
    except Exception as exc:
        # The database's own refusals (a table of another program named evolink_entries, a
        # permission): a journal that cannot be used is a configuration error, said in one line.
        if type(exc).__module__.partition(".")[0] == "asyncpg":
            raise JournalError(f"--journal {shown_url(args.journal)} cannot be used as an evolink journal "
                               f"({type(exc).__name__}: {exc})") from exc  # fmt: skip
        raise


def _inputs(args: argparse.Namespace) -> tuple[Iterator[ManifestInput], Path | None]:
    source = Path(args.source)
    if source.is_dir():
        if args.prompt is None and args.model == "qwen-image-edit":
            raise ValidationError("--prompt", "is required to plan a folder for qwen-image-edit")
        params = {"speed": args.speed} if args.speed else {}
        root = (check_path("root", args.root) if args.root is not None else source).resolve()
        items = folder_manifest(source, model=args.model, prompt=args.prompt, model_params=params,
                                recursive=args.recursive, pattern=args.glob)  # fmt: skip
        return items, root
    if not source.is_file():
        raise ValidationError("source", f"{source} is neither a manifest file nor a folder")
    return read_manifest(source), check_path("root", args.root).resolve() if args.root is not None else None


async def _plan(args: argparse.Namespace) -> int:

    items, root = _inputs(args)
    checked = checked_inputs(items, root=root)
    async with PgJournal(args.journal, connect_timeout=SHORT_CONNECT) as journal:
        result = await journal.plan(checked, root=root)
    data = {"kind": "planned", "inputs": result.inputs, "added": result.added, "already": result.already}
    print(json.dumps(data) if args.json else
          f"planned {result.inputs} input(s): {result.added} added, {result.already} already planned")  # fmt: skip
    return EXIT_OK


def _print_event(stream: IO[str], as_json: bool) -> Callable[[BatchEvent], None]:
    def show(event: BatchEvent) -> None:
        event = cli_event(event)
        if as_json:
            print(json_line(event.to_json()), file=stream, flush=True)
            return
        # Keys, codes, messages and task ids are outside text: escaped, never obeyed by the terminal.
        if event.kind in ("failed", "uncertain"):
            line = f"{event.kind.upper():10} {event.key}  {event.error_code}: {event.message}"
        elif event.kind in ("submitted", "reattached", "downloaded", "completed"):
            line = f"{event.kind:10} {event.key}  {event.task_id or ''}"
        elif event.kind == "lease_lost":
            line = f"LEASE LOST {event.key}  {event.message}"
        elif event.kind == "submits_stopped":
            line = f"STOPPED    no more submits: {event.message}; {event.total} input(s) left pending"
        elif event.kind in ("journal_down", "journal_back"):
            state = "unreachable, retrying" if event.kind == "journal_down" else "back"
            line = f"journal    {state} ({event.message})"
        else:
            return
        print(printable(line), file=stream, flush=True)

    return show


async def _work(args: argparse.Namespace) -> int:

    callbacks = callback_options(args)  # --callbacks and --listen, checked before anything else
    options = WorkerOptions(
        max_in_flight=args.max_in_flight, max_credits=args.max_credits, out_dir=args.out, root=args.root,
        claim_size=args.claim_size, max_held=args.max_held, lease=args.lease, poll_interval=args.poll_interval,
        resubmit_uncertain=args.resubmit_uncertain, journal_outage=args.journal_outage,
        uncertain_slot_hold=args.uncertain_slot_hold,
        keep_uploads=args.keep_uploads,
        wal=args.wal if args.wal is not None else default_wal_path(args.journal),  # '' is refused, not ignored
    )  # fmt: skip
    scale = args.poll_scale
    # With a time-scaled sandbox, retries scale too: an unscaled backoff after a 429 would idle a
    # worker for a hundred "API seconds" and stall the fleet below the rate limit.
    retry = RetryPolicy(max_retries=8, initial_delay=0.5 * scale, max_delay=8.0 * scale) if scale else None
    receiver = callback_receiver(callbacks)
    telemetry = await start_telemetry(args.metrics_port)
    try:
        client, source = _client_and_source(args, retry=retry, callbacks=receiver, telemetry=telemetry)
    except BaseException:
        await telemetry.stop()
        raise
    # The worker's log (lost leases, journal outages, write-ahead trouble) goes to standard error.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("evolink: %(levelname)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    handler.addFilter(_not_the_fan_outs_leftovers)
    logger = logging.getLogger("evolink_async")  # the SDK's records: warnings go to stderr
    logger.addHandler(handler)
    listener = None
    try:
        # The receiver listens from before the first submit to the end of the run, Ctrl-C included.
        listener = await start_listening(receiver, callbacks)
        async with client, PgJournal(args.journal, connections=4, outage=args.journal_outage) as journal:
            worker = Worker(client, journal, options, on_event=_print_event(sys.stdout, args.json), source=source)
            try:
                summary = await worker.run()
            finally:
                if args.json:
                    print(json_line({"kind": "summary", **worker.summary.to_json()}), file=sys.stderr, flush=True)
                else:  # with the events, for people; a stop's cause is the one `evolink:` line on stderr
                    print(printable(_summary_line(worker.summary)), flush=True)
    finally:
        logger.removeHandler(handler)
        if listener is not None:
            await listener.stop()
        # Last: the client's close ended the spans of tasks left open (interrupted); they are flushed now.
        await telemetry.stop()
    return EXIT_FAILED if summary.failed or summary.uncertain or summary.stopped_reason else EXIT_OK


def _not_the_fan_outs_leftovers(record: logging.LogRecord) -> bool:
    """Drop the fan-out's "left with N task(s) unfinished" warning: it points at the fan-out's summary,
    which a worker does not show; the worker settles those inputs in the journal and says so itself."""
    return record.name != "evolink_async.fan_out.leftovers"  # the README names it


def _summary_line(summary: WorkerSummary) -> str:
    """What one worker did, in one line (``--json``: the summary object on standard error instead)."""
    credits = ("credits not reported by the server" if summary.credits_reserved is None
               else f"{summary.credits_reserved:g} credits reserved")  # fmt: skip
    counts = [f"{summary.claimed} claimed", f"{summary.submitted} submitted", f"{summary.reattached} resumed",
              f"{summary.completed} completed", f"{summary.downloaded} downloaded", f"{summary.failed} failed"]
    counts += [f"{n} {what}" for n, what in ((summary.uncertain, "uncertain"), (summary.released, "given back"),
                                             (summary.lost_leases, "lease(s) lost"),
                                             (summary.not_submitted, "not submitted")) if n]  # fmt: skip
    stopped = f"; stopped submitting: {summary.stopped_reason}" if summary.stopped_reason else ""
    interrupted = " (interrupted)" if summary.interrupted else ""
    return f"worker {summary.worker}{interrupted}: {', '.join(counts)}; {credits}{stopped}"


def _client_and_source(
    args: argparse.Namespace, *, retry: RetryPolicy | None, callbacks: CallbackReceiver | None, telemetry: RunTelemetry
) -> tuple[Client[Any], PlannedSource[Any] | None]:
    """The worker's client and what its planned lines become (``None``: the manifest's image requests)."""
    poll_policy = PollPolicy().scaled(args.poll_scale) if args.poll_scale else None
    if args.protocol == "evolink":
        client = EvolinkClient(_api_key(args), base_url=args.base_url, files_base_url=args.files_base_url,
                               poll_policy=poll_policy, retry=retry, callbacks=callbacks,
                               **telemetry.client_options)  # fmt: skip
        return client, None
    args.key_env = "MJ_PROXY_API_KEY"  # what a missing or refused key's message names
    if args.files_base_url is not None:
        raise ValidationError("--files-base-url", "is the Evolink Files API: a Midjourney batch has no uploads")
    mj = MidjourneyClient(_api_key(args), base_url=args.base_url, path_prefix=args.path_prefix, auth=args.auth,
                          poll_policy=poll_policy, retry=retry, callbacks=callbacks,
                          **telemetry.client_options)  # fmt: skip
    return mj, ImagineSource(bot=Bot(args.bot), mode=SpeedMode(args.mode) if args.mode else None)


async def _status(args: argparse.Namespace) -> int:

    async with PgJournal(args.journal, connections=1, connect_timeout=SHORT_CONNECT) as journal:
        if args.watch is None:
            print(_status_text(await fleet_status(journal), as_json=args.json))
            return EXIT_OK
        if args.json or not sys.stdout.isatty():
            while True:
                status = await fleet_status(journal)
                print(_status_text(status, as_json=args.json), flush=True)
                if status.remaining == 0:
                    return EXIT_OK
                await anyio.sleep(args.watch)
        return await _live_status(journal, args.watch)


def _status_text(status: Any, *, as_json: bool) -> str:
    """The status as one JSON line or as lines for people (worker ids are outside text: escaped)."""
    if as_json:
        return json_line(status.to_json())
    # The uncertain inputs' advice names the library's option: here, its flag.
    return "\n".join(printable(cli_message(line, Remedy.RESUBMIT_UNCERTAIN)) for line in status.lines())


async def _live_status(journal: Any, interval: float) -> int:
    from rich.live import Live
    from rich.text import Text


    with Live(Text("reading the journal ..."), refresh_per_second=4) as live:
        while True:
            status = await fleet_status(journal)
            shown = _status_text(status, as_json=False)
            if status.remaining == 0:  # the last frame stays on the screen: no "Ctrl-C" for a watch that ended
                live.update(Text(shown + f"\n(finished; read at {time.strftime('%H:%M:%S')})"))
                return EXIT_OK
            live.update(Text(shown + f"\n(updated {time.strftime('%H:%M:%S')}; Ctrl-C to stop)"))
            await anyio.sleep(interval)


async def _export(args: argparse.Namespace) -> int:

    if args.output is not None:  # '' is refused, not standard output
        check_path("--output", args.output, what="a file path")
    output = await anyio.open_file(args.output, "w", encoding="utf-8") if args.output is not None else None
    try:
        async with PgJournal(args.journal, connections=1, connect_timeout=SHORT_CONNECT) as journal:
            async for row in journal.entries():
                line = json_line(_export_row(row), sort_keys=False) + "\n"
                if output is not None:
                    await output.write(line)
                else:
                    sys.stdout.write(line)
    finally:
        if output is not None:
            await output.aclose()
    sys.stdout.flush()
    return EXIT_OK


def _export_row(row: dict[str, Any]) -> dict[str, Any]:
    status = row["status"]
    # The states `batch status` shows: a completed task with an error is a download that failed.
    outcome = "not_submitted" if status == "pending_submit" and row["error_code"] == "not_submitted" else \
        "pending" if status == "pending_submit" else \
        "download_failed" if status == "completed" and row["error_code"] else status  # fmt: skip
    data: dict[str, Any] = {"key": row["key"], "outcome": outcome, "task_id": row["task_id"],
                            "result_urls": json.loads(row["result_urls"]),
                            "result_paths": json.loads(row["result_paths"]),
                            "credits_reserved": row["credits_reserved"], "submitted_by": row["submitted_by"],
                            "finished_by": row["finished_by"]}  # fmt: skip
    if row["error_code"]:
        data["error"] = {"code": row["error_code"], "message": row["error_message"]}
    if row["line"]:
        data["input"] = json.loads(row["line"])
    return data
