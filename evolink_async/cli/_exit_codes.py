"""The command line's exit codes, in one place (``_main.exit_code_for`` maps errors onto them).

Tiny and import-free: ``cli/__init__`` needs one of them before anything else has loaded.
"""

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE"]

EXIT_OK = 0
#: An input (or the task asked about) failed; the summary says which. (A server that stops answering
#: in the middle of a run fails the inputs it leaves, each listed: this code too.)
EXIT_FAILED = 1
#: A bad argument or option, a missing file, a wrong key, a wrong URL or a server the command cannot
#: reach at all: fixed by changing the command (or the network), and nothing was submitted. A
#: script tells it from ``EXIT_FAILED`` (inputs ran, some failed: the summary lists them).
EXIT_USAGE = 2
#: Ctrl-C (128 + SIGINT): the run stopped, and a re-run resumes it.
EXIT_INTERRUPTED = 130
#: 128 + SIGPIPE, what a shell reports for a writer whose reader went away (``| head``).
EXIT_BROKEN_PIPE = 141
