"""The joint experiment: dataset -> translator -> translated dataset -> ReID training (one run per
strategy and seed) -> evaluation -> report, each stage's outputs under the run folder.

The dataset, translator and translation are shared by every strategy and seed; the k-th seed of a
strategy trains with runtime.seed + k into reid/<strategy>/seed_<k>/ (stages `reid/<strategy>/seed_<k>`
and `evaluate/<strategy>/seed_<k>`), continuing from its first training stage, which the strategies and
seeds that start alike share (`reid/_first_stages/<fingerprint>`). The report gives mean ± std over the
seeds, beside chance (the protocol on random features) and the upper bounds.

A stage is reused when its fingerprint (its config section and the fingerprints of the stages it
reads) matches the one recorded in `stages.json` for its completed run; a changed stage, and every stage
after it, runs again; `from_stage` forces that from a given stage. A stage's fingerprint is recorded when it
starts, so an interrupted stage (e.g. killed) resumes in place under the same config (the tools underneath
resume on their own) and starts afresh under another one. The runner writes its files atomically;
tests/experiments/test_kill.py kills a run at points across its stages and checks that the rerun ends as an
uninterrupted run does.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from reid.config import config_to_dict, save_config
from reid.data import NoIdentitiesError, VIDataset, dataset_has_identities, open_dataset
from reid.evaluation import evaluate_protocol, protocol_settings
from reid.features import extract_features
from reid.files import file_sha256, write_atomically, write_text_atomically
from reid.methods import phase_of
from reid.models import load_model_checkpoint
from reid.runtime import resolve_device
from reid.tensorboard import TENSORBOARD_DIR
from reid.train import evaluate_start, method_of, stage_reads_views, train_reid
from reid.train_config import MethodConfig, ReIDConfig
from vi_translate.train import train_translator
from vi_translate.translate import translate_records

from . import report
from .config import ExperimentConfig, reid_config, translator_config, variant_of

logger = logging.getLogger(__name__)
STAGES = ("dataset", "translator", "translate", "reid", "evaluate", "report")
CHANCE_LABEL = "chance: the protocol on random features"
FIRST_STAGES = "_first_stages"  # reid/_first_stages/<fingerprint>: first stages shared by variants and seeds
CHANCE_DIM = 64  # any width gives the same chance: the ranks of i.i.d. random features are uniformly random
RUNNING, DONE = "running", "done"  # the status of a stage in stages.json
# what a killed atomic writer leaves beside the file it was writing: the temp files of reid.checkpoint,
# reid.data.io.write_image_atomic, reid.files.write_atomically, reid.config.save_config and vi_translate's loss curves
STRAY_TEMPS = ("*.tmp", "*.tmp.png")


class StageLog:
    """`stages.json`: stage -> {"fingerprint", "outputs", "status"} of its last run: status "running" (outputs
    None) from its start, "done" with its outputs once it completes (an older toolkit's records of completed
    runs have no status)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "stages.json"
        self.stages: dict = self._read() if self.path.exists() else {}

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{self.path} is not valid JSON ({error}); remove it to run every stage again") from None

    def reusable(self, stage: str, fingerprint: str) -> dict | None:
        """The outputs of a completed run of `stage` with this fingerprint, else None (a running one has none)."""
        record = self.stages.get(stage)
        return record["outputs"] if record and record["fingerprint"] == fingerprint else None

    def start(self, stage: str, fingerprint: str) -> None:
        """Record that `stage` runs with this fingerprint (before it writes anything)."""
        self._record(stage, {"fingerprint": fingerprint, "outputs": None, "status": RUNNING})

    def complete(self, stage: str, fingerprint: str, outputs: dict) -> dict:
        self._record(stage, {"fingerprint": fingerprint, "outputs": outputs, "status": DONE})
        return outputs

    def _record(self, stage: str, record: dict) -> None:
        """Set the record of `stage` and write stages.json atomically (a killed write leaves the old file)."""
        self.stages[stage] = record
        write_text_atomically(self.path, json.dumps(self.stages, indent=2))

    def forget(self, stages: list[str]) -> None:
        for stage in stages:
            self.stages.pop(stage, None)


def fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


NOT_RESULTS = ("log_level", "tensorboard")  # runtime settings that cannot change results


def results_affecting(section) -> dict:
    """A config section as a dict, without the runtime settings that cannot change results (`NOT_RESULTS`)."""
    data = {k: v for k, v in config_to_dict(section).items() if k not in NOT_RESULTS}
    if isinstance(data.get("runtime"), dict):
        data["runtime"] = {k: v for k, v in data["runtime"].items() if k not in NOT_RESULTS}
    return data


def recipe(config: ExperimentConfig, variant: str, run_dir: Path) -> dict:
    """What a variant trains, as a dict: its ReID config (seed 0) without the settings that cannot change
    results and without its output folder."""
    data = results_affecting(reid_config(config, variant, run_dir))
    data.pop("output_dir")
    return data


def check_distinct_recipes(config: ExperimentConfig, variants: list[str], run_dir: Path) -> None:
    """Raise ValueError naming both when two variants resolve to the same ReID config here (e.g. one only
    switches on what the config already has on): the run would train one recipe under two names."""
    seen: dict[str, str] = {}
    for variant in variants:
        key = json.dumps([recipe(config, variant, run_dir), variant_of(variant).trains], sort_keys=True, default=str)
        if key in seen:
            raise ValueError(f"strategies {seen[key]!r} and {variant!r} resolve to the same ReID config with this "
                             f"experiment config; drop one of them")
        seen[key] = variant


def run_experiment(config: ExperimentConfig, *, variants: list[str] | None = None,
                   from_stage: str | None = None) -> dict:
    """Run (or resume) the experiment: every variant (default: config.strategies) `config.seeds` times;
    returns the results written to results.json."""
    if from_stage is not None and from_stage not in STAGES:
        raise ValueError(f"unknown stage {from_stage!r}: expected one of {STAGES}")
    if not dataset_has_identities(config.data.name):  # before anything is written
        raise NoIdentitiesError(
            f"data.name={config.data.name} has no identities, and the experiment's tables need them (the test "
            f"protocol, the upper bound): train on it with `vireid train` (data.name={config.data.name}, a method "
            f"that needs no identities) and `vi-translate train` / `vi-translate translate --dataset "
            f"{config.data.name}` instead")
    variants = list(variants or config.strategies)
    run_dir = Path(config.output_dir)
    check_distinct_recipes(config, variants, run_dir)
    save_config(config, run_dir)
    log = StageLog(run_dir)
    if from_stage is not None:
        _forget_from(log, run_dir, from_stage, variants)

    data_print = fingerprint(config_to_dict(config.data))
    dataset = run_stage(log, "dataset", data_print, [], lambda: stage_dataset(config))
    translator, translate_print = None, None  # the translator and the translation run only when views are used
    if any(reid_config(config, variant, run_dir).translated for variant in variants):
        translator_print = fingerprint(data_print, config_to_dict(config.translator),
                                       results_affecting(config.runtime))
        translator = run_stage(log, "translator", translator_print, [run_dir / "translator"],
                               lambda: stage_translator(config, run_dir))
        translate_print = fingerprint(translator_print, translator["sha256"], config_to_dict(config.translate))
        run_stage(log, "translate", translate_print, [run_dir / "translated"],
                  lambda: stage_translate(config, run_dir, translator["checkpoint"]))
    runs: dict[str, list[dict]] = {}
    for variant in variants:
        runs[variant] = []
        trains = variant_of(variant).trains
        for seed_index in range(config.seeds if trains else 1):  # the start alone draws nothing: one run
            reid = reid_config(config, variant, run_dir, seed_index)
            reid_print = fingerprint(translate_print if reid.translated else data_print, results_affecting(reid),
                                     trains)
            name = f"{variant}/seed_{seed_index}"
            first = first_stage_run(reid, run_dir, data_print, translate_print) if trains else None
            if first is not None:  # trained once for every variant and seed that starts alike
                run_stage(log, f"reid/{FIRST_STAGES}/{Path(first[0].output_dir).name}", first[1],
                          [Path(first[0].output_dir)], lambda: stage_reid(first[0]))
            trained = run_stage(log, f"reid/{name}", reid_print, [Path(reid.output_dir)],
                                lambda: stage_reid(reid, None if first is None else first[0].output_dir) if trains
                                else stage_start(reid))
            evaluated = run_stage(log, f"evaluate/{name}", reid_print, [],
                                  lambda: stage_evaluate(config, reid, trained["checkpoint"],
                                                         keep_features=seed_index == 0))
            runs[variant].append(trained | evaluated)
    return stage_report(config, run_dir, dataset, translator, runs)


def run_stage(log: StageLog, name: str, stage_print: str, folders: list[Path], run) -> dict:
    """The outputs of stage `name`: reused when its fingerprint matches its last completed run; otherwise
    `run()` after `prepare_folders`, its fingerprint recorded as running before and its outputs after."""
    outputs = log.reusable(name, stage_print)
    if outputs is not None:
        logger.info("stage %s: reused", name)
        return outputs
    prepare_folders(name, log.stages.get(name), stage_print, folders)
    log.start(name, stage_print)
    logger.info("stage %s: running", name)
    return log.complete(name, stage_print, run())


def prepare_folders(name: str, record: dict | None, stage_print: str, folders: list[Path]) -> None:
    """Before stage `name` runs: its folders are removed when they hold a run of another config (`record`, its
    last run in stages.json, has another fingerprint) or of an unknown one (no record: e.g. a run interrupted
    under an older toolkit), so that nothing of it is resumed; a run of this config that was interrupted
    resumes in place, without the temp files its killed writers left."""
    existing = [folder for folder in folders if folder.exists()]
    if record is not None and record["fingerprint"] == stage_print:
        for folder in existing:
            remove_stray_temps(folder)
        return
    why = "it holds no run recorded in stages.json" if record is None else "its config changed"
    for folder in existing:
        logger.warning("stage %s: removing %s before running: %s", name, folder, why)
        _remove(folder)


# ------------------------------------------------------------------------------------------- stages


def stage_dataset(config: ExperimentConfig) -> dict:
    """Open (for `synthetic`, first generate) the dataset; record its counts."""
    dataset = open_dataset(config.data)
    return {"root": str(dataset.root), "summary": dataset.summary()}


def stage_translator(config: ExperimentConfig, run_dir: Path) -> dict:
    """Train the translator (resuming an interrupted run), or take the configured checkpoint."""
    checkpoint = Path(config.translator.checkpoint) if config.translator.checkpoint else \
        train_translator(translator_config(config, run_dir))
    if not checkpoint.is_file():
        raise FileNotFoundError(f"translator.checkpoint: {checkpoint} does not exist")
    return {"checkpoint": str(checkpoint), "sha256": file_sha256(checkpoint)}


def stage_translate(config: ExperimentConfig, run_dir: Path, checkpoint: str) -> dict:
    """Write the translated dataset (the training images, or all with translate.split=all)."""
    dataset = open_dataset(config.data)
    records = dataset.train + (dataset.test_images() if config.translate.split == "all" else [])
    summary = translate_records(checkpoint, records, dataset.root, run_dir / "translated",
                                device=resolve_device(config.runtime.device), batch_size=config.translate.batch_size,
                                workers=config.runtime.workers, dataset=config.data.name)
    if not summary.ok:
        raise RuntimeError(f"{summary.failed} images could not be translated (see {run_dir / 'translated'}"
                           f"/manifest.jsonl): {summary.failures[:3]}")
    return {"translated": str(run_dir / "translated"), "images": summary.translated + summary.skipped}


def stage_reid(reid: ReIDConfig, first_stage: str | None = None) -> dict:
    """Train one strategy variant with one seed (resuming an interrupted run); a fresh run first takes the state
    after its first stage from `first_stage` (a `first_stage_run` folder), then trains the remaining stages."""
    out = Path(reid.output_dir)
    if first_stage is not None and not (out / "checkpoints" / "last.pt").exists():
        copy_run(Path(first_stage), out)
    checkpoint = train_reid(reid)
    return {"checkpoint": str(checkpoint), "metrics": str(out / "metrics.jsonl")}


def stage_start(reid: ReIDConfig) -> dict:
    """Evaluate the start of a run as it is (`reid.train.evaluate_start`): the start alone, no training."""
    checkpoint = evaluate_start(reid)
    return {"checkpoint": str(checkpoint), "metrics": str(Path(reid.output_dir) / "metrics.jsonl")}


def first_stage_run(reid: ReIDConfig, run_dir: Path, data_print: str, translate_print: str
                    ) -> tuple[ReIDConfig, str] | None:
    """(config, fingerprint) of a run's first stage alone, in reid/_first_stages/<fingerprint>/, which every
    variant and seed with the same first stage shares: the run without its later stages, trained by the method whose
    rules its method gives that stage (`Method.stage_rules`: ADCA's, PGM's and joint's first stage is
    cluster_contrast's), and without the translated views when the first stage neither clusters nor trains on them
    (the records and every random draw are the same then, so the stage ends on the weights the whole run would
    reach; tests/experiments check it). None when there is nothing to share: one stage, or a run cut short by
    train.max_epochs."""
    stages = [(name, stage) for name, stage in reid.train.stages.items() if stage.epochs > 0]
    if len(stages) < 2 or reid.train.max_epochs is not None or stages[0][0] != next(iter(reid.train.stages)):
        return None
    name, stage = stages[0]
    rules = method_of(reid).stage_rules(phase_of(0))
    alone = dataclasses.replace(reid, method=MethodConfig(rules["name"], dict(rules["options"])), output_dir="",
                                train=dataclasses.replace(reid.train, stages={name: stage}))
    if not stage_reads_views(alone, name):
        alone = dataclasses.replace(alone, translated=None)
    stage_print = fingerprint(translate_print if alone.translated else data_print, results_affecting(alone))
    return dataclasses.replace(alone, output_dir=str(run_dir / "reid" / FIRST_STAGES / stage_print)), stage_print


def copy_run(source: Path, target: Path) -> None:
    """A finished run's checkpoint, metrics, evaluations and TensorBoard events into `target`, the checkpoint last
    (atomically), so an interrupted copy is simply made again."""
    (target / "checkpoints").mkdir(parents=True, exist_ok=True)
    for folder in ("eval", TENSORBOARD_DIR):
        if (source / folder).is_dir():
            shutil.copytree(source / folder, target / folder, dirs_exist_ok=True)
    shutil.copyfile(source / "metrics.jsonl", target / "metrics.jsonl")
    copy_atomically(source / "checkpoints" / "last.pt", target / "checkpoints" / "last.pt")


def stage_evaluate(config: ExperimentConfig, reid: ReIDConfig, checkpoint: str, *, keep_features: bool) -> dict:
    """The final protocol numbers (from the run's last evaluation); with `keep_features`, also the test
    features [N, D] of the first trial of the first setting, for the t-SNE and retrieval pictures."""
    out = Path(reid.output_dir)
    history = read_history(out / "metrics.jsonl")
    final = next((record["eval"] for record in reversed(history) if record.get("eval")), {})
    numbers = {"final": final, "best": best_epoch(history)}
    if not keep_features:
        return numbers | {"test_features": None}
    dataset = open_dataset(config.data)
    arguments = next(iter(protocol_settings(dataset, trials=1).values()))[0]
    query, gallery = dataset.test_split(**arguments)
    device = resolve_device(config.runtime.device)
    model, model_config = load_model_checkpoint(checkpoint, device)
    features = extract_features(model, query + gallery, device, height=model_config.height, width=model_config.width,
                                num_workers=config.runtime.workers)
    saved = {"features": features, "num_query": len(query), "paths": [r.path for r in query + gallery],
             "pids": torch.tensor([r.pid for r in query + gallery]),
             "ir": torch.tensor([r.modality == "ir" for r in query + gallery])}
    path = write_atomically(out / "test_features.pt", lambda handle: torch.save(saved, handle))
    return numbers | {"test_features": str(path)}


def best_epoch(history: list[dict]) -> dict:
    """The papers' convention (ADCA, PGM: the checkpoint of the best test mAP), chosen on the test split: of the
    evaluated epochs, the one with the highest mAP in the first setting; {"epoch", "stage", "eval"}, or {}."""
    evaluated = [record for record in history if record.get("eval")]
    if not evaluated:
        return {}
    first = next(iter(evaluated[0]["eval"]))
    best = max(evaluated, key=lambda record: record["eval"][first]["mAP"])  # the first of equal ones
    return {"epoch": best["epoch"], "stage": best.get("stage"), "eval": best["eval"]}


def stage_report(config: ExperimentConfig, run_dir: Path, dataset: dict, translator: dict,
                 runs: dict[str, list[dict]]) -> dict:
    """results.json (per-seed rows, chance draws, and the summary: mean ± std per strategy and setting),
    results.md and the pictures (per-epoch curves, t-SNE and retrieval of seed 0)."""
    pictures = run_dir / "report"
    pictures.mkdir(parents=True, exist_ok=True)
    histories = {variant: [read_history(seed["metrics"]) for seed in seeds] for variant, seeds in runs.items()}
    rows = [seed_row(variant, seed_index, setting, metrics, history, seed.get("best") or {})
            for variant, seeds in runs.items()
            for seed_index, (seed, history) in enumerate(zip(seeds, histories[variant]))
            for setting, metrics in seed["final"].items()]
    chance = compute_chance(open_dataset(config.data), settings=config.reid.eval.settings,
                            trials=config.reid.eval.trials, draws=config.chance_draws, seed=config.runtime.seed)
    summary = report.order_summary(
        [row | {"label": CHANCE_LABEL, "kind": "chance"} for row in report.aggregate_runs(chance)]
        + [row | {"label": variant_of(row["strategy"]).label, "kind": variant_of(row["strategy"]).kind}
           for row in report.aggregate_runs(rows)])
    first_seed = {variant: seeds[0] for variant, seeds in histories.items()}
    figures = {"curves": report.plot_epoch_curves(first_seed, pictures / "epochs.png")}
    grid = _latest_translation_grid(translator["checkpoint"]) if translator else None
    if grid is not None:
        figures["translation"] = copy_atomically(grid, pictures / "translation.png")
    panels, retrieval = {}, None
    for variant, seeds in runs.items():
        saved = torch.load(seeds[0]["test_features"], weights_only=True)
        modalities = np.where(saved["ir"].numpy(), "ir", "vis")
        panels[variant] = (saved["features"], saved["pids"].numpy(), modalities)
        if retrieval is None or variant == "joint":
            retrieval = (variant, saved)
    figures["tsne"] = report.plot_tsne_panels(panels, pictures / "tsne.png")
    figures["retrieval"] = _retrieval_figure(retrieval, pictures / "retrieval.png")
    results = {"dataset": dataset, "translator": translator, "strategies": list(runs), "seeds": config.seeds,
               "chance_draws": config.chance_draws, "summary": summary, "results": rows, "chance": chance,
               "epochs": {variant: {f"seed_{k}": history for k, history in enumerate(seeds)}
                          for variant, seeds in histories.items()},
               "figures": {k: str(v) for k, v in figures.items()}}
    write_text_atomically(run_dir / "results.json", json.dumps(results, indent=2, default=str))
    write_text_atomically(run_dir / "results.md", _results_markdown(config, summary, first_seed, figures, run_dir))
    return results


def seed_row(variant: str, seed_index: int, setting: str, metrics: dict, history: list[dict],
             best: dict | None = None) -> dict:
    """One results row: a seed's final protocol numbers of one setting, its last epoch's cluster report
    (`report.CLUSTER_SUMMARY_KEYS`: ARI, share of mixed-modality clusters, labelled share of each modality, cross-modal
    pair precision and F), and the numbers of its best epoch (`best_epoch`) as best_R1, best_mAP, best_epoch."""
    cluster = (history[-1].get("cluster") or {}) if history else {}
    at_best = ((best or {}).get("eval") or {}).get(setting, {})
    return {"strategy": variant, "seed": seed_index, "setting": setting, **metrics,
            **{key: cluster.get(key) for key in report.CLUSTER_SUMMARY_KEYS},
            "best_R1": at_best.get("R1"), "best_mAP": at_best.get("mAP"), "best_epoch": (best or {}).get("epoch")}


def compute_chance(dataset: VIDataset, *, settings: list[str] | None, trials: int, draws: int, seed: int) -> list[dict]:
    """The protocol's numbers on random features, one row per draw and setting ("strategy": "chance"): each
    draw gives every test image a standard Gaussian feature [CHANCE_DIM], L2-normalised, from a generator
    seeded with `seed`, so a rerun gives the same numbers."""
    generator = torch.Generator().manual_seed(seed)

    def random_features(records) -> torch.Tensor:  # [N, CHANCE_DIM], L2-normalised
        return torch.nn.functional.normalize(torch.randn(len(records), CHANCE_DIM, generator=generator), dim=1)

    rows = []
    with _quiet("reid.evaluation.protocols"):  # one log line per draw and setting says nothing
        for draw in range(draws):
            protocol = evaluate_protocol(random_features, dataset, settings=settings, trials=trials)
            rows += [{"strategy": "chance", "draw": draw, "setting": name, **result.mean()}
                     for name, result in protocol.settings.items()]
    return rows


# ------------------------------------------------------------------------------------------- helpers


def read_history(path: str | Path) -> list[dict]:
    path = Path(path)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def copy_atomically(source: Path, target: Path) -> Path:
    """A copy of `source` at `target`, atomically (`reid.files.write_atomically`)."""
    with open(source, "rb") as data:
        return write_atomically(target, lambda handle: shutil.copyfileobj(data, handle))


def remove_stray_temps(folder: Path) -> None:
    """Remove the temp files (`STRAY_TEMPS`) that killed writers left anywhere under `folder`."""
    for pattern in STRAY_TEMPS:
        for stray in folder.rglob(pattern):
            if stray.is_file():
                logger.info("removing %s, left by an interrupted write", stray)
                stray.unlink()


def _retrieval_figure(selected, path: Path) -> Path:
    variant, saved = selected
    num_query = saved["num_query"]
    features = saved["features"]
    distmat = -(features[:num_query] @ features[num_query:].T).numpy()
    pids = saved["pids"].numpy()
    return report.plot_retrieval(saved["paths"][:num_query], pids[:num_query], saved["paths"][num_query:],
                                 pids[num_query:], distmat, path, title=f"{variant}: top-5 for infrared queries")


def _latest_translation_grid(checkpoint: str) -> Path | None:
    samples = sorted((Path(checkpoint).parent.parent / "samples").glob("step_*.png"))
    return samples[-1] if samples else None


def _results_markdown(config: ExperimentConfig, summary: list[dict], histories: dict, figures: dict,
                      run_dir: Path) -> str:
    seeds = f"{config.seeds} seed" + ("s" if config.seeds > 1 else "")
    lines = [f"# Results: {config.data.name} ({Path(config.output_dir).name})", "",
             f"## Mean ± std over {seeds}", "", report.results_markdown(summary),
             f"*Italic* rows are references, not methods: chance (mean ± std over {config.chance_draws} draws of "
             "random features) and upper bounds (trained on the true identities). The headline numbers are the "
             "last epoch's; the best-epoch columns follow the papers' convention (the epoch of the best test mAP): "
             "chosen on the test split, so they overstate what a method delivers.", "",
             "## Per epoch (seed 0)", "", report.epoch_table_markdown(histories), ""]
    for name, figure in figures.items():
        lines += [f"![{name}]({Path(figure).relative_to(run_dir).as_posix()})", ""]
    return "\n".join(lines)


def _forget_from(log: StageLog, run_dir: Path, stage: str, variants: list[str]) -> None:
    """Force `stage` and every later stage to run again: forget them (for reid and evaluate, those of
    `variants`, every seed) and remove their outputs."""
    later = STAGES[STAGES.index(stage):]
    outputs = {"translator": [run_dir / "translator"], "translate": [run_dir / "translated"],
               "reid": [run_dir / "reid" / v for v in [*variants, FIRST_STAGES]], "report": [run_dir / "report"]}
    for name in later:
        for folder in outputs.get(name, []):
            _remove(folder)
        trained = [*variants, FIRST_STAGES] if name == "reid" else variants
        prefixes = [f"{name}/{v}" for v in trained] if name in ("reid", "evaluate") else [name]
        log.forget([key for key in list(log.stages)
                    if any(key == prefix or key.startswith(f"{prefix}/") for prefix in prefixes)])


@contextlib.contextmanager
def _quiet(name: str):
    """Within the block, the logger `name` passes warnings and errors only."""
    quieted = logging.getLogger(name)
    level = quieted.level
    quieted.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        quieted.setLevel(level)


def _remove(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
