"""Writing an evaluation run: ``results.csv``, ``results.json`` and ``report.html``.

``report.html`` links its pictures from ``report_files/`` beside it (relative links, so the
output folder can be moved or zipped as a whole); histograms are inline SVG.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import numpy as np
from PIL import Image

from .case_metrics import CaseResult, load_rgb
from .figures import annotate_faces, annotate_generation, face_thumbnail, histogram_svg, identity_hex
from .single_image import placement_json
from .summary import BENCH_METRICS

NA = "n/a"
CSV_COLUMNS = (
    "id",
    "prompt",
    "generated",
    "references",
    "gt_faces",
    "generated_faces",
    "sim_gt",
    "sim_ref",
    "copy_paste",
    "clip_i",
    "clip_t",
    "aesthetic",
    "non_matched_gt",
    "non_matched_ref",
    "in_box",
    "mean_iou",
    "missing",
    "wrong_box",
    "duplicates",
    "strangers",
    "bench_kept",
    "notes",
)


def _num(value, digits: int = 4):
    return NA if value is None else round(float(value), digits)


def case_row(r: CaseResult) -> dict:
    """One flat CSV row; absent values are ``"n/a"``."""
    p = r.placement
    return {
        "id": r.case.id,
        "prompt": r.case.prompt,
        "generated": str(r.generated_path) if r.generated_path else NA,
        "references": len(r.case.ref_paths),
        "gt_faces": len(r.gt_faces),
        "generated_faces": len(r.gen_faces) if r.generated_path else NA,
        **{key: _num(getattr(r, key)) for key, _ in BENCH_METRICS},
        "non_matched_gt": _num(r.non_matched_gt),
        "non_matched_ref": _num(r.non_matched_ref),
        "in_box": NA if p is None else f"{p.n_in_box}/{len(p.identities)}",
        "mean_iou": NA if p is None else _num(p.mean_iou),
        "missing": NA if p is None else p.n_missing,
        "wrong_box": NA if p is None else sum(q.in_box_of is not None for q in p.identities),
        "duplicates": NA if p is None else len(p.duplicates),
        "strangers": NA if p is None else len(p.strangers),
        "bench_kept": r.bench_valid,
        "notes": "; ".join(r.notes),
    }


def _box(b):
    return None if b is None else [round(float(v), 2) for v in b]


def case_json(r: CaseResult) -> dict:
    """Everything about one case, JSON-ready (``None`` where absent)."""
    p = r.placement

    def faces(fs):
        return [{"box": _box(f.box), "score": round(f.score, 4)} for f in fs]

    return {
        "id": r.case.id,
        "prompt": r.case.prompt,
        "generated": str(r.generated_path) if r.generated_path else None,
        "generated_size": r.gen_size,
        "gt_size": r.gt_size,
        "references": [str(x) for x in r.case.ref_paths],
        "reference_faces": [None if f is None else faces([f])[0] for f in r.ref_faces],
        "gt_faces": faces(r.gt_faces),
        "generated_faces": faces(r.gen_faces),
        "target_boxes": None if r.targets is None else [_box(b) for b in r.targets],
        **{key: getattr(r, key) for key, _ in BENCH_METRICS},
        "non_matched_gt": r.non_matched_gt,
        "non_matched_ref": r.non_matched_ref,
        "bench_kept": r.bench_valid,
        "placement": None if p is None else placement_json(p),
        "notes": r.notes,
    }


def write_csv(results: list[CaseResult], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for r in results:
            writer.writerow(case_row(r))


def write_json(results: list[CaseResult], summary: dict, settings: dict, notes: list[str], path: Path) -> None:
    doc = {"settings": settings, "notes": notes, "summary": summary, "cases": [case_json(r) for r in results]}
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")


def _save(image: Image.Image, folder: Path, name: str) -> str:
    image.save(folder / name, quality=88)
    return f"{folder.name}/{name}"


def _case_images(r: CaseResult, folder: Path) -> dict:
    """Write the case's pictures; returns relative links: ``refs`` (list), ``generated``, ``gt``."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in r.case.id)
    links: dict = {"refs": []}
    for k, path in enumerate(r.case.ref_paths):
        face = r.ref_faces[k] if k < len(r.ref_faces) else None
        img = Image.fromarray(load_rgb(path, "reference image"))
        thumb = face_thumbnail(img, None if face is None else face.box, k)
        links["refs"].append(_save(thumb, folder, f"{stem}_ref{k + 1}.jpg"))
    if r.generated_path is not None:
        gen = Image.fromarray(load_rgb(r.generated_path, "generated image"))
        boxes = np.array([f.box for f in r.gen_faces]).reshape(-1, 4)
        links["generated"] = _save(annotate_generation(gen, r.targets, boxes, r.placement), folder, f"{stem}_gen.jpg")
    if r.case.gt_path is not None:
        gt = Image.fromarray(load_rgb(r.case.gt_path, "GT image"))
        boxes = np.array([f.box for f in r.gt_faces]).reshape(-1, 4)
        links["gt"] = _save(annotate_faces(gt, boxes), folder, f"{stem}_gt.jpg")
    return links


def _fmt(value, digits: int = 3) -> str:
    return NA if value is None else f"{value:.{digits}f}"


def _summary_html(summary: dict) -> str:
    rows = []
    for key, title in BENCH_METRICS:
        s = summary["bench"][key]
        if s is None:
            rows.append(f"<tr><th>{title}</th><td class='na'>{NA}</td><td>0</td><td></td><td></td><td></td></tr>")
            continue
        how = "median (IQR rule removed >50%)" if s["fallback"] else f"{s['removed']} outliers removed"
        rows.append(
            f"<tr><th>{title}</th><td><b>{s['mean']:.4f}</b></td><td>{s['count']}</td><td>{s['std']:.4f}</td>"
            f"<td>{s['median']:.4f}</td><td>{how}</td></tr>"
        )
    bench = (
        "<table class='summary'><tr><th>metric</th><th>value</th><th>n</th><th>std</th><th>median</th>"
        "<th>aggregation</th></tr>" + "".join(rows) + "</table>"
    )
    p = summary["placement"]
    if p is None:
        place = f"<p class='na'>placement: {NA} (no case had target boxes and usable references)</p>"
    else:
        items = [
            ("identities in their box", f"{p['in_box_rate']:.1%}"),
            ("mean IoU (missing = 0)", f"{p['mean_iou']:.3f}"),
            ("missing identities", f"{p['missing_rate']:.1%}"),
            ("in another identity's box", f"{p['wrong_box_rate']:.1%}"),
            ("mean centre distance / box diagonal (present only)", _fmt(p["mean_center_distance"])),
            ("duplicated faces per image", f"{p['duplicates_per_image']:.2f}"),
            ("unmatched extra faces per image", f"{p['strangers_per_image']:.2f}"),
            ("cases fully correct", f"{p['perfect_case_rate']:.1%}"),
        ]
        place = (
            "<table class='summary'><tr><th colspan=2>placement accuracy (strict; "
            f"{p['identities']} identities in {p['cases']} cases)</th></tr>"
            + "".join(f"<tr><th>{html.escape(a)}</th><td><b>{b}</b></td></tr>" for a, b in items)
            + "</table>"
        )
    return bench + place


def _case_html(r: CaseResult, links: dict) -> str:
    refs = "".join(f"<img src='{html.escape(src)}' alt='reference {k + 1}'>" for k, src in enumerate(links["refs"]))
    gen = (
        f"<img class='gen' src='{html.escape(links['generated'])}' alt='generated'>"
        if "generated" in links
        else "<div class='missing'>generated image not found</div>"
    )
    gt = f"<img class='gt' src='{html.escape(links['gt'])}' alt='GT'>" if "gt" in links else ""
    metrics_row = "".join(f"<td>{title}<br><b>{_fmt(getattr(r, key))}</b></td>" for key, title in BENCH_METRICS)
    ident = ""
    if r.placement is not None:
        lines = []
        for q in r.placement.identities:
            color = identity_hex(q.identity)
            verdict = (
                "missing"
                if q.missing
                else "in box"
                if q.in_box
                else f"in box {q.in_box_of + 1}"
                if q.in_box_of is not None
                else "outside"
            )
            cls = "ok" if q.in_box else "bad"
            lines.append(
                f"<tr><td><span class='dot' style='background:{color}'></span>{q.identity + 1}</td>"
                f"<td>{_fmt(q.similarity)}</td><td>{q.iou:.2f}</td><td>{_fmt(q.center_distance, 2)}</td>"
                f"<td class='{cls}'>{verdict}</td></tr>"
            )
        extra = f"duplicates: {len(r.placement.duplicates)}, extra faces: {len(r.placement.strangers)}"
        ident = (
            "<table class='ident'><tr><th>id</th><th>cos</th><th>IoU</th><th>dist</th><th>placement</th></tr>"
            + "".join(lines)
            + f"</table><div class='small'>{extra}</div>"
        )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in r.notes)
    kept = "" if r.bench_valid else " <span class='bad'>(dropped by the bench rule)</span>"
    return (
        f"<section class='case'><h3>{html.escape(r.case.id)}{kept}</h3>"
        f"<p class='prompt'>{html.escape(r.case.prompt)}</p>"
        f"<div class='row'><div class='refs'>{refs}</div>{gen}{gt}<div class='side'>"
        f"<table class='metrics'><tr>{metrics_row}</tr></table>{ident}<ul class='notes'>{notes}</ul>"
        "</div></div></section>"
    )


STYLE = """
body{font-family:sans-serif;margin:16px;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:6px 12px 6px 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
.summary{display:inline-table;vertical-align:top}
.hists svg{margin:6px;border:1px solid #ddd;background:#fafafa}
.case{border-top:2px solid #ddd;padding:6px 0}
.case h3{margin:4px 0}.prompt{margin:2px 0 6px;color:#555;font-size:13px}
.row{display:flex;gap:10px;align-items:flex-start;flex-wrap:wrap}
.refs{display:flex;flex-direction:column;gap:4px}.refs img{width:96px;height:96px}
.gen{width:420px;height:auto}.gt{width:220px;height:auto}
.metrics td{text-align:center;font-size:12px}
.dot{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:4px}
.ok{color:#1a7f37;font-weight:bold}.bad{color:#c62828;font-weight:bold}.na{color:#888}
.missing{width:300px;height:200px;background:#eee;display:flex;align-items:center;justify-content:center;color:#c62828}
.small,.notes{font-size:12px;color:#555}
"""


def write_html(results: list[CaseResult], summary: dict, settings: dict, notes: list[str], out_dir: Path) -> Path:
    """Write ``report.html`` and its pictures into ``out_dir``; returns the HTML path."""
    files = out_dir / "report_files"
    files.mkdir(parents=True, exist_ok=True)
    hists = [
        histogram_svg([r.sim_gt for r in results if r.bench_valid], "Sim(GT)", -0.2, 1.0),
        histogram_svg([r.sim_ref for r in results if r.bench_valid], "Sim(Ref)", -0.2, 1.0),
        histogram_svg([r.copy_paste for r in results if r.bench_valid], "CP", -1.0, 1.0),
        histogram_svg(
            [q.iou for r in results if r.placement for q in r.placement.identities],
            "placement IoU per identity",
            0.0,
            1.0,
        ),
    ]
    cases = "".join(_case_html(r, _case_images(r, files)) for r in results)
    run_notes = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    setting = ", ".join(f"{html.escape(str(k))}={html.escape(str(v))}" for k, v in settings.items())
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>AnyPhoto evaluation</title><style>{STYLE}</style>"
        f"</head><body><h1>AnyPhoto evaluation</h1><p class='small'>{setting}</p>"
        f"<p>{summary['cases']} cases, {summary['generated_found']} generated images found, "
        f"{summary['bench_kept']} kept by the MultiID-Bench rule ({summary['bench_dropped']} dropped: a reference "
        f"or the generated image had no face).</p><ul class='notes'>{run_notes}</ul>"
        f"{_summary_html(summary)}<div class='hists'>{''.join(hists)}</div>"
        f"<h2>Cases</h2><p class='small'>Dashed boxes Tk: target box of identity k. Solid boxes: detected faces, "
        f"labelled with the identity credited and its cosine to the reference; 'dup k' = duplicate of k, "
        f"'?' = matches no reference. Right: GT with its detected faces.</p>{cases}</body></html>"
    )
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
