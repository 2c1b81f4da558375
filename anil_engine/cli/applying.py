"""`export`, `adapt`, `classify` and `predict`: a model applied to the user's own images."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from anil_engine.cli._common import add_device, add_head, add_quiet, emit_json, folder_or_zip, images_job, warn


def register(sub: argparse._SubParsersAction) -> None:
    x = sub.add_parser("export", help="export the frozen trunk of a checkpoint to ONNX (verified)")
    x.add_argument("--checkpoint", required=True, help="checkpoint file (.pt)")
    x.add_argument("--out", required=True, help="ONNX file to write")
    x.set_defaults(run=cmd_export)

    a = sub.add_parser("adapt", help="adapt the head to a support folder and export the classifier to ONNX")
    a.add_argument("--checkpoint", required=True, help="checkpoint file (.pt)")
    a.add_argument("--support", required=True, help="support folder or .zip: one sub-folder of images per class")
    a.add_argument("--out", required=True, help="ONNX file to write")
    add_head(a, from_checkpoint=True)
    add_device(a, "cpu")
    add_quiet(a, "no progress bar (shown after 1 s)")
    a.set_defaults(run=cmd_adapt)

    k = sub.add_parser("classify", help="the app's flow in a terminal: adapt to a support folder, classify, evaluate")
    k.add_argument("--checkpoint", required=True, help="checkpoint file (.pt)")
    k.add_argument("--support", required=True, help="support folder or .zip: one sub-folder of images per class")
    k.add_argument("images", nargs="*", help="image files, folders or .zip archives to classify")
    k.add_argument("--leave-one-out", action="store_true", help="also report leave-one-out accuracy on the support")
    k.add_argument("--labelled", default=None, help="also evaluate on a labelled folder (or .zip) of class folders")
    add_device(k, "cpu")
    add_quiet(k, "no progress bars (shown after 1 s)")
    k.add_argument("--csv", default=None, help="also write the predictions as CSV (the app's Export results)")
    k.add_argument(
        "--sort-into", default=None, metavar="DIR",
        help="also copy every classified image into DIR/<its class>/ (copies: the originals stay; the app's "
        "Copy photos into class folders)",
    )  # fmt: skip
    k.add_argument(
        "--unsure-below", type=float, default=0.0, metavar="PERCENT",
        help="with --sort-into: images classified with less confidence than this go to DIR/unsure/ (default 0)",
    )  # fmt: skip
    k.add_argument("--json", action="store_true", help="print one JSON object (probabilities, confusion matrices)")
    k.set_defaults(run=cmd_classify)

    r = sub.add_parser("predict", help="classify images with an exported classifier (no torch needed)")
    r.add_argument("--model", required=True, help="classifier .onnx from `adapt` or the app")
    r.add_argument("images", nargs="+", help="image files or folders")
    r.add_argument("--json", action="store_true", help="print a JSON list")
    r.set_defaults(run=cmd_predict)


def _classifier(args: argparse.Namespace) -> tuple[Any, Any]:
    """The checkpoint's classifier with the command's head options; returns (classifier, checkpoint dict)."""
    from anil_engine.checkpoint import load_checkpoint
    from anil_engine.classifier import FewShotClassifier
    from anil_engine.config import resolve_device
    from anil_engine.models import model_from_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt, args.checkpoint)
    clf = FewShotClassifier.for_checkpoint(
        ckpt, model, resolve_device(args.device), fast_lr=getattr(args, "fast_lr", None),
        steps=getattr(args, "adaptation_steps", None),
    )  # fmt: skip
    for name in ("head_init", "flip"):
        if getattr(args, name, None) is not None:
            setattr(clf, name, getattr(args, name))
    return clf, ckpt


def _adapted(clf: Any, support: str, quiet: bool) -> Any:
    from anil_engine.datasets.folder import scan_class_folders

    scan = scan_class_folders(folder_or_zip(support, quiet))
    warn(scan.messages)
    return images_job(clf.iter_adapt(list(scan.classes.items())), quiet)


def cmd_export(args: argparse.Namespace) -> int:
    from anil_engine.checkpoint import check_writable, load_checkpoint

    check_writable(args.out, "ONNX file")
    from anil_engine.export import export_trunk
    from anil_engine.models import model_from_checkpoint

    model = model_from_checkpoint(load_checkpoint(args.checkpoint), args.checkpoint)
    report = export_trunk(model, args.out)
    emit_json({"out": report.path, "max_abs_diff": report.max_abs_diff})
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    from anil_engine.checkpoint import check_writable, file_sha256

    check_writable(args.out, "ONNX file")  # before the support images go through the trunk
    from anil_engine.export import export_classifier

    clf, _ = _classifier(args)
    result = _adapted(clf, args.support, args.quiet)
    warn(result.skipped)
    report = export_classifier(clf.model, clf.weight, clf.bias, clf.class_names, args.out, file_sha256(args.checkpoint))
    out = {
        "out": report.path,
        "classes": clf.class_names,
        "images": result.n_images,
        "max_abs_diff": report.max_abs_diff,
    }
    emit_json(out)
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from anil_engine.checkpoint import check_writable
    from anil_engine.errors import ConfigError
    from anil_engine.listing import expand_inputs
    from anil_engine.sorting import check_destination, sort_into_folders

    if args.csv:
        check_writable(args.csv, "CSV file")
    if not 0 <= args.unsure_below <= 100:
        raise ConfigError(f"--unsure-below is a confidence in percent, 0 to 100; got {args.unsure_below}")
    if args.sort_into:
        check_destination(args.sort_into)  # before the support images go through the trunk

    clf, _ = _classifier(args)
    adapted = _adapted(clf, args.support, args.quiet)
    messages = list(adapted.skipped)
    listing = expand_inputs([Path(folder_or_zip(p, args.quiet)) for p in args.images])
    messages.extend(listing.messages)
    predictions, skipped = images_job(clf.iter_predict(listing.images), args.quiet) if listing.images else ([], [])
    messages.extend(skipped)
    out: dict[str, Any] = {
        "classes": adapted.class_names,
        "head_init": adapted.head_init,
        "predictions": [p.to_dict() for p in predictions],
    }
    reports = []
    if args.leave_one_out:
        reports.append(("leave_one_out", images_job(clf.iter_leave_one_out(), args.quiet)))
    if args.labelled:
        labelled = folder_or_zip(args.labelled, args.quiet)
        reports.append(("labelled", images_job(clf.iter_evaluate_folder(labelled), args.quiet)))
    for name, r in reports:
        messages.extend(r.skipped)
        out[name] = {"accuracy": r.accuracy, "per_class": r.per_class, "confusion": r.confusion, "images": r.n_images}
        if name == "labelled":
            out[name]["mistakes"] = [
                {"path": p.path, "true": truth, "predicted": p.label, "confidence": p.confidence}
                for p, truth in r.mistakes
            ]
    if args.sort_into:
        report = images_job(sort_into_folders(predictions, args.sort_into, args.unsure_below / 100), args.quiet)
        messages.extend(report.failed)
        out["sorted"] = {
            "dest": report.dest,
            "counts": report.counts,
            "already": report.already,
            "failed": report.failed,
        }
    warn(messages)
    if args.csv:
        from anil_engine.checkpoint import atomic_write_bytes
        from anil_engine.classifier import predictions_csv

        atomic_write_bytes(predictions_csv(predictions).encode("utf-8", "surrogateescape"), args.csv)
    if args.json:
        emit_json(out)
    else:
        print(classify_summary(out))
    return 0


def classify_summary(out: dict[str, Any]) -> str:
    """`classify`'s result for a person: one line per image (path, class, confidence), then the evaluations."""
    lines = [f"{len(out['classes'])} classes: {', '.join(out['classes'])} ({out['head_init']})"]
    lines += [f"{p['path']}\t{p['label']}\t{100 * p['confidence']:.1f} %" for p in out["predictions"]]
    if "sorted" in out:
        s = out["sorted"]
        lines.append(f"sorted {sum(s['counts'].values())} image(s) into {s['dest']}: "
                     + (", ".join(f"{name}/ {n}" for name, n in s["counts"].items()) or "none")
                     + (f" ({s['already']} there already)" if s["already"] else ""))  # fmt: skip
    for name, title in (("leave_one_out", "leave-one-out on the support"), ("labelled", "labelled folder")):
        if name in out:
            r = out[name]
            per_class = ", ".join(f"{c} {a:.1f} %" for c, a in r["per_class"].items())
            lines.append(f"{title}: {r['accuracy']:.1f} % of {r['images']} images ({per_class})")
            lines += [f"  wrong: {m['path']}\t{m['true']} -> {m['predicted']} ({100 * m['confidence']:.1f} %)"
                      for m in r.get("mistakes", [])]  # fmt: skip
    return "\n".join(lines)


def cmd_predict(args: argparse.Namespace) -> int:
    from anil_engine.runtime import OnnxClassifier

    clf = OnnxClassifier(args.model)
    results, skipped = clf.predict(args.images)
    warn(skipped)
    if args.json:
        emit_json([r.to_dict() for r in results])
    else:
        for r in results:
            print(f"{r.path}\t{r.label}\t{r.confidence:.4f}")
    return 0 if results else 2
