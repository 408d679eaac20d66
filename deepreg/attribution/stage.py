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
import pandas as pd

from deepreg.attribution.config import AttributionConfig
from deepreg.errors import DeepRegError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class AttributionRun:
    run_id: str
    summary: dict
    report: Path | None


# --------------------------------------------------------------------------------------------------
# Inputs: model, data, known targets, condition groups
# --------------------------------------------------------------------------------------------------
def _data_config(run):
    from deepreg.data.config import DataConfig

    params = {key: value for key, value in run.data.params.items() if key.startswith("data.") and key != "data.fingerprint"}
    try:
        return DataConfig.from_params(params, prefix="data.")
    except DeepRegError as error:
        raise DeepRegError(f"run {run.info.run_id}: its data params do not make a data config ({error})") from None


def condition_groups_from_file(path, conditions) -> dict[str, np.ndarray]:
    frame = pd.read_csv(path, sep=None, engine="python")
    if frame.shape[1] < 2:
        raise DeepRegError(f"condition groups {path}: expected columns condition and group")
    group_of = dict(zip(frame.iloc[:, 0].astype(str).str.strip(), frame.iloc[:, 1].astype(str)))
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(conditions):
        groups.setdefault(group_of.get(str(name).strip(), "other"), []).append(index)
    return {key: np.array(value) for key, value in groups.items()}


KEYWORD_GROUPS = (("heat shock", r"heat|hs\b|37|\bto 3[0-9]"), ("oxidative", r"h2o2|menadione|diamide|dtt|oxid"),
                  ("nitrogen", r"nitrogen|amino acid"), ("diauxic", r"diauxic|glucose|stationary|ypd.*day"),
                  ("osmotic", r"sorbitol|nacl|osmo"), ("steady growth", r"steady|ypd|growth|carbon|ethanol|galactose"))


def keyword_condition_groups(conditions) -> dict[str, np.ndarray]:
    """Condition groups from names (Gasch-style): heat shock, oxidative, nitrogen, ..., other."""
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(conditions):
        text = str(name).lower()
        group = next((label for label, pattern in KEYWORD_GROUPS if re.search(pattern, text)), "other")
        groups.setdefault(group, []).append(index)
    return {key: np.array(value) for key, value in groups.items()}


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


def file_safe(name: str) -> str:
    """A gene or TF name as part of a file name: letters, digits, '.', '-' and '_' only (no spaces)."""
    return re.sub(r"[^0-9A-Za-z._-]", "_", name)


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
    from deepreg.attribution import auto_knockouts, deeplift, knockouts, motifs, regulators, sequence
    from deepreg.attribution._progress import progress_bar
    from deepreg.attribution.predict import predict
    from deepreg.attribution.report import Report
    from deepreg.attribution.truth import load_truth, motif_checks, regulator_checks

    tables, figures, motif_dir = out / "tables", out / "figures", out / "motifs"
    for folder in (tables, figures, motif_dir):
        folder.mkdir(parents=True, exist_ok=True)
    background = data_config.background if data_config.n_encoding == "background" else None
    truth = load_truth(config.truth, data_config.bundle)
    report = Report(title, subtitle)
    summary: dict = {"data": {"genes": dataset.n_genes, "conditions": dataset.n_conditions,
                              "regulators": dataset.n_regulators}}
    checks: list[dict] = []
    timings: dict[str, float] = {}
    rng = np.random.default_rng(config.seed)

    genes = np.arange(dataset.n_genes)
    if config.max_genes and config.max_genes < dataset.n_genes:
        genes = np.sort(rng.choice(dataset.n_genes, config.max_genes, replace=False))
    sequences = dataset.sequences[genes]
    gene_ids = [dataset.genes[g] for g in genes]
    gene_symbols = [dataset.symbols[g] for g in genes]
    inputs = dataset.regulator_inputs()

    def named(position):
        symbol = gene_symbols[position]
        return symbol or gene_ids[position]

    # ---------------------------------------------------------------- 1. regulators
    started = time.perf_counter()
    say(f"regulator DeepLIFT for {len(genes) * dataset.n_conditions:,} pairs x {dataset.n_regulators} regulators ...")
    with progress_bar("regulator DeepLIFT", "gene") as progress:
        sums = deeplift.regulator_scores(model, sequences, inputs, reference=config.reference, reduce="abs_sum",
                                         background=background, gene_index=genes, progress=progress)
    timings["regulator_deeplift_s"] = time.perf_counter() - started
    gradient_sums = None
    if config.gradient_x_input:
        started = time.perf_counter()
        gradient_sums = deeplift.regulator_scores(model, sequences, inputs, rule="gradient", reduce="abs_sum",
                                                  background=background, gene_index=genes)
        timings["regulator_gradient_s"] = time.perf_counter() - started
    table = regulators.importance_table(dataset.regulators, dataset.regulator_symbols, sums, gradient_sums)
    if truth is not None:
        roles = dict(zip(truth.regulators["orf"], truth.regulators["role"]))
        table.insert(3, "truth_role", table["regulator"].map(roles).fillna(""))
        table["color"] = table["truth_role"].map({"master": "#cc3311", "minor": "#ee7733"}).fillna("#4477aa")
    table.drop(columns=["color"], errors="ignore").to_csv(tables / "regulator_importance.tsv", sep="\t", index=False)
    regulators.plot_distribution(table, figures / "regulator_importance.png")
    regulators.plot_methods(table, figures / "regulator_methods.png")
    np.save(tables / "regulator_deeplift_per_gene_abs.npy", sums.per_gene_abs.astype(np.float32))
    summary["regulators"] = {"pairs": sums.pairs, "summation_to_delta_max_error": sums.delta_error,
                             "skewness": regulators.skewness(table["deeplift_share"]),
                             "top": table["symbol"].head(10).tolist(), "seconds": timings["regulator_deeplift_s"]}

    report.heading("Summary")
    summary_slot = len(report.parts)
    report.heading("1. Regulator importance")
    report.text(f"DeepLIFT (rescale rule) scores of the {dataset.n_regulators} regulator inputs for every one of "
                f"{sums.pairs:,} (gene, condition) pairs, with the promoter fixed and the regulator reference "
                f"'{config.reference}' ({'no change: log ratio 0' if config.reference == 'zero' else 'mean over conditions'}); "
                f"summed as |score| per regulator. Summation to delta holds to {sums.delta_error:.1e}. "
                f"Skewness of the shares: {summary['regulators']['skewness']:.2f} (right-skewed: a few regulators dominate)."
                + (" Bars coloured by the simulation's truth: red planted masters, orange minor regulators, blue decoys."
                   if truth is not None else ""))
    report.figure(figures / "regulator_importance.png")
    shown = [c for c in ("rank", "symbol", "regulator", "truth_role", "deeplift_share", "deeplift_signed_mean",
                         "gradient_x_input_rank") if c in table]
    report.table(table[shown], max_rows=20, caption="ranked by the DeepLIFT sum of |score|")
    report.figure(figures / "regulator_methods.png", "DeepLIFT vs gradient x input per regulator")
    published = _published_overlap(table, report, tables)
    if published is not None:
        summary["regulators"]["published_overlap"] = published

    # ---------------------------------------------------------------- 2. known targets
    target_sets = _targets(config, truth, dataset, genes)
    report.heading("2. Known-target check")
    if target_sets:
        tests = regulators.target_tests(sums.per_gene_abs, target_sets, dataset.regulators, dataset.regulator_symbols)
        if gradient_sums is not None:
            tests_g = regulators.target_tests(gradient_sums.per_gene_abs, target_sets, dataset.regulators,
                                              dataset.regulator_symbols, method="gradient_x_input")
            tests = pd.concat([tests, tests_g], ignore_index=True)
        tests.to_csv(tables / "known_target_tests.tsv", sep="\t", index=False)
        report.text("Per regulator with a target list: one-sided Mann-Whitney U test that its targets get larger "
                    "per-gene sums of |score| (over conditions) than the other genes; effect size P(target > other).")
        report.table(tests[tests["method"] == "deeplift"], max_rows=20, caption="DeepLIFT")
        summary["targets"] = {"regulators_tested": int((tests["method"] == "deeplift").sum()),
                              "significant_p_0.01": int(((tests["method"] == "deeplift") & (tests["p_value"] < 0.01)).sum())}
    else:
        tests = None
        report.text("No target list was given (--targets), and the data has no ground truth.")
    references = _reference_target_sets(config, dataset, genes, target_sets, truth)
    if references:
        started = time.perf_counter()
        summary["known_targets"] = _known_target_section(references, sums, gradient_sums, dataset, config, report,
                                                         tables, figures)
        timings["known_targets_s"] = time.perf_counter() - started

    # ---------------------------------------------------------------- 3. sequence attribution
    say("predictions for all pairs ...")
    started = time.perf_counter()
    baseline = predict(model, sequences, inputs, background=background, gene_index=genes)
    timings["predictions_s"] = time.perf_counter() - started
    variance = baseline.var(axis=1)
    chosen = np.argsort(-variance, kind="stable")[:config.sequence_genes]
    report.heading("3. Sequence attribution")
    seq_scores = seq_grad = None
    if len(chosen):
        started = time.perf_counter()
        say(f"sequence DeepLIFT for {len(chosen)} promoters x {config.shuffles} shuffled references ...")
        seq_scores = deeplift.sequence_scores(model, sequences[chosen], inputs, n_shuffles=config.shuffles,
                                              seed=config.seed, reduce="sum", background=background,
                                              gene_index=genes[chosen])
        timings["sequence_deeplift_s"] = time.perf_counter() - started
        started = time.perf_counter()
        seq_grad = deeplift.sequence_scores(model, sequences[chosen], inputs, rule="gradient", reduce="sum",
                                            background=background, gene_index=genes[chosen])
        timings["sequence_gradient_s"] = time.perf_counter() - started
        profiles = {"DeepLIFT (dinucleotide-shuffled references)": sequence.position_profile(seq_scores.scores),
                    "gradient x input": sequence.position_profile(seq_grad.scores)}
        sequence.plot_position_bias(profiles, figures / "position_bias.png")
        np.savez_compressed(tables / "sequence_scores.npz", genes=np.array(gene_ids)[chosen],
                            deeplift=seq_scores.scores, hypothetical=seq_scores.hypothetical,
                            gradient_x_input=seq_grad.scores)
        bias = {name: sequence.position_bias(profile) for name, profile in
                zip(("deeplift", "gradient_x_input"), profiles.values())}
        summary["sequence"] = {"genes": int(len(chosen)), "references": config.shuffles, "position_bias": bias}
        report.text(f"DeepLIFT on the promoters of the {len(chosen)} genes whose predictions vary most over conditions, "
                    f"with {config.shuffles} dinucleotide-shuffled references per promoter, summed over the "
                    f"{dataset.n_conditions} conditions; and gradient x input. The per-position mean over genes exposes "
                    "systematic position bias (the notebook saw systematic +/- patches).")
        report.figure(figures / "position_bias.png")
        plot_names = list(config.plot_genes) or [named(chosen[i]) for i in
                                                 np.argsort(-np.abs(seq_scores.scores).sum(axis=(1, 2)))[:3]]
        lookup = {name.upper(): i for i, g in enumerate(chosen) for name in (gene_ids[g], gene_symbols[g]) if name}
        for name in plot_names:
            row = lookup.get(name.upper())
            if row is None:
                continue
            path = figures / f"sequence_{file_safe(name)}.png"
            sequence.plot_gene(seq_scores.scores[row], sequences[chosen[row]],
                               f"{name}: DeepLIFT summed over conditions", path, gradient=seq_grad.scores[row])
            report.figure(path)

    # ---------------------------------------------------------------- 4. motifs
    say("filter PWMs and TomTom ...")
    started = time.perf_counter()
    known, known_label = motifs.known_motifs(config.known_motifs)
    filters = motifs.filter_pwms(model, sequences, n_top=config.top_subsequences, background=background)
    motifs.write_meme(motif_dir / "filters.meme", filters.pwms, sites=filters.sites)
    motifs.write_meme(motif_dir / "filters_untrimmed.meme", filters.untrimmed, sites=filters.sites)
    comparisons = motifs.tomtom(filters.pwms, known)
    best = motifs.best_matches(comparisons, config.q_threshold)
    best.insert(1, "consensus", best["query"].map(lambda q: motifs.consensus(filters.pwms[q])))
    best.to_csv(tables / "filter_matches.tsv", sep="\t", index=False)
    comparisons[comparisons["q_value"] < 0.5].to_csv(tables / "filter_tomtom_all.tsv", sep="\t", index=False)
    motifs.plot_matches(filters.pwms, best, known, figures / "filter_logos.png")
    timings["motifs_s"] = time.perf_counter() - started
    n_matched = int(best["matched"].sum())
    summary["motifs"] = {"filters": len(filters.pwms) + len(filters.inactive), "filters_active": len(filters.pwms),
                         "filters_matched": n_matched, "known_motifs": len(known), **motifs.matched_counts(best)}
    report.heading("4. Motifs from first-layer filters")
    report.text(f"For each of the {len(filters.pwms)} active first-layer filters ({len(filters.inactive)} others "
                f"never activate), the PWM of its {config.top_subsequences} "
                f"most activating promoter subsequences (flanks under 0.25 bits trimmed), matched with TomTom "
                f"(memelite) against {len(known)} {known_label} motifs; q-values are Benjamini-Hochberg over all "
                f"{len(filters.pwms)} x {len(known)} filter x motif comparisons (not within each filter). "
                f"{n_matched} filters match a known motif at q < {config.q_threshold}; "
                f"{summary['motifs']['matched_q0.1']} at q < 0.1 "
                f"({', '.join(summary['motifs']['matched_tfs_q0.1'][:40]) or 'none'}) and "
                f"{summary['motifs']['matched_q0.05']} at q < 0.05. All PWMs are in motifs/filters.meme.")
    report.table(best[["query", "consensus", "target", "p_value", "q_value", "strand", "significant_targets"]],
                 max_rows=20, caption="best match of each filter")
    report.figure(figures / "filter_logos.png", "matched filters (left) and their best known motif (right)")

    modisco_best = None
    modisco_comparisons = None
    if config.modisco and config.modisco_genes and seq_scores is not None:
        say("TF-MoDISco ...")
        started = time.perf_counter()
        from deepreg.attribution import modisco
        use = np.arange(min(config.modisco_genes, len(chosen)))
        try:
            found = modisco.run_modisco(sequences[chosen][use], seq_scores.hypothetical[use],
                                        n_leiden_runs=config.modisco_leiden_runs)
        except Exception as error:  # modisco raises on too few seqlets
            log.warning("TF-MoDISco found no motifs: %s", error)
            found = []
        timings["modisco_s"] = time.perf_counter() - started
        report.heading("TF-MoDISco motifs", level=3)
        if found:
            pwms = {m.name: m.pwm for m in found}
            motifs.write_meme(motif_dir / "modisco.meme", pwms, sites={m.name: m.seqlets for m in found})
            modisco_comparisons = motifs.tomtom(pwms, known)
            modisco_best = motifs.best_matches(modisco_comparisons, config.q_threshold)
            modisco_best.insert(1, "seqlets", modisco_best["query"].map({m.name: m.seqlets for m in found}))
            modisco_best.insert(2, "consensus", modisco_best["query"].map(lambda q: motifs.consensus(pwms[q])))
            modisco_best.to_csv(tables / "modisco_matches.tsv", sep="\t", index=False)
            motifs.plot_matches(pwms, modisco_best, known, figures / "modisco_logos.png")
            summary["modisco"] = {"patterns": len(found), "matched": int(modisco_best["matched"].sum())}
            report.text(f"TF-MoDISco (modisco-lite) on the DeepLIFT hypothetical contributions of {len(use)} promoters: "
                        f"{len(found)} patterns, {summary['modisco']['matched']} match a known motif at q < {config.q_threshold}.")
            report.table(modisco_best[["query", "seqlets", "consensus", "target", "p_value", "q_value"]], max_rows=15)
            report.figure(figures / "modisco_logos.png")
        else:
            summary["modisco"] = {"patterns": 0, "matched": 0}
            report.text("TF-MoDISco found no patterns (too few significant seqlets).")

    # ---------------------------------------------------------------- 5. knock-outs
    say("in-silico knock-outs ...")
    started = time.perf_counter()
    report.heading("5. In-silico knock-outs")
    regulator_at = regulators.name_index(dataset.regulators, dataset.regulator_symbols)
    order = best.sort_values("p_value", kind="stable")["query"].head(config.knockout_filters)
    chosen_filters = {}
    labels = {}
    for name in order:
        index = filters.filter_index[name]
        match = best[best["query"] == name].iloc[0]
        labels[index] = f"{match['target']} (q {match['q_value']:.2g})"
        position = regulator_at.get(str(match["target_name"]).upper())
        chosen_filters[index] = target_sets.get(position) if position is not None else None
    filter_table = knockouts.filter_knockout_table(model, sequences, inputs, chosen_filters, genes=gene_ids,
                                                   symbols=gene_symbols, n_top=config.knockout_top_genes,
                                                   labels=labels, baseline=baseline, background=background,
                                                   gene_index=genes)
    filter_table.to_csv(tables / "filter_knockouts.tsv", sep="\t", index=False)
    timings["filter_knockouts_s"] = time.perf_counter() - started
    started = time.perf_counter()
    cached = knockouts.CachedKnockouts(model, sequences, background=background, gene_index=genes)
    report.text(f"Filter knock-out: the weights and bias of a filter set to zero; the {config.knockout_top_genes} genes "
                "whose predictions move most (mean |change| over conditions) are tested for enrichment in the targets "
                "of the filter's matched TF (one-sided Fisher exact test), when that TF is a regulator with targets.")
    report.table(filter_table, max_rows=config.knockout_filters)

    groups = _condition_groups(config, truth, dataset)
    tf_rows, tf_summary = [], {}
    for spec in _tf_knockout_specs(config, truth, dataset):
        name, motif = spec
        position = regulator_at.get(name.upper())
        if position is None:
            log.warning("TF knock-out %s: not a regulator of the data", name)
            continue
        mask = _site_mask(sequences, motif, known)
        result = cached.knockout(inputs, position, mask, fold=config.fold, name=name)
        members = target_sets.get(position)
        if members is None or not len(members):
            members = np.flatnonzero(mask.any(axis=1))  # without a target list: genes with sites
        per_group = knockouts.targets_vs_others(result.change, members, {"all conditions": np.arange(dataset.n_conditions),
                                                                         **groups})
        per_group.insert(0, "regulator", name)
        per_group.insert(1, "motif", motif)
        per_group["genes_with_sites"] = result.genes_with_sites
        tf_rows.append(per_group)
        knockouts.plot_tf_knockout(result, members, groups or {"all": np.arange(dataset.n_conditions)},
                                   figures / f"tf_knockout_{file_safe(name)}.png")
        overall = per_group.iloc[0]
        tf_summary[name] = {"ratio": float(overall["ratio"]), "p_value": float(overall["p_value"]),
                            "genes_with_sites": result.genes_with_sites}
        if config.measured and config.measured.split("=", 1)[0].upper() == name.upper():
            measured = knockouts.read_measured_profile(config.measured.split("=", 1)[1], gene_ids, gene_symbols)
            tf_summary[name]["spearman_measured"] = knockouts.compare_measured(result.change, measured)["rho"]
    timings["tf_knockouts_s"] = time.perf_counter() - started
    if tf_rows:
        tf_table = pd.concat(tf_rows, ignore_index=True)
        tf_table.to_csv(tables / "tf_knockouts.tsv", sep="\t", index=False)
        report.text(f"TF knock-out: every site of the motif (and its reverse complement) replaced by N and the TF's "
                    f"expression lowered {config.fold:g}-fold (log2 input - {np.log2(config.fold):.0f}); mean |predicted "
                    "change| of its targets vs the other genes, per condition group (one-sided Mann-Whitney U).")
        report.table(tf_table, max_rows=60)
        for name in tf_summary:
            report.figure(figures / f"tf_knockout_{file_safe(name)}.png")
            if "spearman_measured" in tf_summary[name]:
                report.text(f"{name}: Spearman correlation of predicted and measured change "
                            f"{tf_summary[name]['spearman_measured']:.3f}.")
    else:
        report.text("No TF knock-out requested (--knockout NAME[=MOTIF]) and no ground truth to choose planted TFs.")
    summary["knockouts"] = {"filters": len(filter_table), "tfs": tf_summary}
    started = time.perf_counter()
    with progress_bar("automatic TF knock-outs", "TF") as progress:
        automatic = auto_knockouts.section(cached, inputs, references, dataset, config, known, report, tables,
                                           progress=progress)
    timings["auto_knockouts_s"] = time.perf_counter() - started
    if automatic:
        summary["knockouts"]["auto"] = automatic
    if config.measured_deletions:
        started = time.perf_counter()
        deleted = _measured_deletion_section(cached, sequences, inputs, dataset, data_config, genes, regulator_at,
                                             config, known, report, tables)
        timings["measured_deletions_s"] = time.perf_counter() - started
        if deleted:
            summary["knockouts"]["measured_deletions"] = deleted
    summary["held_out_conditions"] = _held_out_names(dataset, data_config)

    # ---------------------------------------------------------------- 7. lookup terms
    started = time.perf_counter()
    lookup = _lookup_term_section(model, sequences, inputs, baseline, genes, background, report, tables)
    timings["lookup_terms_s"] = time.perf_counter() - started
    if lookup:
        summary["lookup_terms"] = lookup
    summary["training_split"] = {"kind": data_config.split, "fractions": list(data_config.split_fractions),
                                 "seed": data_config.split_seed}

    # ---------------------------------------------------------------- 6. ground truth
    if truth is not None:
        reg_check = regulator_checks(truth, table)
        motif_check = motif_checks(truth, comparisons, config.q_threshold)
        motif_check.to_csv(tables / "truth_motifs_filters.tsv", sep="\t", index=False)
        summary["truth"] = {"regulators": reg_check,
                            "planted_motifs": int(len(motif_check)),
                            "planted_motifs_matched_by_filters": int(motif_check["matched"].sum()) if len(motif_check) else 0}
        if modisco_comparisons is not None:
            modisco_check = motif_checks(truth, modisco_comparisons, config.q_threshold)
            modisco_check.to_csv(tables / "truth_motifs_modisco.tsv", sep="\t", index=False)
            summary["truth"]["planted_motifs_matched_by_modisco"] = int(modisco_check["matched"].sum())
            either = set(motif_check.loc[motif_check["matched"], "regulator"]) | set(
                modisco_check.loc[modisco_check["matched"], "regulator"])
            summary["truth"]["planted_motifs_matched_either"] = len(either)
        master_symbols = truth.regulators.loc[truth.regulators["role"] == "master", "symbol"].tolist()
        planted_orfs = set(truth.planted["orf"])
        if tests is not None and len(tests):
            dl_tests = tests[(tests["method"] == "deeplift") & tests["regulator"].isin(planted_orfs)]
            summary["truth"]["planted_target_tests"] = int(len(dl_tests))
            summary["truth"]["planted_target_tests_p_0.01"] = int((dl_tests["p_value"] < 0.01).sum())
            master_tests = dl_tests[dl_tests["symbol"].isin(master_symbols)]
            summary["truth"]["master_target_tests_p_0.01"] = int((master_tests["p_value"] < 0.01).sum())
        k = len(master_symbols)
        checks.append({"check": f"planted masters ({', '.join(master_symbols)}) at the top of the regulator table",
                       "result": f"precision at {k} = {reg_check[f'precision_at_{k}_masters']:.2f}, at 5 = "
                                 f"{reg_check['precision_at_5_masters']:.2f}, at 10 = {reg_check['precision_at_10_masters']:.2f}; "
                                 f"ranks {reg_check['master_ranks']}",
                       "criterion": "masters in the top 5", "passed": reg_check["recall_masters_in_top_5"] == 1.0})
        matched_names = motif_check.loc[motif_check["matched"], "regulator"].tolist() if len(motif_check) else []
        checks.append({"check": "planted motifs matched by first-layer filters (TomTom)",
                       "result": f"{len(matched_names)} of {len(motif_check)}: {', '.join(matched_names) or 'none'}",
                       "criterion": f"q < {config.q_threshold}", "passed": len(matched_names) > 0})
        if "planted_motifs_matched_by_modisco" in summary["truth"]:
            modisco_names = modisco_check.loc[modisco_check["matched"], "regulator"].tolist()
            checks.append({"check": "planted motifs matched by TF-MoDISco patterns",
                           "result": f"{len(modisco_names)} of {len(modisco_check)}: {', '.join(modisco_names) or 'none'}",
                           "criterion": f"q < {config.q_threshold}", "passed": None})
        if tests is not None and len(tests):
            dl_tests = tests[(tests["method"] == "deeplift") & tests["regulator"].isin(planted_orfs)]
            detail = ", ".join(f"{r.symbol} {r.p_value:.1e}" for r in dl_tests.itertuples())
            master_ok = summary["truth"]["master_target_tests_p_0.01"] == len(master_symbols)
            checks.append({"check": "known-target test for planted regulators (DeepLIFT)",
                           "result": f"{summary['truth']['planted_target_tests_p_0.01']} of {len(dl_tests)} at p < 0.01 ({detail})",
                           "criterion": "p < 0.01 for the planted masters", "passed": master_ok})
        for name, values in tf_summary.items():
            checks.append({"check": f"{name} knock-out moves its targets more than other genes",
                           "result": f"mean |change| ratio {values['ratio']:.2f}, p = {values['p_value']:.1e}",
                           "criterion": "ratio > 1, p < 0.01", "passed": values["ratio"] > 1 and values["p_value"] < 0.01})
        report.heading("6. Ground truth (simulation)")
        report.text(f"Checks against the planted regulators, targets and motifs in {truth.folder}.")
        report.table(motif_check, caption="planted motifs: best matching filter")
        summary["checks"] = [{k: v for k, v in c.items()} for c in checks]

    summary["timings"] = timings
    summary_html = Report("", "")
    if checks:
        summary_html.checks(checks)
    top = ", ".join(table["symbol"].head(10))
    summary_html.text(f"Top regulators (DeepLIFT): {top}. Filters matched to known motifs: {n_matched} of "
                      f"{len(filters.pwms)} active." + (f" TF-MoDISco patterns matched: {summary['modisco']['matched']} of "
                                                  f"{summary['modisco']['patterns']}." if "modisco" in summary else ""))
    held_out = summary["held_out_conditions"]
    summary_html.text(f"Conditions held out of training (data.exclude_conditions): {len(held_out)}"
                      + (f" ({'; '.join(held_out)})." if held_out else "."))
    for name, values in summary.get("known_targets", {}).items():
        summary_html.text(f"Known targets ({name}): {values['tfs_tested']} TFs tested, "
                          f"{values['fraction_tfs_auroc_above_half']:.0%} with AUROC > 0.5 and "
                          f"{values[f'fraction_tfs_q_below_{config.known_target_q:g}']:.0%} with decoy-controlled "
                          f"q < {config.known_target_q:g}.")
    report.parts[summary_slot:summary_slot] = summary_html.parts
    report.write(out / "report.html")
    (out / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2))
    return summary


def _published_overlap(table: pd.DataFrame, report, tables: Path) -> dict | None:
    """Top-10 overlap with the notebook's and Kundaje 2006's regulators, when the data has those genes."""
    from deepreg.attribution import regulators

    overlap = regulators.published_overlap(table)
    if not len(overlap) or overlap["among_regulators"].max() == 0:
        return None
    overlap.to_csv(tables / "published_regulator_overlap.tsv", sep="\t", index=False)
    report.text(f"Top 10 regulators against published rankings: the notebook's top 10 "
                f"({', '.join(regulators.NOTEBOOK_TOP10)}) and the top parents of Kundaje et al. 2006 "
                f"({', '.join(regulators.KUNDAJE_2006_TOP_PARENTS)}); overlap and hypergeometric p over the "
                f"{len(table)} regulators (names not among them are left out of the list).")
    report.table(overlap, caption="overlap of the top 10 with published regulators")
    either = overlap[(overlap["method"] == "deeplift") & (overlap["published"] == "either")].iloc[0]
    return {"top10_overlap_known": int(either["overlap"]), "top10_overlap_p": float(either["p_value"]),
            "rows": overlap.to_dict(orient="records")}


def _reference_target_sets(config: AttributionConfig, dataset, genes, target_sets, truth) -> dict:
    """{reference name: (label, {regulator index: gene positions})}: the --known-targets tables, else the
    --targets file or the truth's targets (so simulated data gets the decoy-controlled test too)."""
    from deepreg.attribution import known_targets

    if config.known_targets:
        out = {}
        for reference in known_targets.load_references(config.known_targets):
            resolved = known_targets.resolve_reference(reference, dataset, genes)
            if not resolved:
                raise DeepRegError(f"known targets {reference.source}: none of its TFs is a regulator of the data "
                                   "with targets among its genes (TFs are matched by ORF id or gene symbol)")
            out[reference.name] = (reference.label, resolved)
        return out
    if target_sets:
        return {"targets" if config.targets else "truth": ("the given targets" if config.targets else
                                                           "the simulation's planted targets", target_sets)}
    return {}


def _known_target_section(references: dict, sums, gradient_sums, dataset, config: AttributionConfig, report,
                          tables: Path, figures: Path) -> dict:
    from deepreg.attribution import known_targets

    scores = {"deeplift": sums.per_gene_abs, "deeplift_share": known_targets.per_gene_share(sums.per_gene_abs)}
    if gradient_sums is not None:
        scores.update({"gradient_x_input": gradient_sums.per_gene_abs,
                       "gradient_x_input_share": known_targets.per_gene_share(gradient_sums.per_gene_abs)})
    ranks = {method: known_targets.column_ranks(per_gene) for method, per_gene in scores.items()}
    q = config.known_target_q
    results, frames, for_plot = {}, [], {}
    for name, (label, target_sets) in references.items():
        results[name] = {"label": label}
        for method, per_gene in scores.items():
            table, decoys = known_targets.decoy_target_tests(per_gene, target_sets, dataset.regulators,
                                                             dataset.regulator_symbols, reference=name, method=method,
                                                             ranks=ranks[method])
            frames.append(table)
            if method == "deeplift":
                for_plot[name] = (table, decoys)
            values = known_targets.summarise(table, q)
            for tf in ("MSN2", "MSN4"):
                line = known_targets.tf_line(table, tf)
                if line is not None:
                    values[tf.lower()] = line
            if method == "deeplift":
                results[name].update(values)
            else:
                results[name][{"deeplift_share": "per_gene_share"}.get(method, method)] = values
    every = pd.concat(frames, ignore_index=True)
    every.to_csv(tables / "known_target_decoy_tests.tsv", sep="\t", index=False)
    known_targets.plot_auroc_null(for_plot, figures / "known_target_auroc.png")
    report.heading("Decoy-controlled known-target test", level=3)
    report.text("Per TF with targets among the scored genes: the AUROC of its per-gene attribution (sum of "
                "|DeepLIFT| over conditions) for its known targets against the other genes, and the same AUROC "
                "for every other regulator on that target set (the decoys). Rank 1 = no regulator separates the "
                "targets better; p = (1 + decoys with AUROC >= the TF's) / (1 + decoys); q = Benjamini-Hochberg "
                "across the TFs of a reference. A Mann-Whitney test without decoys (mwu_p, the paper's test) "
                "passes for most regulators on any set of highly variable genes; this one can fail. The rows "
                "'deeplift_share' repeat the test on each gene's attribution shares (a regulator's part of the gene's "
                "total over regulators), which removes the gene-variability factor all regulators share.")
    summary_rows = [{"reference": name, "what": values["label"], "TFs tested": values["tfs_tested"],
                     "AUROC > 0.5": f"{values['tfs_auroc_above_half']} ({values['fraction_tfs_auroc_above_half']:.0%})",
                     f"q < {q:g}": f"{values[f'tfs_q_below_{q:g}']} ({values[f'fraction_tfs_q_below_{q:g}']:.0%})",
                     "median AUROC": values["median_auroc"], "median rank": values["median_rank"],
                     f"q < {q:g} (shares)": f"{values['per_gene_share'][f'tfs_q_below_{q:g}']} "
                                            f"({values['per_gene_share'][f'fraction_tfs_q_below_{q:g}']:.0%})"}
                    for name, values in results.items()]
    report.table(pd.DataFrame(summary_rows), caption="per reference (DeepLIFT)")
    for name, values in results.items():
        for tf in ("msn2", "msn4"):
            if tf in values:
                line = values[tf]
                report.text(f"{tf.upper()} ({name}): {line['targets']} targets, AUROC {line['auroc']:.3f}, rank "
                            f"{line['rank']} of {line['regulators']}; paper-style p (Mann-Whitney, no decoys) = "
                            f"{line['mwu_p']:.2g}; decoy-controlled p = {line['decoy_p']:.2g} (q {line['q_value']:.2g})"
                            + (f"; on attribution shares rank {values['per_gene_share'][tf]['rank']}, decoy p "
                               f"{values['per_gene_share'][tf]['decoy_p']:.2g}." if tf in values["per_gene_share"] else "."))
    report.figure(figures / "known_target_auroc.png", "AUROC of each TF on its own targets (red) against the "
                                                     "decoy regulators on the same targets (grey)")
    for method in ("deeplift", "deeplift_share"):
        report.table(every[every["method"] == method].head(30), max_rows=30, caption=f"TFs, best first ({method})")
    return results


def _held_out_names(dataset, data_config) -> list[str]:
    from deepreg.data.splits import excluded_conditions

    if not data_config.exclude_conditions:
        return []
    return [dataset.conditions[i] for i in excluded_conditions(dataset.conditions, data_config.exclude_conditions)]


def _measured_deletion_section(cached, sequences, inputs, dataset, data_config, genes, regulator_at, config, known,
                               report, tables: Path) -> dict:
    """Knock-outs against the deletion arrays of the compendium (Gasch 2000), when the data has them."""
    from deepreg.attribution import deletions
    from deepreg.data.splits import excluded_conditions

    held_out = (excluded_conditions(dataset.conditions, data_config.exclude_conditions)
                if data_config.exclude_conditions else [])
    table = deletions.deletion_checks(cached, inputs, dataset.expression[genes], dataset.conditions,
                                      regulator_at, fold=config.fold,
                                      site_mask=lambda motif: _site_mask(sequences, motif, known), held_out=held_out,
                                      n_top=config.deletion_top_genes)
    if not len(table):
        return {}
    table.to_csv(tables / "measured_deletion_knockouts.tsv", sep="\t", index=False)
    report.heading("Knock-outs against measured deletions", level=3)
    all_held = bool(table["mutants_held_out"].all())
    report.text(f"In-silico knock-out predicted in the wild-type array only: the TFs' regulator inputs lowered "
                f"{config.fold:g}-fold (log2 ratio - {np.log2(config.fold):.0f}; the data are log2 ratios) and, in one "
                "variant, their sites (consensus and reverse complement) masked to N in every promoter; compared with "
                "the measured deletion minus wild type (mean over the deletion arrays): Spearman over all genes and "
                f"over the {config.deletion_top_genes} genes whose measured change is largest. "
                + ("The deletion arrays were held out of training (data.exclude_conditions)." if all_held else
                   "Warning: some deletion arrays were used in training (see mutants_held_out): set "
                   "data.exclude_conditions to hold them out for an honest test."))
    report.table(table[["deletion", "variant", "tfs", "motif", "condition_numbers", "mutants_held_out", "genes",
                        "spearman", "spearman_p", "top_genes", "spearman_top", "genes_with_sites"]], max_rows=20)
    out = {}
    for row in table.itertuples():
        key = row.deletion + ("" if row.variant.startswith("sites") else "_no_masking")
        out[key] = {"spearman": row.spearman, "spearman_top": row.spearman_top, "genes": row.genes,
                    "mutants_held_out": bool(row.mutants_held_out)}
    return out


def _lookup_term_section(model, sequences, inputs, baseline, genes, background, report, tables: Path) -> dict:
    from deepreg.attribution.gene_terms import lookup_term_shares

    shares = lookup_term_shares(model, sequences, inputs, baseline=baseline, background=background, gene_index=genes)
    if not len(shares):
        return {}
    shares.to_csv(tables / "lookup_terms.tsv", sep="\t", index=False)
    report.heading("7. Per-gene and per-condition lookup terms (not regulation)")
    report.text("Parts of the prediction read from the gene's or condition's row (an embedding, a baseline "
                "table), not from the promoter or the regulators. DeepLIFT scores give them nothing (they are the "
                "same at the input and the reference), so they are not counted as regulation; their share of the "
                "prediction variance over all pairs, var(f - f without the term) / var(f), is what the regulator "
                "and sequence scores cannot explain.")
    report.table(shares)
    return {row.term.split(" (")[0].replace(" ", "_"): {"variance_share": row.variance_share,
                                                         "mean_abs_part": row.mean_abs_part}
            for row in shares.itertuples()}


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


def _targets(config: AttributionConfig, truth, dataset, genes) -> dict[int, np.ndarray]:
    from deepreg.attribution import regulators

    if config.targets:
        raw = regulators.read_targets(config.targets, regulator=config.targets_of)
    elif truth is not None and truth.targets_file.is_file():
        raw = regulators.read_targets(truth.targets_file)
    else:
        return {}
    resolved = regulators.resolve_targets(raw, dataset.regulators, dataset.regulator_symbols,
                                          [dataset.genes[g] for g in genes], [dataset.symbols[g] for g in genes])
    if config.targets and not resolved:
        raise DeepRegError(f"targets file {config.targets}: none of its regulators and genes are in the data")
    return resolved


def _condition_groups(config: AttributionConfig, truth, dataset) -> dict[str, np.ndarray]:
    if config.condition_groups:
        return condition_groups_from_file(config.condition_groups, dataset.conditions)
    if truth is not None:
        groups = truth.condition_groups(dataset.conditions)
        if groups:
            return groups
    return keyword_condition_groups(dataset.conditions)


def _tf_knockout_specs(config: AttributionConfig, truth, dataset) -> list[tuple[str, str]]:
    """(regulator name, motif) pairs: from --knockout NAME[=CONSENSUS|JASPAR_ID], else the planted masters."""
    from deepreg.attribution import auto_knockouts

    specs = []
    for item in config.tf_knockouts:
        if item.strip().lower() == auto_knockouts.AUTO:
            continue
        name, _, motif = item.partition("=")
        if not motif and truth is not None:
            row = truth.regulators[(truth.regulators["symbol"].str.upper() == name.upper()) |
                                   (truth.regulators["orf"].str.upper() == name.upper())]
            motif = row["motif_consensus"].iloc[0] if len(row) and row["motif_consensus"].iloc[0] else ""
        specs.append((name, motif or name))
    if not specs and truth is not None:
        masters = truth.regulators[truth.regulators["role"] == "master"]
        specs = [(row["symbol"], row["motif_consensus"]) for _, row in masters.iterrows() if row["motif_consensus"]]
    return specs


def _site_mask(sequences, motif: str, known: dict) -> np.ndarray:
    """Sites of a consensus (IUPAC) or of a known motif by JASPAR id or TF name (PWM scan)."""
    from deepreg.attribution import motifs

    if re.fullmatch(r"[ACGTRYSWKMBDHVNacgtryswkmbdhvn]+", motif) and not any(
            motif.upper() == key.split(" ", 1)[-1].upper() for key in known):
        return motifs.consensus_sites(sequences, motif)
    for key, pwm in known.items():
        identifier, _, name = key.partition(" ")
        if motif.upper() in (identifier.upper(), name.upper(), motifs.base_id(identifier)):
            return motifs.pwm_sites(sequences, pwm)
    raise DeepRegError(f"TF knock-out motif {motif!r}: not an IUPAC consensus, nor a known motif id or name")
