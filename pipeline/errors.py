"""The project's error type for user mistakes (bad file, bad config, bad data).

The CLI and the stage entry points print a ``PipelineError`` as one line and exit 1;
anything else is a bug and keeps its traceback.
"""


class PipelineError(Exception):
    """A user-facing error: the message names the file, line or key and what is wrong."""


def run_main(main, argv=None) -> None:
    """Run a ``main(argv)`` entry point: a PipelineError becomes one line on stderr and exit 1."""
    import sys

    try:
        code = main(argv)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
