"""The entry point fails fast, with the fix in the message, when its model is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_missing_model_exits_2_naming_the_command(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "libs"), str(REPO / "services")]),
        "EMOTION_MODEL": "j-hartmann/emotion-english-distilroberta-base",
        "MODEL_CACHE_DIR": str(tmp_path),
        "EMOTION_METRICS_PORT": "0",
        "HF_HUB_OFFLINE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "emotion"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "make models" in result.stdout
