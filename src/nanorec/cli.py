"""The `nanorec` command line: questions to a trained pipeline, never retraining.

Each command lives in its own module and is registered on `app` here.
"""

from __future__ import annotations

import typer

from nanorec import leaderboard, submission
from nanorec.commands import inspect, recommend

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


app.command("recommend")(recommend.main)
app.command("inspect")(inspect.main)
app.command("validate-submission")(submission.main)
app.command("leaderboard")(leaderboard.main)


if __name__ == "__main__":
    app()
