"""A simulated yeast-like expression compendium with a known regulatory truth.

The generator writes a dataset in the project's bundle layout (expression PCL, promoter FASTA,
regulator list, gene table, manifest) plus a `truth/` folder that says which regulator drives which
gene through which planted sites, so that model accuracy and attribution can be scored.

The model, as a biologist would read it
---------------------------------------
Genes. `n_genes` rows: `n_regulators` real yeast regulators under their SGD systematic names, and
`YSIM0001`, ... for the rest (the `SIM` cannot collide with a real ORF name).

Promoters. 1,000 bp directly upstream of each ORF, written 5'->3' so the ORF start lies just past the
last base. The background is a first-order Markov chain whose base composition is yeast-like
(A/T 0.31, C/G 0.19) with yeast-like dinucleotide biases (AA/TT enriched, CpG depleted). About 1 % of
genes have no promoter (as for ORFs that cannot be placed on the current genome), about 2 % have a
shorter one (truncated at the distal, 5' end, as near a chromosome end) and about 1 % carry a run of N.

Regulators. Twelve transcription factors with planted motifs, each with its real JASPAR2026 CORE fungi
matrix: MSN2, RAP1 and GCN4 are master regulators (300, 180 and 140 targets at the default size;
counts scale with the number of genes); MSN4, SFP1, DOT6, HSF1, YAP1, SKN7, SKO1, MIG1 and GLN3 are
minor (35-80 targets). With fewer regulators, the first ones of the table are kept. Target sets overlap as
the biology says: MSN4 binds the same STRE sites as MSN2 (its targets are a subset of MSN2's), HSF1
shares part of MSN2's targets, SFP1 part of RAP1's (ribosomal-protein genes), DOT6 part of SFP1's
(ribosome biogenesis), SKN7 part of YAP1's, GLN3 part of GCN4's. Stress-induced and growth
(ribosome) modules do not share genes. The remaining regulators are decoys: real yeast signalling
genes and transcription factors (USV1, GAC1, RAS1, TPK1, SLT2, ...) with no targets.

Sites. Each target gets 1-3 sites per regulator, sampled from the regulator's matrix sharpened
towards the consensus (probabilities squared, renormalised: functional sites are near-consensus), in
either orientation, at a distance from the ORF start drawn mostly from a gamma distribution (mode
about 110 bp, mean 220 bp; 20 % uniform over the promoter), never overlapping each other or an N run.
Chance matches in the background are left alone: like real promoters, non-targets carry
non-functional motif instances (an AGGGG occurs in about half of all 1-kb promoters).

Conditions. Six programmes, each a series: heat shock (25 -> 37 C, 5-80 min), a temperature
downshift (37 -> 25 C, 5-90 min, where the stress response is transiently reversed), oxidative stress
(0.3 mM H2O2, 10-160 min), nitrogen starvation (0.5-120 h), the diauxic shift (9-21 h of growth) and
steady-state growth at 17-37 C. They drive five latent signals - general stress (the environmental
stress response), heat, oxidative, nitrogen and glucose depletion - with realistic kinetics: a
transient peak then partial adaptation for the shocks, a saturating rise for starvation, a sigmoid
through glucose exhaustion, and in steady state a stress signal rising with temperature (negative
below 27 C) plus mild heat above 29 C. Every condition adds its own small deviation to each signal.

Regulator expression (log2 ratio to the unstressed reference) is a fixed loading vector times the
signals plus regulator-specific noise: MSN2/MSN4/DOT6 rise with general stress, HSF1 with heat,
YAP1/SKN7 with oxidative stress, GCN4/GLN3 with nitrogen starvation, RAP1/SFP1 fall with stress, MIG1
and SKO1 fall when their repression is relieved (glucose exhaustion, oxidative stress). Decoys follow
the same signals: 60 % shadow one true factor (its loadings scaled, plus noise), 40 % load on random
signals, so a decoy can correlate strongly with a true regulator and attribution is a fair test.

Target expression, for gene g in condition c:

    y[g, c] = b[g] + sum over bound TFs t of  e[g, t] * h(x[t, c])  +  w[g] . s[c]  +  noise

- x[t, c] is the regulator's expression as written in the matrix (noise included, so the true
  regulator, not its correlated decoy, carries the signal);
- h(x) = 2.5 tanh(x / 2.5), a response that saturates for strong induction;
- e[g, t] = sign[t] * strength[t] * occupancy, where occupancy = (1 + K) a / (a + K), K = 1, sums the
  site affinities a = sum exp((score - best score) / 2) (natural log-odds against the background):
  one consensus site gives 1, three give 1.5. Repressors (DOT6, SKO1, MIG1) have sign -1: RAP1/SFP1
  targets fall under stress because their activators fall, DOT6 targets fall because their repressor
  rises, MIG1 targets rise at the diauxic shift because their repressor falls;
- b[g] ~ N(0, 0.1) is a gene-specific offset, w[g] ~ N(0, 0.05) per signal a weak programme effect
  that no promoter explains, and the noise is Gaussian with a gene-specific standard deviation
  (`noise_sd` times a log-normal factor).

Regulator rows are their x[t, c]. Finally `missing_fraction` of all cells are blanked at random.
Values are written with three decimals.

Calibration at the defaults (seed 0): about 24 % of the observed pairs lie beyond |0.5| (10 % down,
14 % up; the real Gasch compendium has 35 %), values mostly within -2.5..+3. On a random 10 % of
pairs, the noise-free generative value reaches Pearson r 0.94 and the gene's mean 0.51.

Truth files. `truth/regulators.tsv` (role, sign, strength, motif, loadings; the factor a decoy shadows),
`truth/targets.tsv` (regulator, gene, n_sites, effect e), `truth/sites.tsv` (every planted site:
0-based start in the written promoter, strand, sequence, log-odds score, distance to the ORF),
`truth/motifs.meme` (the planted JASPAR matrices) and `truth/conditions.tsv` (programme, time or
temperature, and the latent signal values of each condition).

Determinism: every random stream is spawned from `seed`, so a seed gives byte-identical files
(gzip headers carry no time stamp or file name).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from deepreg._config import Config
from deepreg.data.io import (JASPAR_RELEASE, UNIX_OS, Motif, fasta_text, fetch_fungi_motifs, fixed_cells, gzip_bytes,
                             meme_text, pcl_text, write_bytes)
from deepreg.errors import DeepRegError

BASES = np.frombuffer(b"ACGTN", dtype=np.uint8)
N_CODE = 4
BACKGROUND = np.array([0.31, 0.19, 0.19, 0.31])
# Observed / expected dinucleotide frequencies (rows: first base A, C, G, T), reverse-complement
# symmetric: poly(dA:dT) tracts make AA/TT common, CpG is rare, TpA is depleted.
DINUCLEOTIDE_ENRICHMENT = np.array([
    [1.15, 0.85, 0.95, 1.00],
    [1.15, 1.00, 0.70, 0.95],
    [1.05, 0.95, 1.00, 0.85],
    [0.80, 1.05, 1.15, 1.15],
])
SIGNALS = ("stress", "heat", "oxidative", "nitrogen", "glucose_depletion")
REFERENCE_SIMULATED_GENES = 1940  # the default 2000 genes minus 60 regulators; target counts scale from it

SITE_COUNT_PROBABILITIES = (0.5, 0.3, 0.2)  # 1, 2 or 3 sites per (regulator, target)
SITE_SHARPENING = 2.0
SITE_DISTANCE_GAMMA = (2.0, 110.0)  # shape, scale in bp from the ORF start
SITE_DISTANCE_UNIFORM_FRACTION = 0.2
AFFINITY_TEMPERATURE = 2.0
OCCUPANCY_K = 1.0
RESPONSE_SATURATION = 2.5
GENE_OFFSET_SD = 0.1
WEAK_PROGRAMME_SD = 0.05
CONDITION_SIGNAL_SD = 0.15
NOISE_SPREAD = 0.3  # sd of the log of a gene's noise scale
N_RUN_FRACTION = 0.01
N_RUN_LENGTH = (10, 60)
SHORT_PROMOTER_MIN_FRACTION = 0.25
DECOY_SHADOW_FRACTION = 0.6
EXPRESSION_DECIMALS = 3
# The simulated bundle's gzip header (zlib's: level 6, OS byte Unix), kept so the shipped files stay identical.
BUNDLE_GZIP_LEVEL, BUNDLE_GZIP_OS = 6, UNIX_OS


@dataclasses.dataclass(frozen=True)
class TranscriptionFactor:
    """A regulator with planted sites; `loadings` are its expression's loadings on `SIGNALS`."""

    symbol: str
    orf: str
    jaspar_id: str
    role: str
    sign: int
    strength: float
    n_targets: int
    module: str
    loadings: tuple[tuple[str, float], ...]
    shares_targets_with: tuple[str, float] | None = None
    binds_sites_of: str | None = None


# Table order is priority order: with fewer regulators, the first ones are kept. A factor only
# shares targets with one listed before it.
TRANSCRIPTION_FACTORS = (
    TranscriptionFactor("MSN2", "YMR037C", "MA0341.1", "master", +1, 0.6, 300, "induced",
                        (("stress", 1.0), ("heat", 0.2))),
    TranscriptionFactor("RAP1", "YNL216W", "MA0359.3", "master", +1, 0.55, 180, "growth",
                        (("stress", -0.9), ("nitrogen", -0.3))),
    TranscriptionFactor("GCN4", "YEL009C", "MA0303.3", "master", +1, 0.55, 140, "induced",
                        (("nitrogen", 1.1), ("stress", 0.2))),
    TranscriptionFactor("MSN4", "YKL062W", "MA0342.1", "minor", +1, 0.35, 80, "induced",
                        (("stress", 0.8), ("heat", 0.4), ("glucose_depletion", 0.5)), binds_sites_of="MSN2"),
    TranscriptionFactor("SFP1", "YLR403W", "MA0378.2", "minor", +1, 0.4, 70, "growth",
                        (("stress", -1.0), ("nitrogen", -0.5)), shares_targets_with=("RAP1", 0.6)),
    TranscriptionFactor("DOT6", "YER088C", "MA0351.2", "minor", -1, 0.5, 80, "growth",
                        (("stress", 0.9), ("glucose_depletion", 0.3)), shares_targets_with=("SFP1", 0.3)),
    TranscriptionFactor("HSF1", "YGL073W", "MA0319.2", "minor", +1, 0.55, 50, "induced",
                        (("heat", 1.2), ("stress", 0.2)), shares_targets_with=("MSN2", 0.3)),
    TranscriptionFactor("YAP1", "YML007W", "MA0415.2", "minor", +1, 0.55, 60, "induced",
                        (("oxidative", 1.2), ("stress", 0.2)), shares_targets_with=("MSN2", 0.2)),
    TranscriptionFactor("SKN7", "YHR206W", "MA0381.2", "minor", +1, 0.4, 35, "induced",
                        (("oxidative", 0.8), ("heat", 0.4)), shares_targets_with=("YAP1", 0.5)),
    TranscriptionFactor("MIG1", "YGL035C", "MA0337.2", "minor", -1, 0.5, 50, "induced",
                        (("glucose_depletion", -1.2), ("stress", -0.2))),
    TranscriptionFactor("SKO1", "YNL167C", "MA0382.3", "minor", -1, 0.35, 35, "induced",
                        (("oxidative", -0.8), ("stress", -0.2))),
    TranscriptionFactor("GLN3", "YER040W", "MA0307.1", "minor", +1, 0.5, 40, "induced",
                        (("nitrogen", 1.2),), shares_targets_with=("GCN4", 0.3)),
)

# Real yeast regulators (SGD symbol, systematic name), all among the 472 regulators of the original
# work; the first ones are those the 2017 attribution ranked highest.
DECOY_REGULATORS = (
    ("USV1", "YPL230W"), ("GAC1", "YOR178C"), ("RAS1", "YOR101W"), ("TPK1", "YJL164C"),
    ("SLT2", "YHR030C"), ("PDR3", "YBL005W"), ("YVH1", "YIR026C"), ("BAS1", "YKR099W"),
    ("SIP2", "YGL208W"), ("DAL80", "YKR034W"), ("XBP1", "YIL101C"), ("PPT1", "YGR123C"),
    ("CIN5", "YOR028C"), ("RPN4", "YDL020C"), ("NRG1", "YDR043C"), ("RAS2", "YNL098C"),
    ("TPK2", "YPL203W"), ("TPK3", "YKL166C"), ("HOG1", "YLR113W"), ("PBS2", "YJL128C"),
    ("SNF1", "YDR477W"), ("RIM15", "YFL033C"), ("YAK1", "YJL141C"), ("SCH9", "YHR205W"),
    ("TOR1", "YJR066W"), ("TOR2", "YKL203C"), ("CYR1", "YJL005W"), ("PDE2", "YOR360C"),
    ("BCY1", "YIL033C"), ("GIS1", "YDR096W"), ("RPH1", "YER169W"), ("HAP4", "YKL109W"),
    ("ADR1", "YDR216W"), ("CAT8", "YMR280C"), ("SOK2", "YMR016C"), ("PHD1", "YKL043W"),
    ("CRZ1", "YNL027W"), ("SWI4", "YER111C"), ("MBP1", "YDL056W"), ("HAP2", "YGL237C"),
    ("HAP3", "YBL021C"), ("HAP5", "YOR358W"), ("GAL4", "YPL248C"), ("GAL80", "YML051W"),
    ("PHO4", "YFR034C"), ("PHO85", "YPL031C"), ("MET4", "YNL103W"), ("MET31", "YPL038W"),
    ("MET32", "YDR253C"), ("CBF1", "YJR060W"), ("ABF1", "YKL112W"), ("REB1", "YBR049C"),
    ("FHL1", "YPR104C"), ("TUP1", "YCR084C"), ("CYC8", "YBR112C"), ("SNF2", "YOR290C"),
    ("STE12", "YHR084W"), ("TEC1", "YBR083W"), ("MCM1", "YMR043W"), ("FKH1", "YIL131C"),
    ("FKH2", "YNL068C"), ("ACE2", "YLR131C"), ("SWI5", "YDR146C"), ("SWI6", "YLR182W"),
    ("UME6", "YDR207C"), ("INO2", "YDR123C"), ("INO4", "YOL108C"), ("RTG1", "YOL067C"),
    ("RTG3", "YBL103C"), ("HAC1", "YFL031W"), ("IRE1", "YHR079C"), ("ZAP1", "YJL056C"),
    ("MAC1", "YMR021C"), ("AFT1", "YGL071W"), ("YAP6", "YDR259C"), ("YAP3", "YHL009C"),
    ("YAP5", "YIR018W"), ("YAP7", "YOL028C"), ("HOT1", "YMR172W"), ("SSK1", "YLR006C"),
    ("SLN1", "YIL147C"), ("YPD1", "YDL235C"), ("PKC1", "YBL105C"), ("BCK1", "YJL095W"),
    ("MKK1", "YOR231W"), ("RLM1", "YPL089C"), ("SIP4", "YJL089W"), ("GCR1", "YPL075W"),
    ("GCR2", "YNL199C"), ("RGT1", "YKL038W"), ("MTH1", "YDR277C"), ("STD1", "YOR047C"),
    ("SNF3", "YDL194W"), ("RGT2", "YDL138W"), ("GPR1", "YDL035C"), ("GPA2", "YER020W"),
    ("IRA1", "YBR140C"), ("IRA2", "YOL081W"), ("CDC25", "YLR310C"), ("MKS1", "YNL076W"),
    ("URE2", "YNL229C"), ("GAT1", "YFL021W"), ("GZF3", "YJL110C"), ("DAL81", "YIR023W"),
    ("DAL82", "YNL314W"), ("PUT3", "YKL015W"), ("LEU3", "YLR451W"), ("ARG80", "YMR042W"),
    ("ARG81", "YML099C"), ("LYS14", "YDR034C"), ("HAP1", "YLR256W"), ("ROX1", "YPR065W"),
    ("MOT3", "YMR070W"), ("SUT1", "YGL162W"), ("UPC2", "YDR213W"), ("ECM22", "YLR228C"),
    ("STB5", "YHR178W"), ("YRR1", "YOR162C"), ("PDR1", "YGL013C"), ("SFL1", "YOR140W"),
    ("FLO8", "YER109C"), ("MGA1", "YGR249W"), ("ASH1", "YKL185W"), ("STP1", "YDR463W"),
    ("STP2", "YHR006W"),
)


@dataclasses.dataclass(frozen=True)
class SignalResponse:
    """How one latent signal follows a programme's axis: amplitude times a kinetic shape."""

    signal: str
    amplitude: float
    shape: Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Programme:
    """A condition series: its axis (time or temperature), treatment and signal kinetics."""

    name: str
    label: str
    share: float
    axis: str
    start: float
    stop: float
    unit: str
    geometric: bool
    resolution: float
    responses: tuple[SignalResponse, ...]
    intensity: float | None = None
    intensity_unit: str = ""


def transient(on: float, off: float, plateau: float) -> Callable[[np.ndarray], np.ndarray]:
    """A shock: rises with time constant `on`, peaks at 1, adapts with `off` to `plateau` of the peak."""
    def shape(t: np.ndarray) -> np.ndarray:
        return (1 - np.exp(-t / on)) * (plateau + (1 - plateau) * np.exp(-t / off))
    grid = np.linspace(0, 20 * off, 20001)
    peak = float(shape(grid).max())
    return lambda t: shape(np.asarray(t, dtype=float)) / peak


def saturating(tau: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda t: 1 - np.exp(-np.asarray(t, dtype=float) / tau)


def sigmoid(midpoint: float, width: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda t: 1 / (1 + np.exp(-(np.asarray(t, dtype=float) - midpoint) / width))


def ramp(low: float, high: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda t: np.clip((np.asarray(t, dtype=float) - low) / (high - low), 0, 1)


def linear(zero: float, span: float) -> Callable[[np.ndarray], np.ndarray]:
    """0 at `zero`, 1 at `zero + span`, negative below `zero`."""
    return lambda t: (np.asarray(t, dtype=float) - zero) / span


PROGRAMMES = (
    Programme("heat_shock", "heat_shock", 0.22, "time", 5, 80, "min", True, 1,
              (SignalResponse("stress", 2.0, transient(5, 25, 0.3)),
               SignalResponse("heat", 2.2, transient(3, 20, 0.25))), 37, "C"),
    Programme("temperature_downshift", "downshift_25C", 0.12, "time", 5, 90, "min", True, 1,
              (SignalResponse("stress", -1.2, transient(6, 30, 0.2)),
               SignalResponse("heat", -1.0, transient(4, 25, 0.2))), 25, "C"),
    Programme("oxidative", "h2o2_0.3mM", 0.18, "time", 10, 160, "min", True, 1,
              (SignalResponse("stress", 1.6, transient(12, 60, 0.2)),
               SignalResponse("oxidative", 2.2, transient(8, 45, 0.1))), 0.3, "mM H2O2"),
    Programme("nitrogen_starvation", "nitrogen_starvation", 0.14, "time", 0.5, 120, "h", True, 0.5,
              (SignalResponse("nitrogen", 2.0, saturating(3)),
               SignalResponse("stress", 1.0, saturating(12)))),
    Programme("diauxic", "diauxic_shift", 0.14, "time", 9, 21, "h", False, 0.5,
              (SignalResponse("glucose_depletion", 2.2, sigmoid(14.5, 1.2)),
               SignalResponse("stress", 1.2, sigmoid(16, 1.5)))),
    Programme("steady", "steady_state", 0.20, "temperature", 17, 37, "C", False, 0.5,
              (SignalResponse("heat", 0.6, ramp(29, 37)),
               SignalResponse("stress", 0.5, linear(27, 10)))),
)


@dataclasses.dataclass(frozen=True)
class SimulationConfig(Config):
    """Everything that determines a simulated compendium; the same config gives the same bytes.

    A `Config`: `deepreg simulate --config FILE` reads it from YAML (the keys below, at the top level).
    """

    n_genes: int = 2000
    n_conditions: int = 80
    n_regulators: int = 60
    promoter_length: int = 1000
    missing_fraction: float = 0.03
    noise_sd: float = 0.2
    regulator_noise_sd: float = 0.3
    fraction_without_promoter: float = 0.01
    fraction_short_promoter: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        max_regulators = len(TRANSCRIPTION_FACTORS) + len(DECOY_REGULATORS)
        if not 1 <= self.n_regulators <= max_regulators:
            raise DeepRegError(f"n_regulators: expected 1..{max_regulators}, got {self.n_regulators}")
        if self.n_genes < self.n_regulators + 10:
            raise DeepRegError(f"n_genes: expected at least n_regulators + 10 = {self.n_regulators + 10}, "
                               f"got {self.n_genes}")
        if self.n_conditions < 1:
            raise DeepRegError(f"n_conditions: expected at least 1, got {self.n_conditions}")
        if self.promoter_length < 200:
            raise DeepRegError(f"promoter_length: expected at least 200 bp, got {self.promoter_length}")
        for name in ("missing_fraction", "fraction_without_promoter", "fraction_short_promoter"):
            if not 0 <= getattr(self, name) < 1:
                raise DeepRegError(f"{name}: expected a fraction in [0, 1), got {getattr(self, name)}")
        if self.noise_sd < 0 or self.regulator_noise_sd < 0:
            raise DeepRegError("noise_sd and regulator_noise_sd must not be negative")


@dataclasses.dataclass(frozen=True)
class Genes:
    """Matrix rows in file order; `regulator_rows[i]` is the row of the i-th regulator (factors first)."""

    uids: np.ndarray
    symbols: np.ndarray
    regulator_rows: np.ndarray


@dataclasses.dataclass(frozen=True)
class Site:
    """One planted site; `start` is in the written (possibly shortened) promoter, `score` in nats."""

    gene: int
    regulator: str
    start: int
    strand: str
    sequence: str
    score: float
    distance_to_orf: int


def simulate_compendium(out_dir: str | Path, config: SimulationConfig | None = None, **parameters) -> Path:
    """Generate a compendium into `out_dir` and return that folder.

    Pass a `SimulationConfig`, or its fields as keywords (`n_genes=200, seed=1`), or both (the
    keywords override the config's fields).
    """
    config = dataclasses.replace(config or SimulationConfig(), **parameters)
    streams = _random_streams(config.seed)
    factors = TRANSCRIPTION_FACTORS[:min(config.n_regulators, len(TRANSCRIPTION_FACTORS))]
    motifs = fetch_fungi_motifs(tf.jaspar_id for tf in factors)
    genes = _make_genes(config, factors)
    conditions = _make_conditions(config.n_conditions, streams["conditions"])
    signal_matrix = conditions[list(SIGNALS)].to_numpy()
    loadings, decoy_partners = _regulator_loadings(factors, genes, streams["decoys"])
    regulator_expression = _regulator_expression(loadings, signal_matrix, config.regulator_noise_sd,
                                                 streams["regulators"])
    promoter_codes, lengths = _background_promoters(config, genes, streams["background"])
    targets = _choose_targets(factors, genes, lengths, config, streams["targets"])
    sites = _plant_sites(promoter_codes, lengths, targets, factors, motifs, streams["sites"])
    effects, n_sites = _target_effects(sites, factors, motifs, len(genes.uids))
    expression = _gene_expression(config, genes, effects, regulator_expression, signal_matrix,
                                  streams["expression"])
    missing = streams["missing"].random(expression.shape) < config.missing_fraction
    return _write_bundle(Path(out_dir), config, genes, conditions, expression, missing, promoter_codes,
                         lengths, factors, motifs, loadings, decoy_partners, sites, effects, n_sites)


def _random_streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators per component, so changing one part does not reshuffle the others."""
    names = ("conditions", "decoys", "regulators", "background", "targets", "sites", "expression", "missing")
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children)}


def _make_genes(config: SimulationConfig, factors: Sequence[TranscriptionFactor]) -> Genes:
    """Regulators under their real ORF names plus `YSIM...` genes, sorted by name as in a PCL file."""
    decoys = DECOY_REGULATORS[:config.n_regulators - len(factors)]
    regulator_uids = [tf.orf for tf in factors] + [orf for _, orf in decoys]
    regulator_symbols = [tf.symbol for tf in factors] + [symbol for symbol, _ in decoys]
    n_simulated = config.n_genes - config.n_regulators
    width = max(4, len(str(n_simulated)))
    simulated = [f"YSIM{i:0{width}d}" for i in range(1, n_simulated + 1)]
    uids = np.array(regulator_uids + simulated)
    symbols = np.array(regulator_symbols + [""] * n_simulated, dtype=object)
    order = np.argsort(uids, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    return Genes(uids=uids[order], symbols=symbols[order], regulator_rows=position[:config.n_regulators])


def _make_conditions(n_conditions: int, rng: np.random.Generator) -> pd.DataFrame:
    """One row per condition: name, programme, axis values and the latent signal activities."""
    counts = _largest_remainder([programme.share for programme in PROGRAMMES], n_conditions)
    frames = [_programme_conditions(programme, count) for programme, count in zip(PROGRAMMES, counts) if count]
    table = pd.concat(frames, ignore_index=True)
    table[list(SIGNALS)] += rng.normal(0, CONDITION_SIGNAL_SD, size=(len(table), len(SIGNALS)))
    return table


def _largest_remainder(shares: Sequence[float], total: int) -> list[int]:
    exact = np.asarray(shares) / sum(shares) * total
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:total - counts.sum()]] += 1
    return counts.tolist()


def _programme_conditions(programme: Programme, count: int) -> pd.DataFrame:
    axis = _distinct_axis_values(programme, count)
    signals = {signal: np.zeros(count) for signal in SIGNALS}
    for response in programme.responses:
        signals[response.signal] += response.amplitude * response.shape(axis)
    decimals = max(0, -int(math.floor(math.log10(programme.resolution))))
    labels = [f"{programme.label}_{value:.{decimals}f}{programme.unit}" for value in axis]
    is_time = programme.axis == "time"
    return pd.DataFrame({
        "name": labels,
        "program": programme.name,
        "time": axis if is_time else np.nan,
        "time_unit": programme.unit if is_time else "",
        "intensity": programme.intensity if is_time else axis,
        "intensity_unit": programme.intensity_unit if is_time else programme.unit,
        **signals,
    })


def _distinct_axis_values(programme: Programme, count: int) -> np.ndarray:
    """Sampling points along the axis, rounded to its resolution and strictly increasing."""
    spacing = np.geomspace if programme.geometric else np.linspace
    values = np.round(spacing(programme.start, programme.stop, count) / programme.resolution)
    steps = np.arange(count)
    values = np.maximum.accumulate(values - steps) + steps
    return values * programme.resolution


def _regulator_loadings(factors: Sequence[TranscriptionFactor], genes: Genes,
                        rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Loadings of every regulator on the signals; a decoy either shadows a true factor or is random."""
    loadings = np.zeros((len(genes.regulator_rows), len(SIGNALS)))
    for row, tf in enumerate(factors):
        for signal, value in tf.loadings:
            loadings[row, SIGNALS.index(signal)] = value
    weights = np.array([3.0 if tf.role == "master" else 1.0 for tf in factors])
    partners = [""] * len(factors)
    for row in range(len(factors), len(loadings)):
        if rng.random() < DECOY_SHADOW_FRACTION:
            partner = rng.choice(len(factors), p=weights / weights.sum())
            loadings[row] = loadings[partner] * rng.uniform(0.5, 1.1) + rng.normal(0, 0.25, len(SIGNALS))
            partners.append(factors[partner].symbol)
        else:
            active = rng.random(len(SIGNALS)) < 0.5
            loadings[row] = active * rng.normal(0, 0.6, len(SIGNALS))
            partners.append("")
    return loadings, partners


def _regulator_expression(loadings: np.ndarray, signals: np.ndarray, noise_sd: float,
                          rng: np.random.Generator) -> np.ndarray:
    return loadings @ signals.T + rng.normal(0, noise_sd, size=(loadings.shape[0], signals.shape[0]))


def _markov_transitions() -> np.ndarray:
    """First-order transition matrix whose stationary composition is exactly `BACKGROUND`.

    The dinucleotide table p_a p_b O_ab is balanced (Sinkhorn) so both margins equal the composition.
    """
    joint = np.outer(BACKGROUND, BACKGROUND) * DINUCLEOTIDE_ENRICHMENT
    for _ in range(200):
        joint *= (BACKGROUND / joint.sum(axis=1))[:, None]
        joint *= (BACKGROUND / joint.sum(axis=0))[None, :]
    return joint / joint.sum(axis=1, keepdims=True)


def _background_promoters(config: SimulationConfig, genes: Genes,
                          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Markov background for every gene (vectorised over genes), promoter lengths and N runs.

    Returns codes (genes x promoter_length, 0-3 = ACGT, 4 = N) and the kept length of each promoter
    (0 = no promoter; a short promoter keeps its 3', ORF-proximal, end).
    """
    n_genes, length = len(genes.uids), config.promoter_length
    cumulative = np.cumsum(_markov_transitions(), axis=1)
    uniforms = rng.random((n_genes, length))
    codes = np.empty((n_genes, length), dtype=np.uint8)
    codes[:, 0] = np.searchsorted(np.cumsum(BACKGROUND), uniforms[:, 0])
    for position in range(1, length):
        codes[:, position] = (uniforms[:, position, None] > cumulative[codes[:, position - 1]]).sum(axis=1)
    lengths = np.full(n_genes, length)
    simulated = np.setdiff1d(np.arange(n_genes), genes.regulator_rows)
    n_absent = int(round(config.fraction_without_promoter * len(simulated)))
    n_short = int(round(config.fraction_short_promoter * len(simulated)))
    n_with_n = int(round(N_RUN_FRACTION * len(simulated)))
    chosen = rng.permutation(simulated)
    absent, short = chosen[:n_absent], chosen[n_absent:n_absent + n_short]
    with_n = chosen[n_absent + n_short:n_absent + n_short + n_with_n]
    lengths[absent] = 0
    lengths[short] = rng.integers(int(SHORT_PROMOTER_MIN_FRACTION * length), length, size=len(short))
    for gene in with_n:
        run = rng.integers(*N_RUN_LENGTH, endpoint=True)
        start = rng.integers(0, length // 2 - run)
        codes[gene, start:start + run] = N_CODE
    return codes, lengths


def _choose_targets(factors: Sequence[TranscriptionFactor], genes: Genes, lengths: np.ndarray,
                    config: SimulationConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Target genes of each factor, following the sharing rules of the factor table."""
    eligible = np.setdiff1d(np.flatnonzero(lengths > 0), genes.regulator_rows)
    scale = (config.n_genes - config.n_regulators) / REFERENCE_SIMULATED_GENES
    targets: dict[str, np.ndarray] = {}
    by_module: dict[str, set[int]] = {}
    for tf in factors:
        wanted = max(3, int(round(tf.n_targets * scale)))
        if tf.binds_sites_of:
            source = targets[tf.binds_sites_of]
            chosen = rng.choice(source, size=min(wanted, len(source)), replace=False)
        else:
            shared = np.array([], dtype=int)
            if tf.shares_targets_with:
                partner, fraction = tf.shares_targets_with
                source = targets[partner]
                shared = rng.choice(source, size=min(int(round(wanted * fraction)), len(source)), replace=False)
            excluded = set().union(*(members for module, members in by_module.items() if module != tf.module))
            excluded.update(shared.tolist())
            pool = np.array([gene for gene in eligible if gene not in excluded])
            own = rng.choice(pool, size=min(wanted - len(shared), len(pool)), replace=False)
            chosen = np.concatenate([shared, own])
        targets[tf.symbol] = np.sort(chosen.astype(int))
        by_module.setdefault(tf.module, set()).update(targets[tf.symbol].tolist())
    return targets


def _sharpened(probabilities: np.ndarray) -> np.ndarray:
    powered = probabilities ** SITE_SHARPENING
    return powered / powered.sum(axis=1, keepdims=True)


def _sample_site_codes(motif: Motif, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` site sequences (count x width, codes 0-3) drawn from the sharpened matrix."""
    cumulative = np.cumsum(_sharpened(motif.probabilities), axis=1)
    uniforms = rng.random((count, motif.width))
    return (uniforms[:, :, None] > cumulative[None, :, :]).sum(axis=2).clip(max=3).astype(np.uint8)


def _site_distance(available: int, rng: np.random.Generator) -> int:
    """Distance from the ORF start to the site's 3' end: mostly proximal, sometimes anywhere."""
    if rng.random() >= SITE_DISTANCE_UNIFORM_FRACTION:
        distance = int(rng.gamma(*SITE_DISTANCE_GAMMA))
        if distance <= available:
            return distance
    return int(rng.integers(0, available + 1))


def _plant_sites(codes: np.ndarray, lengths: np.ndarray, targets: Mapping[str, np.ndarray],
                 factors: Sequence[TranscriptionFactor], motifs: Mapping[str, Motif],
                 rng: np.random.Generator) -> list[Site]:
    """Write 1-3 sites per (factor, target) into `codes`; factors that bind another's sites reuse them."""
    full_length = codes.shape[1]
    occupied = codes == N_CODE
    sites: list[Site] = []
    for tf in factors:
        if tf.binds_sites_of:
            members = set(targets[tf.symbol].tolist())
            sites += [dataclasses.replace(site, regulator=tf.symbol) for site in sites
                      if site.regulator == tf.binds_sites_of and site.gene in members]
            continue
        motif = motifs[tf.jaspar_id]
        log_odds = motif.log_odds(BACKGROUND)
        per_target = rng.choice([1, 2, 3], size=len(targets[tf.symbol]), p=SITE_COUNT_PROBABILITIES)
        sequences = _sample_site_codes(motif, int(per_target.sum()), rng)
        strands = rng.random(len(sequences)) < 0.5
        index = 0
        for gene, count in zip(targets[tf.symbol], per_target):
            for _ in range(count):
                forward = sequences[index]
                score = float(log_odds[np.arange(motif.width), forward].sum())
                written = (3 - forward[::-1]) if strands[index] else forward
                start = _free_start(occupied[gene], int(lengths[gene]), motif.width, rng)
                codes[gene, start:start + motif.width] = written
                occupied[gene, start:start + motif.width] = True
                kept_offset = full_length - int(lengths[gene])
                sites.append(Site(gene=int(gene), regulator=tf.symbol, start=start - kept_offset,
                                  strand="-" if strands[index] else "+",
                                  sequence=BASES[written].tobytes().decode(), score=score,
                                  distance_to_orf=full_length - start - motif.width))
                index += 1
    return sites


def _free_start(occupied: np.ndarray, kept: int, width: int, rng: np.random.Generator) -> int:
    """A start position (full-length coordinates) inside the kept promoter, clear of other sites and Ns."""
    full_length = len(occupied)
    for _ in range(500):
        distance = _site_distance(kept - width, rng)
        start = full_length - distance - width
        if not occupied[start:start + width].any():
            return start
    raise DeepRegError(f"no room left for a {width}-bp site in a {kept}-bp promoter; "
                       "use a longer promoter_length")


def _target_effects(sites: Sequence[Site], factors: Sequence[TranscriptionFactor],
                    motifs: Mapping[str, Motif], n_genes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per (gene, factor): the signed effect e = sign * strength * occupancy, and the site count."""
    affinity = np.zeros((n_genes, len(factors)))
    n_sites = np.zeros((n_genes, len(factors)), dtype=int)
    column = {tf.symbol: j for j, tf in enumerate(factors)}
    best = {tf.symbol: _best_score(motifs[tf.jaspar_id]) for tf in factors}
    source = {tf.symbol: tf.binds_sites_of or tf.symbol for tf in factors}
    for site in sites:
        j = column[site.regulator]
        affinity[site.gene, j] += math.exp((site.score - best[source[site.regulator]]) / AFFINITY_TEMPERATURE)
        n_sites[site.gene, j] += 1
    occupancy = (1 + OCCUPANCY_K) * affinity / (affinity + OCCUPANCY_K)
    signs_strengths = np.array([tf.sign * tf.strength for tf in factors])
    return occupancy * signs_strengths[None, :], n_sites


def _best_score(motif: Motif) -> float:
    return float(motif.log_odds(BACKGROUND).max(axis=1).sum())


def _response(x: np.ndarray) -> np.ndarray:
    return RESPONSE_SATURATION * np.tanh(x / RESPONSE_SATURATION)


def _gene_expression(config: SimulationConfig, genes: Genes, effects: np.ndarray,
                     regulator_expression: np.ndarray, signals: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """The log2-ratio matrix (genes x conditions), before blanking missing cells."""
    n_genes, n_conditions = len(genes.uids), signals.shape[0]
    n_factors = effects.shape[1]
    offsets = rng.normal(0, GENE_OFFSET_SD, size=(n_genes, 1))
    weak = rng.normal(0, WEAK_PROGRAMME_SD, size=(n_genes, len(SIGNALS)))
    noise_scale = config.noise_sd * np.exp(rng.normal(0, NOISE_SPREAD, size=(n_genes, 1)) - NOISE_SPREAD ** 2 / 2)
    noise = rng.normal(0, 1, size=(n_genes, n_conditions)) * noise_scale
    expression = offsets + effects @ _response(regulator_expression[:n_factors]) + weak @ signals.T + noise
    expression[genes.regulator_rows] = regulator_expression
    return expression


def _write_bundle(out_dir: Path, config: SimulationConfig, genes: Genes, conditions: pd.DataFrame,
                  expression: np.ndarray, missing: np.ndarray, codes: np.ndarray, lengths: np.ndarray,
                  factors: Sequence[TranscriptionFactor], motifs: Mapping[str, Motif], loadings: np.ndarray,
                  decoy_partners: Sequence[str], sites: Sequence[Site], effects: np.ndarray,
                  n_sites: np.ndarray) -> Path:
    try:
        (out_dir / "truth").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DeepRegError(f"--out {out_dir}: cannot make the folder ({error.strerror or error})") from None
    files = {
        "expression.pcl.gz": _gzip_bytes(_pcl_text(genes, conditions["name"], expression, missing)),
        "promoters.fa.gz": _gzip_bytes(_fasta_text(genes.uids, codes, lengths)),
        "regulators.txt": "".join(f"{uid}\n" for uid in genes.uids[genes.regulator_rows]).encode(),
        "genes.tsv": _tsv_bytes(pd.DataFrame({"UID": genes.uids, "GENE": genes.symbols})),
        "truth/regulators.tsv": _tsv_bytes(_regulator_truth(genes, factors, motifs, loadings,
                                                             decoy_partners, n_sites)),
        "truth/targets.tsv": _tsv_bytes(_target_truth(genes, factors, effects, n_sites)),
        "truth/sites.tsv": _tsv_bytes(_site_truth(genes, sites)),
        "truth/motifs.meme": _meme_bytes([motifs[tf.jaspar_id] for tf in factors]),
        "truth/conditions.tsv": _tsv_bytes(conditions.round(4)),
    }
    for name, content in files.items():
        write_bytes(out_dir / name, content, "simulated bundle file")
    manifest = {
        "name": "simulated",
        "generator": "deepreg.data.simulate",
        "jaspar_release": JASPAR_RELEASE,
        "config": dataclasses.asdict(config),
        "files": {name: {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}
                  for name, content in files.items()},
        "counts": {
            "genes": len(genes.uids),
            "conditions": len(conditions),
            "regulators": len(genes.regulator_rows),
            "missing_cells": int(missing.sum()),
            "genes_without_promoter": int((lengths == 0).sum()),
            "target_pairs": int((n_sites > 0).sum()),
            "planted_sites": len(sites),
        },
    }
    write_bytes(out_dir / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode("utf-8"), "bundle manifest")
    return out_dir


def _gzip_bytes(text: str) -> bytes:
    """Reproducible gzip (see `deepreg.data.io.gzip_bytes`): equal text gives equal bytes."""
    return gzip_bytes(text.encode("utf-8"), level=BUNDLE_GZIP_LEVEL, os_byte=BUNDLE_GZIP_OS)


def _meme_bytes(motifs: Sequence[Motif]) -> bytes:
    """The planted matrices as a MEME file, each named `<matrix id> <TF name>` with its JASPAR site count."""
    text = meme_text({motif.label: motif.probabilities for motif in motifs}, BACKGROUND,
                     sites={motif.label: motif.n_sites for motif in motifs})
    return text.encode()


def _tsv_bytes(table: pd.DataFrame) -> bytes:
    return table.to_csv(sep="\t", index=False, lineterminator="\n").encode("utf-8")


def _pcl_text(genes: Genes, condition_names: Sequence[str], expression: np.ndarray, missing: np.ndarray) -> str:
    """Values with three decimals, blank where missing; + 0.0 turns -0.0 into 0.0, so no "-0.000" is written."""
    values = np.where(missing, np.nan, np.round(expression, EXPRESSION_DECIMALS) + 0.0)
    return pcl_text(genes.uids, genes.symbols, ["1"] * len(genes.uids), condition_names,
                    fixed_cells(values, EXPRESSION_DECIMALS))


def _fasta_text(uids: np.ndarray, codes: np.ndarray, lengths: np.ndarray) -> str:
    """The kept (3', ORF-proximal) part of each promoter; genes without a promoter are left out."""
    records = {uid: BASES[row[len(row) - kept:]].tobytes().decode()
               for uid, row, kept in zip(uids, codes, lengths) if kept > 0}
    return fasta_text(records)


def _regulator_truth(genes: Genes, factors: Sequence[TranscriptionFactor], motifs: Mapping[str, Motif],
                     loadings: np.ndarray, decoy_partners: Sequence[str], n_sites: np.ndarray) -> pd.DataFrame:
    n_factors = len(factors)
    rows = []
    for index, row in enumerate(genes.regulator_rows):
        is_factor = index < n_factors
        tf = factors[index] if is_factor else None
        rows.append({
            "orf": genes.uids[row],
            "symbol": genes.symbols[row],
            "jaspar_id": tf.jaspar_id if tf else "",
            "motif_consensus": motifs[tf.jaspar_id].consensus if tf else "",
            "role": tf.role if tf else "decoy",
            "sign": tf.sign if tf else 0,
            "strength": tf.strength if tf else 0.0,
            "n_targets": int((n_sites[:, index] > 0).sum()) if is_factor else 0,
            "binds_sites_of": (tf.binds_sites_of or "") if tf else "",
            "shadows": "" if tf else decoy_partners[index],
            "loadings": ";".join(f"{s}={v:.3f}" for s, v in zip(SIGNALS, loadings[index]) if abs(v) > 5e-4),
        })
    return pd.DataFrame(rows)


def _target_truth(genes: Genes, factors: Sequence[TranscriptionFactor], effects: np.ndarray,
                  n_sites: np.ndarray) -> pd.DataFrame:
    rows = [{"regulator": tf.orf, "regulator_symbol": tf.symbol, "gene": genes.uids[gene],
             "n_sites": int(n_sites[gene, j]), "effect": round(float(effects[gene, j]), 4)}
            for j, tf in enumerate(factors) for gene in np.flatnonzero(n_sites[:, j])]
    return pd.DataFrame(rows, columns=["regulator", "regulator_symbol", "gene", "n_sites", "effect"])


def _site_truth(genes: Genes, sites: Sequence[Site]) -> pd.DataFrame:
    """Every planted site; `start` is 0-based in the written promoter, `distance_to_orf` from its 3' end."""
    rows = [{"gene": genes.uids[site.gene], "regulator_symbol": site.regulator, "start": site.start,
             "strand": site.strand, "sequence": site.sequence, "score": round(site.score, 3),
             "distance_to_orf": site.distance_to_orf} for site in sites]
    return pd.DataFrame(rows, columns=["gene", "regulator_symbol", "start", "strand", "sequence", "score",
                                       "distance_to_orf"])
