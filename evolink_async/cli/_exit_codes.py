"""The command line's exit codes, in one place (``_main.exit_code_for`` maps errors onto them).

Tiny and import-free: ``cli/__init__`` needs one of them before anything else has loaded.
"""

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE"]

EXIT_OK = 0
#: An input (or the task asked about) failed; the summary says which.
EXIT_FAILED = 1
#: A bad argument or option, a missing file, a wrong URL: fixed by changing the command.
EXIT_USAGE = 2
#: Ctrl-C (128 + SIGINT): the run stopped, and a re-run resumes it.
EXIT_INTERRUPTED = 130
#: 128 + SIGPIPE, what a shell reports for a writer whose reader went away (``| head``).
EXIT_BROKEN_PIPE = 141
