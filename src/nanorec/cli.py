"""The `nanorec` command line: questions to a trained pipeline, never retraining.

Each command lives in its own module and is registered on `app` here.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import typer

from nanorec import leaderboard, submission
from nanorec.commands import inspect, recommend
from nanorec.errors import NanorecError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Ask questions of the pipeline's artifacts: recommend, inspect, compare.",
)


@app.callback()
def main() -> None:
    """nanorec: next-item recommendation with a packed transformer."""
    from nanorec.logs import setup_logging

    setup_logging()
    # The faiss loader logs each SIMD build that it tries at INFO, several lines
    # per process, which would bury the command's own output.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)


def report_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command so that errors the user can fix end it with one line.

    A NanorecError or an OSError prints "Error: MESSAGE" on stderr and exits
    with status 1, the status of the commands' own error handling. Any other
    exception is a bug and keeps its traceback.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (NanorecError, OSError) as err:
            typer.echo(f"Error: {err}", err=True)
            raise typer.Exit(1) from err

    return wrapper


app.command("recommend")(report_errors(recommend.main))
app.command("inspect")(report_errors(inspect.main))
app.command("validate-submission")(report_errors(submission.main))
app.command("leaderboard")(report_errors(leaderboard.main))


if __name__ == "__main__":
    app()
