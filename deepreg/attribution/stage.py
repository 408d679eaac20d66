"""`deepreg attribute`: the attribution stage as its own MLflow run, with tables, figures and a report.

From a model URI (`models:/deepreg@champion`, any registry or run URI) back to the run that trained
it and its data (the run's `data.*` params), then:

1. regulator importance: DeepLIFT (reference: zero expression or the mean) and gradient x input for
   every (gene, condition) pair, summed as |score| per regulator; ranked table and distribution;
   next to published rankings (the notebook's top 10, Kundaje et al. 2006's top parents: overlap and
   hypergeometric p);
2. known-target check: one-sided Mann-Whitney U of targets vs other genes, per regulator with targets;
   and the decoy-controlled test per reference table (`--known-targets`: AUROC of each TF on its targets,
   its rank among all regulators on the same targets, empirical p, BH q; `known_targets.py`);
3. sequence attribution: DeepLIFT with dinucleotide-shuffled references and gradient x input on the
   promoters of the most variable genes, summed over conditions; the per-position aggregate (position
   bias) and plots of chosen genes;
4. motifs: first-layer filter PWMs (top activating subsequences) -> TomTom against JASPAR 2026 fungi
   (or a MEME file), q-values, logos, MEME export; TF-MoDISco on the DeepLIFT scores, matched the same way;
5. in-silico knock-outs: filters (Fisher test of the most moved genes against the matched TF's
   targets) and TFs (sites -> N, expression / 32; targets vs others per condition group; Spearman with a
   measured profile when given); every TF with known targets and a motif of its name, automatically
   (`auto_knockouts.py`: AUROC of the predicted change for its targets); and knock-outs against the
   deletions measured in the compendium (`deletions.py`); TF knock-outs run on cached tower features
   and predict only the conditions they need (`knockouts.CachedKnockouts`);
6. ground-truth checks when the data has a truth folder (the bundled simulated data);
7. what part of the predictions comes through per-gene / per-condition lookup terms (embeddings, a
   baseline table), which is not regulation (`gene_terms.py`).
With `--results-json` the headline figures are written as one JSON record (`results_record`).

This module keeps the run: its MLflow lifecycle (`run_attribution`), the outputs logged as metrics
and artifacts, and the results record. `_compute` calls one function per section, each in its own
module: `_section_regulators` (1), `_section_known_targets` (2), `_section_sequence` (3),
`_section_motifs` and `_section_modisco` (4), `_section_knockouts` and `_section_deletions` (5),
`_section_truth` (6), `_section_lookup_terms` (7) and `_section_summary` (the report's head). They
share a frozen `_section_context.Context` and pass what later ones need in their return values.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from deepreg.attribution.config import AttributionConfig
from deepreg.errors import DeepRegError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class AttributionRun:
    run_id: str
    summary: dict
    report: Path | None


# --------------------------------------------------------------------------------------------------
# Inputs: the model's run and its data
# --------------------------------------------------------------------------------------------------
def _data_config(run):
    from deepreg.data.config import DataConfig

    params = {key: value for key, value in run.data.params.items() if key.startswith("data.") and key != "data.fingerprint"}
    try:
        return DataConfig.from_params(params, prefix="data.")
    except DeepRegError as error:
        raise DeepRegError(f"run {run.info.run_id}: its data params do not make a data config ({error})") from None


# --------------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------------
def run_attribution(model_uri: str, config: AttributionConfig = AttributionConfig(), *, tracking_uri: str | None = None,
                    experiment: str = "deepreg", run_name: str | None = None, keep: str | Path | None = None,
                    say: Callable[[str], None] = print, results_json: str | Path | None = None,
                    command: str = "") -> AttributionRun:
    """Run the attribution stage for `model_uri` as a new MLflow run; `keep` also copies the outputs there.

    `results_json`: also write the headline figures there (`results_record`; `command` is recorded in it).
    """
    import mlflow

    from deepreg.attribution._network import read_network
    from deepreg.data.dataset import load_dataset
    from deepreg.tracking.registry import resolve_model
    from deepreg.tracking.store import ensure_experiment, use_tracking
    from deepreg.training.run import load_model

    uri = use_tracking(tracking_uri)
    source = resolve_model(model_uri, tracking_uri=uri)
    if not source.run_id:
        raise DeepRegError(f"model {model_uri}: cannot find the run that trained it (its data is needed); "
                           "use a models:/ or runs:/ URI of this tracking store")
    client = mlflow.MlflowClient()
    train_run = client.get_run(source.run_id)
    model = load_model(model_uri)
    network = read_network(model)  # refuses unsupported architectures before any work
    data_config = _data_config(train_run)
    say(f"model {model_uri} (run {source.run_id}); loading data ...")
    dataset = load_dataset(data_config)
    expected = train_run.data.tags.get("deepreg.data_fingerprint")
    mismatch = bool(expected and expected != dataset.fingerprint)
    if mismatch:
        say(f"warning: data fingerprint {dataset.fingerprint} differs from the one recorded at training ({expected}): "
            "the input files (or how they are hashed) changed since the model was trained")
    experiment_id = ensure_experiment(experiment, uri)
    tags = {"deepreg.stage": "attribution", "deepreg.model_uri": model_uri, "deepreg.source_run_id": source.run_id,
            "deepreg.data_fingerprint": dataset.fingerprint,
            "mlflow.note.content": f"Attribution of {model_uri} (trained in run {source.run_id})"}
    if mismatch:
        tags["deepreg.data_fingerprint_at_training"] = expected
    if source.name:
        tags.update({"deepreg.registered_model": source.name, "deepreg.model_version": source.version or ""})
    run = client.create_run(experiment_id, run_name=run_name or f"attribution {source.name or ''}"
                            f"{'@' + source.alias if source.alias else ''}".strip(), tags=tags)
    run_id = run.info.run_id
    client.log_batch(run_id, params=[mlflow.entities.Param(k, v[:6000]) for k, v in
                                     config.to_params(prefix="attribution.").items()])
    try:
        with tempfile.TemporaryDirectory(prefix="deepreg-attribution-") as folder:
            out = Path(folder)
            summary = _compute(model, network, dataset, data_config, config, out, say,
                               title=f"DeepREG attribution: {model_uri}",
                               subtitle=f"run {run_id}; model trained in run {source.run_id}"
                                        + (f" ({source.name} version {source.version})" if source.name else "")
                                        + f"; data {data_config.bundle or data_config.expression} "
                                          f"({dataset.fingerprint}); {time.strftime('%Y-%m-%d %H:%M')}")
            _log_outputs(client, run_id, out, summary)
            if keep:
                import shutil
                shutil.copytree(out, Path(keep), dirs_exist_ok=True)
    except BaseException as error:
        client.set_tag(run_id, "deepreg.error", f"{type(error).__name__}: {error}"[:5000])
        client.set_terminated(run_id, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    if results_json:
        record = results_record(summary, model_uri, command, run_id)
        Path(results_json).parent.mkdir(parents=True, exist_ok=True)
        Path(results_json).write_text(json.dumps(_jsonable(record), indent=2) + "\n")
    if source.name and source.version:
        try:
            client.set_model_version_tag(source.name, source.version, "deepreg.attribution_run_id", run_id)
        except mlflow.exceptions.MlflowException as error:  # pragma: no cover - registry without tags
            log.warning("could not tag the model version: %s", error)
    return AttributionRun(run_id=run_id, summary=summary, report=(Path(keep) / "report.html") if keep else None)


def _log_outputs(client, run_id: str, out: Path, summary: dict) -> None:
    import mlflow

    metrics = {key: float(value) for key, value in _flatten(summary).items()
               if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
               and np.isfinite(value)}
    now = int(time.time() * 1000)
    items = [mlflow.entities.Metric(re.sub(r"[^0-9A-Za-z_\-./ ]", "_", key)[:250], value, now, 0)
             for key, value in metrics.items()]
    for start in range(0, len(items), 500):
        client.log_batch(run_id, metrics=items[start:start + 500])
    for item in sorted(out.iterdir()):
        if item.is_dir():
            client.log_artifacts(run_id, str(item), item.name)
        else:
            client.log_artifact(run_id, str(item))


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _compute(model, network, dataset, data_config, config: AttributionConfig, out: Path, say, *, title: str,
             subtitle: str) -> dict:
    """The sections of the stage in order, each adding its part to the report; returns the run summary.

    `out` gets report.html, summary.json and the sections' tables/, figures/ and motifs/ (`network`,
    the model as `_network.read_network` reads it, is read by the caller to refuse unsupported models
    before any work).
    """
    from deepreg.attribution import (_section_deletions, _section_knockouts, _section_known_targets,
                                     _section_lookup_terms, _section_modisco, _section_motifs, _section_regulators,
                                     _section_sequence, _section_summary, _section_truth)
    from deepreg.attribution._section_context import Context
    from deepreg.attribution.predict import predict
    from deepreg.attribution.report import Report

    ctx = Context.create(model, dataset, data_config, config, out, say)
    body = Report("")  # the sections' parts; the report is the summary, then these
    summary: dict = {"data": {"genes": dataset.n_genes, "conditions": dataset.n_conditions,
                              "regulators": dataset.n_regulators}}
    timings: dict[str, float] = {}

    def add(section):
        summary.update(section.summary)
        timings.update(section.timings)
        return section

    regulators = add(_section_regulators.section(ctx, body))
    known_targets = add(_section_known_targets.section(ctx, body, regulators))
    say("predictions for all pairs ...")
    started = time.perf_counter()
    baseline = predict(model, ctx.sequences, ctx.inputs, background=ctx.background, gene_index=ctx.genes)
    timings["predictions_s"] = time.perf_counter() - started
    sequence = add(_section_sequence.section(ctx, body, baseline))
    motifs = add(_section_motifs.section(ctx, body))
    modisco = add(_section_modisco.section(ctx, body, sequence, motifs.known))
    knockouts = add(_section_knockouts.section(ctx, body, baseline, motifs, known_targets))
    deletions = add(_section_deletions.section(ctx, body, knockouts, motifs.known))
    if deletions.measured_deletions:
        summary["knockouts"]["measured_deletions"] = deletions.measured_deletions
    summary["held_out_conditions"] = _held_out_names(dataset, data_config)
    add(_section_lookup_terms.section(ctx, body, baseline))
    summary["training_split"] = {"kind": data_config.split, "fractions": list(data_config.split_fractions),
                                 "seed": data_config.split_seed}
    add(_section_truth.section(ctx, body, regulators.table, motifs.comparisons, modisco.comparisons,
                               known_targets.tests, knockouts.tf_summary))
    summary["timings"] = timings

    report = Report(title, subtitle)
    report.heading("Summary")
    report.extend(_section_summary.part(summary, config))
    report.extend(body)
    report.write(out / "report.html")
    (out / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2))
    return summary


def _held_out_names(dataset, data_config) -> list[str]:
    from deepreg.data.splits import excluded_conditions

    if not data_config.exclude_conditions:
        return []
    return [dataset.conditions[i] for i in excluded_conditions(dataset.conditions, data_config.exclude_conditions)]


RESULT_REFERENCE = "balaji2006"


def results_record(summary: dict, model_uri: str, command: str, run_id: str = "") -> dict:
    """The headline figures of a run (the keys of docs/results/attribution-yeast.json).

    Top-level known-target figures are Balaji 2006's when it was used, else the first reference's;
    `per_reference` has every reference. Figures a run could not compute are null.
    """
    references = summary.get("known_targets", {})
    main = references.get(RESULT_REFERENCE) or next(iter(references.values()), {})
    deletions = summary.get("knockouts", {}).get("measured_deletions", {})
    published = summary.get("regulators", {}).get("published_overlap", {})
    motifs = summary.get("motifs", {})

    def tf_p(name):
        line = main.get(name)
        return None if line is None else line["mwu_p"]

    def tf_decoy_p(name):
        line = main.get(name)
        return None if line is None else line["decoy_p"]

    def rho(key):
        return deletions[key]["spearman"] if key in deletions else None

    return {
        "model_uri": model_uri, "attribution_run_id": run_id,
        "training_split": summary.get("training_split"),
        "conditions_held_out": summary.get("held_out_conditions", []),
        "known_target_reference": RESULT_REFERENCE if RESULT_REFERENCE in references else next(iter(references), None),
        "tfs_tested": main.get("tfs_tested"),
        "fraction_tfs_auroc_above_half": main.get("fraction_tfs_auroc_above_half"),
        "fraction_tfs_q_below_0.1": main.get("fraction_tfs_q_below_0.1"),
        "per_reference": {name: {key: value for key, value in values.items()
                                 if key not in ("gradient_x_input", "gradient_x_input_share")}
                          for name, values in references.items()},
        "msn2_target_p": tf_p("msn2"), "msn4_target_p": tf_p("msn4"),
        "msn2_target_decoy_p": tf_decoy_p("msn2"), "msn4_target_decoy_p": tf_decoy_p("msn4"),
        "msn24_knockout_spearman_heat": rho("msn24_heat"), "msn24_knockout_spearman_h2o2": rho("msn24_h2o2"),
        "yap1_knockout_spearman_heat": rho("yap1_heat"), "yap1_knockout_spearman_h2o2": rho("yap1_h2o2"),
        "measured_deletions": deletions,
        "tf_knockouts_auto": summary.get("knockouts", {}).get("auto", {}),
        "filters_matched_q0.1": motifs.get("matched_q0.1"), "filters_matched_q0.05": motifs.get("matched_q0.05"),
        "filters_matched_tfs_q0.1": motifs.get("matched_tfs_q0.1"),
        "top10_overlap_known": published.get("top10_overlap_known"), "top10_overlap_p": published.get("top10_overlap_p"),
        "lookup_terms": summary.get("lookup_terms", {}),
        "command": command,
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
