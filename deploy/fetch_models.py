"""Downloads the production models into the model cache (run on a machine with internet).

    python deploy/fetch_models.py [--cache-dir DIR]

- the emotion model j-hartmann/emotion-english-distilroberta-base, in Hugging Face cache
  layout under DIR (the emotion service loads it from there with local_files_only);
- the stance model TinyLlama-1.1B-Chat-v1.0 as a Q4_K_M GGUF, saved as DIR/<file name>.

Services never download at start: a missing model fails fast and names this command.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

EMOTION_MODEL = "j-hartmann/emotion-english-distilroberta-base"
STANCE_GGUF_REPO = "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF"
STANCE_GGUF_FILE = "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf"

log = logging.getLogger("fetch_models")


def main() -> int:
    default_dir = Path(os.environ.get("MODEL_CACHE_DIR", Path.home() / ".cache" / "tweet-pipeline" / "models"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, default=default_dir)
    parser.add_argument("--only", choices=["emotion", "stance"], help="fetch one model only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache: Path = args.cache_dir.expanduser()
    cache.mkdir(parents=True, exist_ok=True)

    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        if args.only in (None, "emotion"):
            path = snapshot_download(EMOTION_MODEL, cache_dir=cache)
            log.info("emotion model ready: %s", path)
        if args.only in (None, "stance"):
            path = hf_hub_download(STANCE_GGUF_REPO, STANCE_GGUF_FILE, local_dir=cache)
            log.info("stance model ready: %s", path)
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        log.error("could not download from the Hugging Face hub (%s). Is this machine online?", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
