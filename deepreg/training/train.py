"""Fit a model with Keras: the notebook's schedule, seeded, with per-epoch evaluation.

`implementation: factorised` (default) trains the block model on blocks of genes x conditions;
`implementation: naive` trains the pair model (the notebook's per-pair network) on batches of
`block_genes x block_conditions` pairs. The two share every layer, so either way the block model
holds the trained weights and is what gets evaluated, saved and logged.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time

import keras
import numpy as np

from deepreg.data.batches import BlockBatches, PairBatches
from deepreg.data.config import DataConfig
from deepreg.data.dataset import Dataset
from deepreg.data.splits import TEST, TRAIN, VALIDATION
from deepreg.errors import DeepRegError
from deepreg.models.build import build_models, ensemble_model
from deepreg.models.config import ModelConfig
from deepreg.training.config import TrainingConfig
from deepreg.training.evaluate import predict_matrix, score_pairs
from deepreg.training.losses import MaskedLoss
from deepreg.training.offsets import cached_offset, training_folds
from deepreg.training.optimizers import InPlaceSGD

log = logging.getLogger(__name__)
SCALAR_SCORES = ("loss", "mse", "pearson_r", "accuracy")


@dataclasses.dataclass
class TrainingResult:
    model: keras.Model
    history: dict[str, list[float]]
    scores: dict[str, dict]
    epochs_run: int
    seconds: float
    test_pairs: tuple[np.ndarray, np.ndarray] | None = None
    notes: dict = dataclasses.field(default_factory=dict)


def make_optimizer(config: TrainingConfig, steps_per_epoch: int = 1) -> keras.optimizers.Optimizer:
    rate = learning_rate_schedule(config, steps_per_epoch)
    clip = {"clipnorm": config.clipnorm} if config.clipnorm else {}
    if config.optimizer == "sgd":
        return InPlaceSGD(learning_rate=rate, momentum=config.momentum, **clip)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=config.weight_decay, **clip)
    return keras.optimizers.Adam(learning_rate=rate, **clip)


def learning_rate_schedule(config: TrainingConfig, steps_per_epoch: int):
    """The constant starting rate (`plateau`: halved by a callback) or a warm-up + cosine schedule."""
    if config.schedule == "plateau":
        return config.learning_rate
    steps = max(1, config.epochs * steps_per_epoch)
    warmup = config.warmup_epochs * steps_per_epoch
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps)
    return keras.optimizers.schedules.CosineDecay(config.learning_rate / 100, decay_steps=max(1, steps - warmup),
                                                  warmup_target=config.learning_rate, warmup_steps=warmup)


class TrainingDiverged(DeepRegError):
    """The training loss became NaN or infinite; the run cannot recover from it."""


class StopOnDivergence(keras.callbacks.Callback):
    """Stop at the first batch whose loss is not finite, naming the step and what to change."""

    def __init__(self, training: TrainingConfig):
        super().__init__()
        self.training = training
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"training diverged: the loss is {loss} at epoch {self.epoch + 1}, step {batch + 1}; lower "
                f"training.learning_rate (now {self.training.learning_rate:g} with {self.training.optimizer})")


class EpochEvaluation(keras.callbacks.Callback):
    """After every epoch, predict the validation genes (and a sample of training genes) once and add
    `val_*` and `train_*` scores to the epoch's logs, where the schedule and trackers read them.

    `predictor` is the block model that predicts (default: the model being fitted)."""

    def __init__(self, dataset: Dataset, labels: np.ndarray, split: np.ndarray, task: str,
                 background, sample_genes: int, seed: int, predictor: keras.Model | None = None):
        super().__init__()
        self.predictor = predictor
        self.dataset, self.labels, self.split, self.task, self.background = dataset, labels, split, task, background
        rng = np.random.default_rng(seed)
        validation_rows = np.flatnonzero((split == VALIDATION).any(axis=1))
        train_rows = np.flatnonzero((split == TRAIN).any(axis=1))
        sampled = rng.choice(train_rows, min(sample_genes, len(train_rows)), replace=False) if len(train_rows) else train_rows
        self.rows = np.union1d(validation_rows, sampled)
        self.regulator_inputs = dataset.regulator_inputs()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs.update(self.scores())
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def scores(self) -> dict[str, float]:
        """`val_*` and `train_*` scores of the model as it is now."""
        predictions = predict_matrix(self.predictor or self.model, self.dataset.sequences, self.regulator_inputs,
                                     self.rows, background=self.background)
        labels = self.labels[self.rows]
        logs = {}
        for prefix, code in (("val", VALIDATION), ("train", TRAIN)):
            scores = score_pairs(predictions, labels, self.split[self.rows] == code, self.task)
            for name in SCALAR_SCORES:
                if name in scores and not (prefix == "train" and name == "loss"):
                    logs[f"{prefix}_{name}"] = scores[name]
        return logs


class KeepStartingPoint(keras.callbacks.Callback):
    """For a model that starts as a baseline (`model.offset`): score the start on validation before
    training and, when no epoch beats it, end with the start's weights (the baseline itself).

    Why: the network's part of an offset model starts at zero, so before the first step the model
    *is* the baseline. Early stopping only chooses among trained epochs; if every epoch is worse on
    validation than the baseline (the residual is noise, or the network overfits it at once), the
    best of them still loses to the baseline. Kept after `EarlyStopping` in the callback list, so
    its end-of-training restore runs first and this one has the last word.
    """

    def __init__(self, evaluation: EpochEvaluation, monitor: str):
        super().__init__()
        self.evaluation, self.monitor = evaluation, monitor
        self.start_value, self.start_weights, self.kept_start = float("nan"), None, False
        self.trained: list[float] = []

    def on_train_begin(self, logs=None):
        self.start_value = float(self.evaluation.scores().get(self.monitor, float("nan")))
        self.start_weights = self.model.get_weights()
        self.trained = []

    def on_epoch_end(self, epoch, logs=None):
        value = float((logs or {}).get(self.monitor, float("nan")))
        if math.isfinite(value):
            self.trained.append(value)

    def on_train_end(self, logs=None):
        trained = self.trained
        if math.isfinite(self.start_value) and (not trained or min(trained) >= self.start_value):
            self.model.set_weights(self.start_weights)
            self.kept_start = True
            log.warning("no trained epoch beat the starting point, the baseline offset alone, on %s (%.4f; the "
                        "best epoch's %s): the model ends as the baseline", self.monitor, self.start_value,
                        f"{min(trained):.4f}" if trained else "none")


def fit(dataset: Dataset, data_config: DataConfig, model_config: ModelConfig, training: TrainingConfig, *,
        callbacks=(), verbose: int | str = "auto") -> TrainingResult:
    """Train a new model on the training pairs of `data_config`'s split; score validation and test.

    With `training.ensemble` > 1, each member is trained in turn and the result is their mean; the
    `callbacks` (epoch logging, pruning) follow the first member, whose curves stand for the run.
    """
    if training.ensemble == 1:
        return _fit_member(dataset, data_config, model_config, training, callbacks=callbacks, verbose=verbose)
    members = []
    for index in range(training.ensemble):
        member_training = dataclasses.replace(training, seed=training.seed * training.ensemble + index, ensemble=1)
        log.info("ensemble member %d of %d (seed %d)", index + 1, training.ensemble, member_training.seed)
        members.append(_fit_member(dataset, data_config, model_config, member_training,
                                   callbacks=callbacks if index == 0 else (), verbose=verbose))
    return _ensemble_result(members, dataset, data_config, model_config)


def _ensemble_result(members: list[TrainingResult], dataset: Dataset, data_config: DataConfig,
                     model_config: ModelConfig) -> TrainingResult:
    """The mean of the trained members as one model, scored like a single one."""
    model = ensemble_model([member.model for member in members])
    split = dataset.split(data_config)
    labels = dataset.labels(model_config.task, data_config)
    background = data_config.background if data_config.n_encoding == "background" else None
    scores, test_pairs = evaluate_splits(model, dataset, labels, split, model_config.task, background)
    notes = dict(members[0].notes)
    notes["ensemble_best_epochs"] = ",".join(str(member.notes.get("best_epoch", "?")) for member in members)
    for split_name in ("validation", "test"):
        if split_name in scores:
            notes[f"member_mean_{split_name}_loss"] = float(np.mean([m.scores[split_name]["loss"] for m in members]))
    return TrainingResult(model=model, history=members[0].history, scores=scores,
                          epochs_run=sum(member.epochs_run for member in members),
                          seconds=sum(member.seconds for member in members), test_pairs=test_pairs, notes=notes)


def _fit_member(dataset: Dataset, data_config: DataConfig, model_config: ModelConfig, training: TrainingConfig, *,
                callbacks=(), verbose: int | str = "auto") -> TrainingResult:
    """One model trained from `training.seed`."""
    keras.utils.set_random_seed(training.seed)
    split = dataset.split(data_config)
    labels = dataset.labels(model_config.task, data_config)
    background = data_config.background if data_config.n_encoding == "background" else None
    model, pair_model = build_models(model_config, dataset.sequence_length, dataset.n_regulators,
                                     n_genes=dataset.n_genes, n_conditions=dataset.n_conditions,
                                     class_thresholds=data_config.class_thresholds)
    offset_notes = {}
    log_ratios = labels if model_config.task == "regression" else dataset.labels("regression", data_config)
    if model_config.offset != "none":
        table, offset_notes = cached_offset(model_config.offset, dataset, log_ratios, split, data_config.split,
                                            data_config.cache_dir)
        model.get_layer("baseline_offset").table.assign(table)
    if model_config.profile.enabled:
        model.get_layer("expression_profile").set_tables(*profile_tables(log_ratios, split, model_config.profile.folds,
                                                                          training.seed),
                                                         regulator_rows=dataset.regulator_gene_rows())
    fitted = pair_model if model_config.implementation == "naive" else model
    batches = training_batches(dataset, labels, split, model_config, training, background)
    fitted.compile(optimizer=make_optimizer(training, len(batches)), loss=MaskedLoss(model_config.task))
    evaluation = EpochEvaluation(dataset, labels, split, model_config.task, background, training.train_metrics_genes,
                                 training.seed, predictor=model)
    schedule = [
        StopOnDivergence(training),
        evaluation,
        keras.callbacks.EarlyStopping(monitor=training.monitor, patience=training.early_stopping_patience,
                                      restore_best_weights=True, verbose=0),
    ]
    start = KeepStartingPoint(evaluation, training.monitor) if model_config.offset != "none" else None
    if start is not None:
        schedule.append(start)
    if training.schedule == "plateau":
        schedule.insert(2, keras.callbacks.ReduceLROnPlateau(monitor=training.monitor, factor=training.lr_factor,
                                                             patience=training.lr_patience, verbose=0))
    started = time.perf_counter()
    history = fitted.fit(batches, epochs=training.epochs,
                         callbacks=schedule + list(callbacks), verbose=verbose)
    seconds = time.perf_counter() - started
    scores, test_pairs = evaluate_splits(model, dataset, labels, split, model_config.task, background)
    history = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    notes = {**offset_notes, **best_epoch_notes(history, training)}
    if start is not None:
        notes["start_" + training.monitor] = start.start_value
        if start.kept_start:
            notes["best_epoch"] = 0
    return TrainingResult(model=model, history=history, scores=scores, epochs_run=len(history.get("loss", [])),
                          seconds=seconds, test_pairs=test_pairs, notes=notes)


def profile_tables(labels: np.ndarray, split: np.ndarray, folds: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training values (0 elsewhere) and each measured training pair's random group (-1 elsewhere)
    that `model.profile`'s layer reads; groups are per pair whatever the split (a pair must not see itself)."""
    measured = (split == TRAIN) & np.isfinite(labels)
    groups = training_folds(np.where(measured, split, TEST).astype(split.dtype), "random", folds, seed)
    return np.where(measured, np.nan_to_num(labels), 0.0).astype(np.float32), groups.astype(np.float32)


def best_epoch_notes(history: dict[str, list[float]], training: TrainingConfig) -> dict:
    """The epoch whose weights were kept, with a warning when it is the first (nothing was learned after it)."""
    monitored = history.get(training.monitor)
    if not monitored:
        return {}
    best = int(np.nanargmin(monitored)) + 1 if np.isfinite(monitored).any() else 1
    if best == 1 and len(monitored) > 1:
        log.warning("the best %s was at epoch 1 of %d: the weights kept are the first epoch's (the model got "
                    "worse on validation from then on; lower training.learning_rate or regularise)",
                    training.monitor, len(monitored))
    return {"best_epoch": best}


def training_batches(dataset: Dataset, labels: np.ndarray, split: np.ndarray, model_config: ModelConfig,
                     training: TrainingConfig, background) -> keras.utils.PyDataset:
    """Blocks of genes x conditions for the factorised form, pairs for the naive one (same pairs per step)."""
    if model_config.implementation == "naive":
        return PairBatches(dataset.sequences, dataset.regulator_inputs(), labels, split, TRAIN,
                           batch_pairs=training.block_genes * training.block_conditions, seed=training.seed,
                           background=background, max_batches=training.max_steps_per_epoch,
                           indices=model_config.uses_gene_index)
    return BlockBatches(dataset.sequences, dataset.regulator_inputs(), labels, split, TRAIN,
                        block_genes=training.block_genes, block_conditions=training.block_conditions,
                        seed=training.seed, background=background, max_batches=training.max_steps_per_epoch,
                        indices=model_config.uses_gene_index)


def evaluate_splits(model, dataset: Dataset, labels: np.ndarray, split: np.ndarray, task: str,
                    background) -> tuple[dict, tuple[np.ndarray, np.ndarray] | None]:
    """Validation and test scores over every pair of those splits, from one prediction of their genes;
    also the (predicted, observed) test pairs, for figures."""
    rows = np.flatnonzero(((split == VALIDATION) | (split == TEST)).any(axis=1))
    if not len(rows):
        return {}, None
    predictions = predict_matrix(model, dataset.sequences, dataset.regulator_inputs(), rows, background=background)
    scores = {}
    for name, code in (("validation", VALIDATION), ("test", TEST)):
        in_split = split[rows] == code
        if in_split.any():
            scores[name] = score_pairs(predictions, labels[rows], in_split, task)
    scored = (split[rows] == TEST) & ~np.isnan(labels[rows])
    return scores, (predictions[scored], labels[rows][scored])
