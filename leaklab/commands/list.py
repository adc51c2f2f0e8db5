"""``leaklab list``: the scenarios leaklab can find, with variants and parameters."""

from __future__ import annotations

import json

import click

from leaklab import scenario as scenario_mod


@click.command("list")
@click.option(
    "--scenarios",
    "scenario_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Extra folder to search (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the listing as JSON.")
def command(scenario_dirs: tuple[str, ...], as_json: bool) -> None:
    """List scenarios: name, variants, parameters and description.

    Searched in order: --scenarios, $LEAKLAB_SCENARIOS, ./scenarios, the built-in ones.
    """
    entries = [
        scenario_mod.describe(path) for path in scenario_mod.discover(scenario_dirs).values()
    ]
    if as_json:
        click.echo(json.dumps(entries, indent=2, default=repr))
        return
    if not entries:
        click.echo(
            "no scenarios found; searched: "
            + ", ".join(map(str, scenario_mod.search_dirs(scenario_dirs)))
        )
        return
    for entry in entries:
        click.echo(click.style(entry["name"], bold=True) + f"  {entry['description']}")
        also = {
            name: [a for a, target in entry.get("aliases", {}).items() if target == name]
            for name in entry["variants"]
        }
        for name, doc in entry["variants"].items():
            label = name + (f" ({', '.join(also[name])})" if also[name] else "")
            click.echo(f"    variant {label:<28} {doc.splitlines()[0] if doc else ''}")
        for name, info in entry["params"].items():
            help_text = f"  {info['help']}" if info["help"] else ""
            click.echo(f"    --param {name}={info['default']!s:<12} ({info['type']}){help_text}")
        click.echo(f"    {entry['path']}")
