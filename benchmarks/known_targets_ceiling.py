"""How far the decoy-controlled known-target test can go without a network, on the real compendium.

The attribution stage scores each regulator's per-gene attribution (G x R) against known TF -> target
tables: per TF the AUROC of its targets, its rank among all regulators on the same target set, an
empirical p from those decoys and a Benjamini-Hochberg q across TFs (`deepreg.attribution.known_targets`).
This script feeds the same test with per-gene regulator scores that need no network, over the
conditions the attribution model trains on (the deletion and overexpression arrays left out):

- `abs_corr`: |Pearson r| between the gene's profile and the regulator's expression over conditions;
- `abs_ridge`: |weight| of a per-gene ridge regression on the standardised regulators (the trans
  ridge's form; its attribution by gradient x input over conditions ranks genes the same way);

each raw and as the gene's share over regulators. If none of them reaches the bar, the bar asks the
data for more than regulator mRNA levels carry, whatever model sits on top.

The same for the knock-outs against the measured deletions (`deepreg.attribution.deletions`): the
per-gene ridge's prediction of lowering the deleted TFs' inputs 32-fold in the wild-type array, for
a range of penalties, and a sequence-only guess (minus the count of the TF's site on both strands).

    python benchmarks/known_targets_ceiling.py [--ridge 50] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

from deepreg.attribution import deletions, known_targets
from deepreg.attribution.motifs import IUPAC
from deepreg.attribution.regulators import name_index
from deepreg.data.dataset import load_dataset
from deepreg.data.encoding import decode
from deepreg.data.splits import excluded_conditions
from deepreg.training.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "experiments" / "attribution-yeast.yaml"


def training_conditions(conditions, patterns) -> np.ndarray:
    """The conditions `data.exclude_conditions` leaves in (the ones the attribution model trains on)."""
    keep = np.ones(len(conditions), bool)
    keep[excluded_conditions(conditions, patterns)] = False
    return keep


def network_free_scores(expression: np.ndarray, regulators: np.ndarray, ridge: float) -> dict[str, np.ndarray]:
    """G x R per-gene regulator scores from correlation and from a per-gene ridge on the regulators."""
    centred = np.nan_to_num(expression - np.nanmean(expression, axis=1, keepdims=True))
    standard = (regulators - regulators.mean(axis=0)) / (regulators.std(axis=0) + 1e-9)
    unit_rows = centred / (np.linalg.norm(centred, axis=1, keepdims=True) + 1e-9)
    correlation = unit_rows @ standard / np.sqrt(len(standard))
    return {"abs_corr": np.abs(correlation), "abs_ridge": np.abs(ridge_weights(expression, standard, ridge))}


def ridge_weights(expression: np.ndarray, regulators: np.ndarray, ridge: float) -> np.ndarray:
    """G x R weights of a per-gene ridge of each gene's centred profile on the centred regulator inputs."""
    centred = np.nan_to_num(expression - np.nanmean(expression, axis=1, keepdims=True))
    inputs = regulators - regulators.mean(axis=0)
    return np.linalg.solve(inputs.T @ inputs + ridge * np.eye(inputs.shape[1]), inputs.T @ centred.T).T


def site_counts(texts: list[str], site: str) -> np.ndarray:
    """Occurrences (overlapping ones too) of an IUPAC site on both strands of each promoter text."""
    complement = {"A": "T", "C": "G", "G": "C", "T": "A"}
    strands = {site, "".join(complement.get(base, base) for base in reversed(site))}  # S, W, N are their own
    regexes = [re.compile("(?=[" + "][".join(IUPAC[base] for base in strand) + "])") for strand in strands]
    return np.array([sum(len(regex.findall(text)) for regex in regexes) for text in texts], float)


def knockout_ceiling(dataset, keep: np.ndarray, penalties=(10.0, 100.0, 1000.0, 10000.0), fold: float = 32.0) -> list[dict]:
    """Spearman of network-free knock-out predictions with each measured deletion (all genes, top 200)."""
    expression = dataset.expression.astype(float)
    inputs = dataset.regulator_inputs().astype(float)
    position = name_index(dataset.regulators, dataset.regulator_symbols)
    weights = {penalty: ridge_weights(expression[:, keep], inputs[keep], penalty) for penalty in penalties}
    texts = decode(dataset.sequences)
    sites = {motif: -site_counts(texts, motif) for motif in {deletion.motif for deletion in deletions.GASCH_DELETIONS}}
    rows = []
    for deletion in deletions.GASCH_DELETIONS:
        mutant = deletions.conditions_matching(dataset.conditions, deletion.mutant)
        wild = deletions.conditions_matching(dataset.conditions, deletion.wild_type)
        tfs = [position[tf] for tf in deletion.tfs if tf in position]
        if not len(mutant) or len(wild) != 1 or not tfs:
            continue
        measured = deletions.measured_effect(expression, mutant, int(wild[0]))
        lowered = np.zeros(inputs.shape[1])
        lowered[tfs] = -np.log2(fold)
        guesses = {f"ridge {penalty:g}": matrix @ lowered for penalty, matrix in weights.items()}
        guesses[f"-{deletion.motif} sites"] = sites[deletion.motif]
        for name, predicted in guesses.items():
            rows.append({"deletion": deletion.key, "prediction": name,
                         **deletions.compare(predicted, measured, n_top=200)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ridge", type=float, default=50.0, help="ridge penalty on standardised regulators")
    parser.add_argument("--json", type=Path, default=None, help="also write the records as JSON")
    args = parser.parse_args()

    started = time.perf_counter()
    config = RunConfig.from_files(CONFIG)
    dataset = load_dataset(config.data)
    keep = training_conditions(dataset.conditions, config.data.exclude_conditions)
    scores = network_free_scores(dataset.expression[:, keep].astype(float),
                                 dataset.regulator_inputs()[keep].astype(float), args.ridge)
    genes = np.arange(dataset.n_genes)
    records = []
    print(f"{dataset.n_genes:,} genes x {int(keep.sum())} training conditions x {len(dataset.regulators)} regulators")
    print(f"{'reference':<14} {'score':<16} {'TFs':>4} {'AUROC>0.5':>10} {'q<0.1':>6} {'MSN2 rank':>10} {'MSN2 p':>8}")
    for reference in known_targets.bundled_references():
        target_sets = known_targets.resolve_reference(reference, dataset, genes)
        for name, per_gene in scores.items():
            for form, matrix in (("raw", per_gene), ("share", known_targets.per_gene_share(per_gene))):
                table, _ = known_targets.decoy_target_tests(matrix, target_sets, dataset.regulators,
                                                            dataset.regulator_symbols, reference=reference.name)
                summary = known_targets.summarise(table)
                msn2 = known_targets.tf_line(table, "MSN2") or {}
                records.append({"reference": reference.name, "score": name, "form": form, **summary,
                                "msn2_rank": msn2.get("rank"), "msn2_mwu_p": msn2.get("mwu_p"),
                                "msn2_decoy_p": msn2.get("decoy_p")})
                print(f"{reference.name:<14} {name + ' ' + form:<16} {summary['tfs_tested']:>4} "
                      f"{summary['fraction_tfs_auroc_above_half']:>10.2f} {summary['fraction_tfs_q_below_0.1']:>6.3f} "
                      f"{msn2.get('rank', '-'):>10} {msn2.get('mwu_p', float('nan')):>8.2g}", flush=True)
    knockouts = knockout_ceiling(dataset, keep)
    print(f"\n{'deletion':<12} {'prediction':<14} {'Spearman':>9} {'top 200':>8}")
    for row in knockouts:
        print(f"{row['deletion']:<12} {row['prediction']:<14} {row['spearman']:>9.3f} {row['spearman_top']:>8.3f}")
    print(f"{time.perf_counter() - started:.0f} s")
    if args.json:
        command = "python benchmarks/known_targets_ceiling.py" + (f" --ridge {args.ridge:g}" if args.ridge != 50 else "")
        keys = ("deletion", "prediction", "spearman", "spearman_top", "genes", "top_genes")
        args.json.write_text(json.dumps({"command": command, "ridge": args.ridge, "known_targets": records,
                                         "knockouts": [{key: row[key] for key in keys} for row in knockouts]},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
