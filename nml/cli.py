"""``python -m nml``: pre-train, tune, measure spectra, run the tiny pipeline, benchmark.

Every subcommand stores its results in the result store (``--results``, default ``results/``)
and prints them as JSON lines. Bad input (an unknown dataset, a noise ratio of 1.5, a config key
that does not exist) ends with one line naming the problem and exit code 2, not a traceback.

``python -m nml store check`` / ``store rebuild`` compare ``results/index.csv`` with the unit
files (the truth) and rewrite it from them.

Used by book/rerun.md (rerunning the book's units from a shell, GPU leases), the text grid of
chapter 07_practical_models (``python -m nml practical``) and the benchmarks of chapter 10_runtime.
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import ConfigError, NMLError

__all__ = ["main", "parse_overrides"]


def parse_overrides(pairs: list[str] | None, flags: dict[str, str] | None = None) -> dict:
    """``["lr=0.1", "augment=true", "optimizer=sgd"]`` -> typed dict (JSON values, else str).

    ``flags`` maps the config keys that the subcommand sets from its own flags to those flags
    (``{"seed": "--seed"}``): such a key in ``--set`` is an error that names the flag to use.
    """
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise NMLError(f"--set takes KEY=VALUE, got {pair!r}; e.g. --set epochs=10")
        key, text = pair.split("=", 1)
        key = key.strip()
        if flags and key in flags:
            raise ConfigError(f"--set {key}=... collides with the flag {flags[key]}; pass "
                              f"{flags[key]} {text} instead")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out[key] = value
    return out


def _pipeline(args):
    from .experiments import Pipeline
    from .results import ResultStore
    return Pipeline(args.scale, store=ResultStore(args.results), data_root=args.data_root,
                    device=args.device, progress=not args.quiet, recompute=args.recompute)


def _print_rows(unit) -> None:
    for row in unit.rows.to_dict("records"):
        print(json.dumps(row, default=str))
    state = "replayed from" if unit.replayed else "stored in"
    print(f"# {state} {unit.experiment}/{unit.key}", file=sys.stderr)


def _cmd_pretrain(args) -> None:
    pipe = _pipeline(args)
    pcfg = pipe.pretrain_config(args.backbone or pipe.scale.backbones[0], args.noise, args.seed,
                                **parse_overrides(args.set, {"backbone": "--backbone",
                                                             "noise": "--noise", "seed": "--seed"}))
    _print_rows(pipe.pretrain(pcfg))


def _cmd_tune(args) -> None:
    pipe = _pipeline(args)
    pcfg = pipe.pretrain_config(args.backbone or pipe.scale.backbones[0], args.noise,
                                args.pretrain_seed)
    tcfg = pipe.tune_config(args.method, seed=args.seed,
                            **parse_overrides(args.set, {"method": "--method", "seed": "--seed"}))
    _print_rows(pipe.tune(pcfg, args.task or pipe.scale.tasks[0], tcfg))


def _cmd_spectrum(args) -> None:
    pipe = _pipeline(args)
    pcfg = pipe.pretrain_config(args.backbone or pipe.scale.backbones[0], args.noise,
                                args.pretrain_seed)
    _print_rows(pipe.spectrum(pcfg, args.task or pipe.scale.tasks[0]))


def _cmd_tiny(args) -> None:
    from .experiments import run_tiny_pipeline
    from .results import ResultStore
    print(json.dumps(run_tiny_pipeline(ResultStore(args.results), progress=not args.quiet)))


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"k/n"`` as ``(k, n)``; ``None`` is the whole grid ``(0, 1)``. Range checks are
    ``model_major``'s."""
    if text is None:
        return (0, 1)
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r} is not K/N; write e.g. --shard 0/2") from None
    return index, count


def _cmd_grid(args) -> None:
    from .chapters import CHAPTERS, ChapterParams, run_chapter
    from .results import ResultStore
    params = ChapterParams.from_dict(scale=args.scale, noise=args.noise, backbone=args.backbone,
                                     task=args.task, data_root=args.data_root,
                                     device=args.device, **parse_overrides(args.set, {
                                         "scale": "--scale", "noise": "--noise",
                                         "backbone": "--backbone", "task": "--task",
                                         "data_root": "--data-root", "device": "--device"}))
    chapters = CHAPTERS if args.chapter == "all" else tuple(args.chapter.split(","))
    if args.shard is not None and not args.by_model:
        raise ConfigError("--shard splits a --by-model grid; add --by-model")
    shard = parse_shard(args.shard)
    store = ResultStore(args.results)
    if args.by_model:
        from .chapters import model_major, run_grid
        from .experiments import Pipeline
        if params.scale == "auto":
            raise ConfigError("--by-model needs an explicit --scale (e.g. --scale cpu_seeds)")
        pipe = Pipeline(params.scale, store=store, data_root=params.data_root,
                        device=params.device, progress=not args.quiet)
        for model, grids in model_major(pipe, chapters, params, shard=shard):
            rows = sum(len(run_grid(pipe, g, progress=not args.quiet).rows) for g in grids)
            print(json.dumps({"model": list(model), "scale": params.scale, "rows": rows}),
                  flush=True)
        return
    for chapter in chapters:
        _, results = run_chapter(chapter, params, store=store, progress=not args.quiet)
        print(json.dumps({"chapter": chapter, "scale": results[0].scale,
                          "rows": sum(len(r.rows) for r in results)}))


def _cmd_practical(args) -> None:
    from .practical import PRACTICAL_MODELS, loading_code, resolves_offline
    from .practical_text import TextConfig, cli_summary, run_text_grid
    from .results import ResultStore
    if args.models:
        for entry in PRACTICAL_MODELS.values():
            print(json.dumps({"model": entry.paper_name, "library": entry.library,
                              "name": entry.name, "tag": entry.tag,
                              "resolves_offline": resolves_offline(entry),
                              "code": loading_code(entry)}))
        return
    if args.vision:
        from .practical_vision import VisionConfig, run_vision_grid
        result = run_vision_grid(VisionConfig.from_dict(parse_overrides(args.set)),
                                 store=ResultStore(args.results), root=args.data_root,
                                 device=args.device, progress=not args.quiet,
                                 recompute=args.recompute)
    else:
        result = run_text_grid(TextConfig.from_dict(parse_overrides(args.set)),
                               store=ResultStore(args.results), root=args.data_root,
                               device=args.device, progress=not args.quiet,
                               recompute=args.recompute)
    for line in cli_summary(result):
        print(json.dumps(line))
    print(f"# {result.description}", file=sys.stderr)


def _cmd_bench(args) -> None:
    from .benchmarks.store import run_and_store, run_benchmark
    kwargs = {"device": args.device, "steps": args.steps}
    if args.which == "nmtune-speed":
        kwargs = {"device": args.device or "cpu", "steps": args.steps or 200}
    if args.backbone is not None:
        if args.which != "pretrain":
            raise ConfigError("--backbone applies to `bench pretrain` only")
        kwargs["backbone"] = args.backbone
    if args.store:
        from .results import ResultStore
        unit = run_and_store(args.which, store=ResultStore(args.results), **kwargs)
        result = unit.info["result"]
        print(f"# stored in {unit.experiment}/{unit.key} (load average "
              f"{unit.info['loadavg_before'][0]:.2f} before, "
              f"{unit.info['loadavg_after'][0]:.2f} after)", file=sys.stderr)
    else:
        result = run_benchmark(args.which, **kwargs)
    print(json.dumps(result, default=str))


def _cmd_store(args) -> int:
    from .results import ResultStore
    store = ResultStore(args.results)
    if not store.root.is_dir():
        raise NMLError(f"no result store at {store.root}; pass --results <folder>")
    if args.action == "rebuild":
        index = store.refresh_index()
        print(f"rebuilt {store.root / 'index.csv'} from the unit files: {len(index)} rows, "
              f"{index['key'].nunique() if len(index) else 0} units")
        return 0
    problems = store.check()
    for line in problems:
        print(line)
    if problems:
        print(f"# {len(problems)} disagreement(s) between the units and index.csv; repair with "
              f"`python -m nml store rebuild`", file=sys.stderr)
        return 1
    print(f"# index.csv agrees with every unit under {store.root}", file=sys.stderr)
    return 0


def _cmd_lease(args) -> None:
    from . import lease
    from .results import ResultStore
    store = ResultStore(args.results)
    if args.lease_command == "import":
        print(json.dumps(lease.import_bundle(args.bundle, store=store)))
        return
    try:
        priorities = tuple(int(p) for p in str(args.priorities).split(",")) \
            if args.priorities != "all" else tuple(lease.PRIORITIES)
    except ValueError:
        raise ConfigError(f"--priorities takes 'all' or numbers like 1,2, got "
                          f"{args.priorities!r}") from None
    if args.lease_command == "plan":
        table = lease.plan(args.scale, priorities, store=store)
        if args.json:
            for row in table.to_dict("records"):
                print(json.dumps(row))
            return
        for row in table.itertuples():
            print(f"P{row.priority}  {row.seconds:7.1f} s  {row.label}  [{row.source}]")
        print(f"# {len(table)} missing units at scale {args.scale!r}; estimated GPU minutes "
              f"on one process (sources in brackets):")
        for priority, part in table.groupby("priority"):
            sources = ", ".join(sorted(set(part["source"])))
            print(f"#   P{priority}: {part['seconds'].sum() / 60:6.1f} min  {len(part)} units  "
                  f"({lease.PRIORITIES[priority][:60]}...)  from: {sources}")
    elif args.lease_command == "run":
        workers = None if args.workers == "auto" else int(args.workers)
        bundle = lease.run_lease(args.minutes, args.out, workers=workers, scale=args.scale,
                                 priorities=priorities, device=args.device,
                                 data_root=args.data_root, store=store,
                                 progress=not args.quiet)
        manifest = json.loads((bundle / "manifest.json").read_text())
        print(json.dumps({"bundle": str(bundle), "units": len(manifest["units"]),
                          "elapsed_s": manifest["elapsed_s"], "workers": manifest["workers"]}))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", default="tiny", help="tiny | cpu | cifar (default: tiny)")
    p.add_argument("--backbone", default=None, help="default: the scale's first backbone")
    p.add_argument("--noise", type=float, default=0.0, help="pre-training noise ratio in [0, 1)")
    p.add_argument("--data-root", default=None, help="data folder (default: $NML_DATA)")
    p.add_argument("--results", default=None, help="result store (default: results/)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--recompute", action="store_true", help="ignore a stored result")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    # long: the command line's one argparse table
    parser = argparse.ArgumentParser(prog="python -m nml", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pre-train one model on noisy labels")
    _common(p)
    p.add_argument("--seed", type=int, default=0, help="pre-training seed (and noise draw)")
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("tune", help="tune a pre-trained model on a downstream task")
    _common(p)
    p.add_argument("--pretrain-seed", type=int, default=0)
    p.add_argument("--task", default=None, help="downstream task (default: the scale's first)")
    p.add_argument("--method", default="lp", help="lp | mlp | nmtune | lora | lora_nmtune | ft")
    p.add_argument("--seed", type=int, default=0, help="downstream seed")
    p.set_defaults(func=_cmd_tune)

    p = sub.add_parser("spectrum", help="singular values, SVE and LSVR of frozen features")
    _common(p)
    p.add_argument("--pretrain-seed", type=int, default=0)
    p.add_argument("--task", default=None)
    p.set_defaults(func=_cmd_spectrum)

    p = sub.add_parser("tiny", help="the whole tiny pipeline on the embedded data (CPU, minutes)")
    p.add_argument("--results", default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_tiny)

    p = sub.add_parser("grid", help="compute (or replay) every unit a chapter shows")
    p.add_argument("--chapter", default="all", help="e.g. 02_linear_probe, a comma list, or all")
    p.add_argument("--scale", default="tiny", help="tiny | cpu | cpu_seeds | cifar")
    p.add_argument("--noise", type=float, default=0.1, help="the chapters' detail noise ratio")
    p.add_argument("--backbone", default=None)
    p.add_argument("--task", default=None)
    p.add_argument("--data-root", default=None)
    p.add_argument("--results", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="another chapter parameter, e.g. lam=0.03")
    p.add_argument("--by-model", action="store_true",
                   help="run one pre-trained model at a time (seed-major), each with all its "
                        "downstream units: for long CPU grids that may stop part-way")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="with --by-model: run only every N-th model from the K-th (0-based), "
                        "so N processes split the grid, e.g. --shard 0/2 and --shard 1/2")
    p.set_defaults(func=_cmd_grid)

    p = sub.add_parser("practical", help="chapter 07's text grid: LP / MLP / NMTune on frozen "
                                         "MiniLM features, SST-2 (ID) -> IMDB (OOD)")
    p.add_argument("--models", action="store_true",
                   help="list the paper's practical models (Table 3) and their loading code")
    p.add_argument("--data-root", default=None, help="data folder (default: $NML_DATA)")
    p.add_argument("--results", default=None, help="result store (default: results/)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--recompute", action="store_true", help="ignore stored units")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--vision", action="store_true",
                   help="the vision grid instead: EfficientNet-Lite0 on CIFAR-10 and PACS "
                        "(VisionConfig tasks: Caltech-101 too)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a TextConfig (VisionConfig with --vision) field, e.g. "
                        "ood_test_limit=1000 or epochs=30")
    p.set_defaults(func=_cmd_practical)

    p = sub.add_parser("bench", help="benchmarks measured side by side in one run")
    p.add_argument("which", choices=["nmtune-speed", "blackbox-cache", "pretrain"])
    p.add_argument("--device", default=None, help="cpu | cuda")
    p.add_argument("--backbone", default=None,
                   help="bench pretrain: the backbone to time (default resnet18_cifar; the "
                        "CPU scales train resnet18_cifar_narrow)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--store", action="store_true",
                   help="keep the timing in the result store (experiment 'runtime') for "
                        "chapter 10_runtime, replacing an earlier run with the same arguments")
    p.add_argument("--results", default=None, help="result store (default: results/)")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("store", help="check index.csv against the stored units, or rebuild it")
    p.add_argument("action", choices=["check", "rebuild"],
                   help="check: list every disagreement (exit 1 if any); rebuild: rewrite "
                        "index.csv from the unit files, which are the truth")
    p.add_argument("--results", default=None, help="result store (default: results/)")
    p.set_defaults(func=_cmd_store)


    p = sub.add_parser("lease", help="fill a scale in short GPU leases: plan, run, import")
    lease_sub = p.add_subparsers(dest="lease_command", required=True)
    for name, text in (("plan", "missing units in priority order with estimated GPU time"),
                       ("run", "run what fits --minutes and write one bundle under --out"),
                       ("import", "verify a bundle and merge it into the result store")):
        q = lease_sub.add_parser(name, help=text)
        q.add_argument("--results", default=None, help="result store (default: results/)")
        if name == "import":
            q.add_argument("bundle", help="the lease-<time>-<scale> folder that `run` wrote")
            continue
        q.add_argument("--scale", default="cifar", help="tiny | cpu | cifar (default: cifar)")
        q.add_argument("--priorities", default="all", help="e.g. 1 or 1,2 (default: all)")
        if name == "plan":
            q.add_argument("--json", action="store_true", help="one JSON line per unit")
            continue
        q.add_argument("--minutes", type=float, required=True, help="the whole run's budget")
        q.add_argument("--out", required=True, help="folder for the bundle (e.g. $OUT)")
        q.add_argument("--workers", default="auto",
                       help="concurrent processes on the device (default: auto, measured)")
        q.add_argument("--device", default=None, help="cpu | cuda (default: cuda when there)")
        q.add_argument("--data-root", default=None, help="data folder (default: $NML_DATA)")
        q.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_lease)

    from .scorecard import add_parser as add_scorecard_parser
    add_scorecard_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except NMLError as err:
        print(f"nml: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.filename is None:   # not about a file or folder: a bug, keep its traceback
            raise
        print(f"nml: error: cannot use {err.filename}: {err.strerror}; check that it exists "
              f"and that this user may read and write it (or pass another --results / "
              f"--data-root)", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0
