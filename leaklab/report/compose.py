"""The report's content: which sections, in which order, saying what. Renderers
(Markdown, HTML) only decide how it looks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leaklab import units
from leaklab.analysis.growth import BASELINE_DEFINITION
from leaklab.kinds import EventKind, Status
from leaklab.report import chains, tables
from leaklab.report.document import Bullets, Document, Figure, Notice, Para, Pre, Section, Table
from leaklab.report.limits import MemoryLimit
from leaklab.report.subject import ReportRun


@dataclass
class Charts:
    """Chart files by what they show (absent when the runs have nothing to show)."""

    before_after: Path | None = None
    growth_rates: Path | None = None
    memory: dict[str, Path] = field(default_factory=dict)  # role -> file
    sawtooth: dict[str, Path] = field(default_factory=dict)
    top_growth: dict[str, Path] = field(default_factory=dict)
    chain_graphs: dict[str, list[Path | None]] = field(
        default_factory=dict
    )  # role -> one per chain


def title(runs: Sequence[ReportRun]) -> str:
    if len(runs) == 2:
        before, after = runs
        if before.scenario == after.scenario:
            return (
                f"Memory report: {before.scenario}, {before.variant or 'before'} vs "
                f"{after.variant or 'after'}"
            )
        return f"Memory report: {before.name} vs {after.name}"
    return f"Memory report: {runs[0].name}"


def notices(runs: Sequence[ReportRun]) -> list[Notice]:
    """Runs that did not complete, said first: their numbers cover only part of the plan."""
    out: list[Notice] = []
    for r in runs:
        if r.status != Status.COMPLETED and r.analysis.notes:
            out.append(Notice(f"{r.label}: {r.analysis.notes[0]}."))
        for problem in r.run.warnings:
            out.append(Notice(f"{r.label}: {problem}", level="info"))
    return out


def _summary(runs: Sequence[ReportRun], charts: Charts, limits: Sequence[MemoryLimit]) -> Section:
    section = Section("Summary")
    for r in runs:
        section.blocks.append(
            Para(
                " ".join(r.analysis.verdict.reasons) or "no reasons given",
                strong=f"{r.label}: {r.analysis.label}.",
            )
        )
    if len(runs) == 2:
        before, after = runs
        if charts.before_after:
            section.blocks.append(
                Figure(
                    charts.before_after,
                    f"RSS before and after, {before.scenario}",
                    "RSS of both runs on the same axes, by time and by steps completed; "
                    "dashed lines are the fitted trends.",
                )
            )
        comparison = tables.comparison_table(before, after, limits)
        comparison.colours = ["", before.colour, after.colour]
        section.blocks.append(comparison)
    elif charts.memory.get(runs[0].role):
        section.blocks.append(_memory_figure(runs[0], charts.memory[runs[0].role]))
    return section


def _memory_figure(r: ReportRun, path: Path) -> Figure:
    return Figure(
        path,
        f"Memory over time, {r.label}",
        "Process memory (top) and the Python-level signal (bottom); shaded stretches (setup, "
        "each process's warm-up) are not analysed; dashed lines are the fitted trends.",
    )


def _growth(runs: Sequence[ReportRun], charts: Charts) -> Section:
    section = Section("Growth")
    table = tables.growth_table(runs)
    if not table.rows:
        section.blocks.append(
            Para("No memory signal has samples after the warm-up, so no growth could be measured.")
        )
        return section
    section.blocks.append(table)
    if charts.growth_rates:
        section.blocks.append(
            Figure(
                charts.growth_rates,
                "Growth rate per run with 95% confidence interval",
                "Whiskers are the 95% confidence interval; growth inside the grey band is "
                "below the rate the verdict counts as a leak.",
            )
        )
    return section


def _over_time(runs: Sequence[ReportRun], charts: Charts) -> Section | None:
    if len(runs) < 2:
        return None
    figures = [_memory_figure(r, charts.memory[r.role]) for r in runs if r.role in charts.memory]
    return Section("Memory over time", list(figures)) if figures else None


def _restarts(runs: Sequence[ReportRun], charts: Charts, limits: Sequence[MemoryLimit]) -> Section:
    section = Section("Memory restart behaviour")
    section.blocks.append(tables.restart_behaviour_table(runs, limits))
    for r in runs:
        _add_run_figure(
            section,
            charts.sawtooth,
            r,
            "Recycling sawtooth",
            "RSS of each process generation (gaps: no process serving); triangles mark "
            "restarts, the dashed red line is the limit, black dashes each generation's "
            "fitted growth.",
        )
    return section


def _add_run_figure(
    section: Section, drawn: dict[str, Path], r: ReportRun, title: str, caption: str
) -> None:
    """Run ``r``'s chart from ``drawn`` (a chart kind, by run role), where it was drawn."""
    if r.role in drawn:
        section.blocks.append(Figure(drawn[r.role], f"{title}, {r.label}", caption))


def _system_metrics(runs: Sequence[ReportRun], plan: dict[str, Any] | None) -> Section | None:
    """What recycling costs: measured in recycled runs, predicted from every run's growth."""
    if not any(r.recycling is not None or r.prediction is not None for r in runs):
        return None
    section = Section("System metrics under recycling", [tables.system_metrics_table(runs, plan)])
    notes = [
        f"{r.label}: {note}"
        for r in runs
        if r.prediction is not None
        for note in r.prediction.notes
    ]
    if notes:
        section.blocks.append(Bullets(notes))
    return section


def _generations(runs: Sequence[ReportRun]) -> Section | None:
    """A program's runtime heap (Node.js: JS heap or native) and, for a run that was restarted
    (by leaklab or PM2), each generation and whether memory goes back down after a restart."""
    from leaklab.analysis.generations import generations_report
    from leaklab.analysis.heap import heap_split

    blocks: list[Any] = []
    for r in runs:
        split = heap_split(r.run)
        if split is not None:
            blocks.append(Para(split.sentence(), strong=f"{r.label}, JS heap or native:"))
        if not r.run.events_of(EventKind.RESTART):
            continue
        report = generations_report(r.run)
        if not report.generations:
            continue
        rows = [
            [
                str(g.generation),
                str(g.pid or ""),
                units.format_size(g.rss_start),
                units.format_size(g.rss_peak),
                units.format_growth(g.bytes_per_h, "bytes", "h", signed=True),
                f"{g.percent_per_h:+,.0f}%/h",
            ]
            for g in report.generations
        ]
        blocks.append(
            Table(
                [
                    "generation",
                    "pid",
                    "memory after the (re)start",
                    "peak",
                    "growth within",
                    "growth %/h",
                ],
                rows,
                caption=f"Process generations, {r.label}",
                key=f"generations_{r.role}",
                text_columns=2,
            )
        )
        if report.creep_bytes_per_restart == report.creep_bytes_per_restart:  # not NaN
            finding = (
                "memory does not go back down after a restart (baseline creep)"
                if report.creeps
                else "no baseline creep"
            )
            blocks.append(
                Para(
                    f"{report.creep_text()}: {finding}.",
                    strong=f"{r.label}, memory after each restart:",
                )
            )
    return Section("Process generations and runtime heap", blocks) if blocks else None


def _what_grows(runs: Sequence[ReportRun], charts: Charts) -> Section:
    """Growing types, growing sites, and the chains that hold them, per run."""
    section = Section("What grows and who holds it")
    for r in runs:
        attr = r.attribution
        if not (attr.top_types or attr.top_sites or attr.chains):
            section.blocks.append(Para("; ".join(attr.notes) + ".", strong=f"{r.label}:"))
            continue
        _add_run_figure(
            section,
            charts.top_growth,
            r,
            "Growing types and allocation sites",
            "Types by objects added per step; sites by bytes allocated and still held per step.",
        )
        if attr.top_types:
            section.blocks.append(tables.types_table(r))
        if attr.top_sites:
            section.blocks.append(tables.sites_table(r))
        graphs = charts.chain_graphs.get(r.role, [])
        for i, chain in enumerate(attr.chains):
            section.blocks.append(
                Pre(
                    chains.chain_text(chain),
                    title=f"Retention chain, {r.label}: {chain.get('type')}",
                )
            )
            graph = graphs[i] if i < len(graphs) else None
            if graph is not None:
                section.blocks.append(Figure(graph, f"Retention graph of {chain.get('type')}"))
    return section


def _provenance(runs: Sequence[ReportRun]) -> Section:
    table = tables.runs_table(runs)
    table.colours = [""] + [r.colour for r in runs]
    return Section("Runs", [table])


def _notes(runs: Sequence[ReportRun]) -> Section:
    items: list[str] = []
    for r in runs:
        items += [f"{r.label}: {note}" for note in r.analysis.notes]
    items.append(f"Baseline: {BASELINE_DEFINITION}. Sizes are decimal (1 MB = 10^6 bytes).")
    return Section("Notes", [Bullets(items)])


def compose(
    runs: Sequence[ReportRun],
    charts: Charts,
    limits: Sequence[MemoryLimit],
    plan: dict[str, Any] | None = None,
) -> Document:
    """The whole report, in the order an incident write-up reads."""
    sections = [_summary(runs, charts, limits), _growth(runs, charts)]
    over_time = _over_time(runs, charts)
    if over_time:
        sections.append(over_time)
    sections.append(_restarts(runs, charts, limits))
    generations = _generations(runs)
    if generations:
        sections.append(generations)
    metrics = _system_metrics(runs, plan)
    if metrics:
        sections.append(metrics)
    sections.append(_what_grows(runs, charts))
    sections += [_provenance(runs), _notes(runs)]
    subtitle = (
        "Runs: " + ", ".join(f"{r.label} = {r.path.name}" for r in runs)
        if len(runs) > 1
        else f"Run: {runs[0].path.name}"
    )
    return Document(title(runs), subtitle, notices(runs), sections)
