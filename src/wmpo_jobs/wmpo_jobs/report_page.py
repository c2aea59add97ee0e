"""The WMPO loop's report as one HTML page: ``<run>/report.html``, every image a relative link.

  wmpo report runs/loop_demo/loop

The page shows success per round (the base policy and each round's policy on the held-out start
states, the imagined success during GRPO, and the imagination gap before and after GRPO, beyond
the bound flagged), ``success.png`` and each round's imagined-vs-real strips (written by the loop),
and the training curves read from the TensorBoard event files: behaviour cloning of the base
policy, the world model (pretraining and each round's alignment), the reward model and GRPO in
imagination, plotted to ``curves_*.png`` next to the page. The base policy's and the pretrained
world model's event files are found from loop_config.json (their checkpoint's training folder);
the rounds' under the run folder. The loop writes the page at the end of its report phase; the
command rebuilds it from what is on disk.
"""

import html
import json
import math
from datetime import UTC, datetime
from pathlib import Path

PAGE = "report.html"
# (file stem, heading, tag prefix): one figure per group, one plot per tag, one line per source
CURVES = (
    ("curves_bc", "Behaviour cloning (the base policy)", "bc/"),
    ("curves_world_model", "World model: pretraining and each round's alignment", "wm/"),
    ("curves_reward_model", "Reward model", "reward/"),
    ("curves_grpo", "GRPO in imagination", "wmpo/"),
)
EVENTS = "events.out.tfevents.*"


def _training_folder(checkpoint: Path) -> Path:
    """A checkpoint's training folder: <training>/checkpoints/<step> -> <training>."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint


def _candidates(run_dir: Path, configured: str, output: str) -> list[Path]:
    """Where a path from loop_config.json may be now: as written (relative to where the loop ran),
    and relative to the run folder the way it was to the configured ``output`` (so a run folder that
    was moved or renamed with its siblings, e.g. a ``wmpo loop-demo`` folder, still finds them)."""
    if not configured:
        return []
    candidates = [Path(configured)]
    out, path = Path(output).parts, Path(configured).parts
    if output and not Path(output).is_absolute() and not Path(configured).is_absolute():
        common = next((i for i, (a, b) in enumerate(zip(out, path, strict=False)) if a != b), min(len(out), len(path)))
        up = len(out) - common  # levels from the run folder up to the shared folder
        run = run_dir.resolve()
        if up <= len(run.parents):
            candidates.append((run if up == 0 else run.parents[up - 1]).joinpath(*path[common:]))
    return candidates


def event_folders(run_dir: Path) -> list[tuple[str, Path]]:
    """(source label, folder of event files): the base policy's and the pretrained world model's
    training (from loop_config.json), then each folder under the run, in order."""
    folders = []
    config_file = run_dir / "loop_config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    for key, label in (("policy", "base policy"), ("world_model", "pretrained")):
        for checkpoint in _candidates(run_dir, config.get(key, ""), config.get("output", "")):
            if (tb := _training_folder(checkpoint) / "tb").is_dir():
                folders.append((label, tb))
                break
    inside = sorted({path.parent for path in run_dir.rglob(EVENTS)})
    for folder in inside:
        source = folder.relative_to(run_dir).parent  # round_0/wm/tb -> round_0/wm
        first = source.parts[0] if source.parts else ""
        folders.append((first.replace("_", " ") if first.startswith("round_") else str(source) or ".", folder))
    return folders


def read_scalars(folder: Path) -> dict[str, tuple[list[int], list[float]]]:
    """tag -> (steps, values) of every scalar in a folder's event files (a resumed run's repeated
    steps keep their last value)."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={SCALARS: 0})
    events.Reload()
    scalars = {}
    for tag in events.Tags()["scalars"]:
        by_step = {event.step: event.value for event in events.Scalars(tag)}
        steps = sorted(by_step)
        scalars[tag] = (steps, [by_step[step] for step in steps])
    return scalars


def plot_curves(run_dir: Path) -> list[tuple[str, str, list[str]]]:
    """Write curves_<group>.png for every group with scalars; (file name, heading, sources) each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = [(label, read_scalars(folder)) for label, folder in event_folders(run_dir)]
    written = []
    for stem, heading, prefix in CURVES:
        tags = sorted({tag for _, scalars in sources for tag in scalars if tag.startswith(prefix)})
        path = run_dir / f"{stem}.png"
        if not tags:
            path.unlink(missing_ok=True)  # no stale plot from an earlier build
            continue
        columns = min(4, len(tags))
        rows = math.ceil(len(tags) / columns)
        figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
        used = []
        for axis, tag in zip(axes.flat, tags, strict=False):
            for label, scalars in sources:
                if tag in scalars:
                    steps, values = scalars[tag]
                    axis.plot(steps, values, "o-" if len(steps) <= 20 else "-", markersize=3, label=label)
                    used.append(label)
            axis.set_title(tag.removeprefix(prefix).replace("_", " "))
            axis.set_xlabel("iteration" if prefix == "wmpo/" else "step")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
        for axis in list(axes.flat)[len(tags) :]:
            axis.set_visible(False)
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append((path.name, heading, list(dict.fromkeys(used))))
    return written


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _rate(rate, interval=None) -> str:
    if rate is None:
        return "-"
    return f"{rate:.2f}" if interval is None else f"{rate:.2f} ({interval[0]:.2f}-{interval[1]:.2f})"


def _gap_cells(gap: dict | None) -> str:
    if not gap:
        return '<td colspan="3">-</td>'
    flag = ' class="beyond"' if gap.get("exceeded") else ""
    return (
        f"<td>{_rate(gap['imagined_rate'], gap.get('imagined_95ci'))}</td>"
        f"<td>{_rate(gap['real_rate'], gap.get('real_95ci'))}</td>"
        f"<td{flag}>{gap['gap']:+.2f} ({gap['episodes']} starts)</td>"
    )


def _image(run_dir: Path, name: str, alt: str, kind: str = "plot") -> str:
    """An <img> of a file under the run folder (a relative link), or a note that it is missing."""
    if not (run_dir / name).is_file():
        return f'<p class="missing">{_e(name)} is missing.</p>'
    return f'<a href="{_e(name)}"><img class="{kind}" src="{_e(name)}" alt="{_e(alt)}"></a>'


def success_table(summary: dict) -> str:
    head = (
        "<tr><th rowspan=2>policy</th><th rowspan=2>real success, held-out starts (95% CI)</th>"
        "<th rowspan=2>imagined success during GRPO</th><th rowspan=2>real success of the P rollouts</th>"
        "<th colspan=3>gap before GRPO (the P rollouts)</th><th colspan=3>gap after GRPO (held-out)</th>"
        "<th rowspan=2>deployed</th></tr>"
        "<tr><th>imagined</th><th>real</th><th>gap</th><th>imagined</th><th>real</th><th>gap</th></tr>"
    )
    rows = [
        f"<tr><td>base</td><td>{_rate(summary['base_success_rate'], summary.get('base_success_rate_95ci'))}</td>"
        '<td>-</td><td>-</td><td colspan="3">-</td><td colspan="3">-</td><td>-</td></tr>'
    ]
    for r in summary["rounds"]:
        deployed = "yes" if r.get("deployed") else "no"
        rows.append(
            f"<tr><td>round {_e(r['round'])}</td>"
            f"<td>{_rate(r['eval_success_rate'], r.get('eval_success_rate_95ci'))}</td>"
            f"<td>{_rate(r.get('imagined_success_rate'))}</td><td>{_rate(r.get('collected_success_rate'))}</td>"
            f"{_gap_cells(r.get('imagination_gap_before'))}{_gap_cells(r.get('imagination_gap_after'))}"
            f"<td>{deployed}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1400px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; } th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; }
th { background: #f0f0f0; } td { text-align: right; } td:first-child { text-align: left; }
.beyond { background: #fbd3d0; font-weight: bold; } .warning { color: #a00; font-weight: bold; }
.missing { color: #777; font-style: italic; } img { max-width: 100%; border: 1px solid #ddd; }
img.strip { width: 100%; image-rendering: pixelated; }
.note { color: #555; font-size: 0.9em; }
"""


def write_report_page(run_dir) -> Path:
    """Write <run_dir>/report.html (and its curves_*.png) from summary.json, the PNGs the loop
    wrote and the TensorBoard event files; returns the page's path."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    curves = plot_curves(run_dir)
    parts = [
        f"<h1>WMPO loop: {_e(summary['task'])}</h1>",
        f'<p class="note">{_e(run_dir)}, P = {_e(summary["budget_per_round"])} real episodes per round; '
        f"built {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
        '<a href="summary.json">summary.json</a>, <a href="report.md">report.md</a>.</p>',
    ]
    for r in summary["rounds"]:
        for when in ("before", "after"):
            gap = r.get(f"imagination_gap_{when}") or {}
            if gap.get("exceeded"):
                parts.append(f'<p class="warning">Round {_e(r["round"])} {when} GRPO: {_e(gap.get("message", ""))}</p>')
    parts += [
        "<h2>Success per round: real and imagined</h2>",
        success_table(summary),
        f'<p class="note">Imagination gap: imagined minus real success on the same start states (the policy '
        f"acting in the aligned world model from the real start frames or, as GRPO starts, real keyframes; "
        f"judged by the calibrated reward "
        f"model); beyond &plusmn;{summary.get('gap_bound', 0):.2f} it is flagged.</p>",
        _image(run_dir, "success.png", "success per round, imagined success per GRPO iteration, imagination gap"),
        "<h2>Imagined vs real</h2>",
    ]
    if not summary["rounds"]:
        parts.append('<p class="missing">No round finished yet.</p>')
    for r in summary["rounds"]:
        parts += [
            f"<h3>Round {_e(r['round'])}</h3>",
            '<p class="note">A real evaluation episode (top row) and the aligned world model\'s imagination '
            "of it under the same actions (bottom row).</p>",
            _image(run_dir, f"round_{r['round']}/strips.png", f"round {r['round']}: real vs imagined", "strip"),
        ]
    parts.append("<h2>Training curves</h2>")
    if not curves:
        parts.append('<p class="missing">No TensorBoard event files found.</p>')
    for name, heading, sources in curves:
        parts += [
            f"<h3>{_e(heading)}</h3>",
            f'<p class="note">{_e(", ".join(sources))}</p>',
            _image(run_dir, name, heading),
        ]
    page = run_dir / PAGE
    body = "\n".join(parts)
    text = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>WMPO loop: {_e(summary['task'])}</title><style>{STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
    tmp = page.with_suffix(".html.tmp")
    tmp.write_text(text)
    tmp.replace(page)
    return page
