"""Human-labelled public benchmarks: where their files are, and how a row reads.

The files live outside the repository (licences, and the rule that nothing is copied in):
``../shared/data/labelled/`` beside the clone when it is there, else ``$TWEETPIPE_LABELLED_DIR``,
else a download from the public source into the download cache, assembled into the same CSV
layout and checked against the SHA-256 pinned here. A file whose hash differs is refused, so a
changed upstream can never silently change the figures. Test splits are not in the table: the
project never reads them; a user who has one passes ``SPLIT=test`` with ``--file``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from common.events import EMOTION_LABELS
from common.settings import pipeline_home

ROOT = Path(__file__).resolve().parent.parent
TWEETEVAL = "https://raw.githubusercontent.com/cardiffnlp/tweeteval/4fbd22c/datasets"
GOEMOTIONS = "https://raw.githubusercontent.com/monologg/GoEmotions-pytorch/47f5afb/data/ekman"
STANCE_TARGETS = ("abortion", "atheism", "climate", "feminist", "hillary")
# What each target means in a prompt (the tweet's stance is toward this, not its own subject).
TARGET_PHRASES: dict[str, str] = {
    "abortion": "legal abortion",
    "atheism": "atheism",
    "climate": "the concern that climate change is a real problem",
    "feminist": "the feminist movement",
    "hillary": "Hillary Clinton",
}
# TweetEval's label files hold class numbers; mapping.txt in each task folder names them.
_TWEETEVAL_CLASSES = {
    "stance": ("none", "against", "favor"),
    "emotion": ("anger", "joy", "optimism", "sadness"),
    "sentiment": ("negative", "neutral", "positive"),
}


class PublicDataError(RuntimeError):
    pass


@dataclass(frozen=True)
class PublicFile:
    name: str
    sha256: str
    assemble: Callable[[httpx.Client], str]  # downloads the upstream pieces into this CSV's text


def _get(client: httpx.Client, url: str) -> str:
    response = client.get(url, follow_redirects=True)
    response.raise_for_status()
    return response.text


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _tweeteval(task: str, split: str) -> Callable[[httpx.Client], str]:
    def assemble(client: httpx.Client) -> str:
        classes = _TWEETEVAL_CLASSES[task]
        rows: list[list[str]] = []
        for target in STANCE_TARGETS if task == "stance" else (None,):
            folder = f"{TWEETEVAL}/{task}" + (f"/{target}" if target else "")
            texts = _get(client, f"{folder}/{split}_text.txt").splitlines()
            labels = _get(client, f"{folder}/{split}_labels.txt").splitlines()
            for text, label in zip(texts, labels, strict=True):
                row = [text.strip(), classes[int(label)]]
                rows.append([target, *row] if target else row)
        return _csv_text(["target", "text", "label"] if task == "stance" else ["text", "label"], rows)

    return assemble


def _goemotions(split: str) -> Callable[[httpx.Client], str]:
    def assemble(client: httpx.Client) -> str:
        names = _get(client, f"{GOEMOTIONS}/labels.txt").split()
        rows = []
        for line in _get(client, f"{GOEMOTIONS}/{split}.tsv").splitlines():
            text, ids, comment_id = line.split("\t")
            rows.append([comment_id, text, " ".join(names[int(i)] for i in ids.split(","))])
        return _csv_text(["id", "text", "labels"], rows)

    return assemble


FILES: dict[str, PublicFile] = {
    f.name: f
    for f in (
        PublicFile(
            "tweeteval_stance_train.csv",
            "2406b4d3d80ebf3f4d130a49cfde4eb27b4332bca9dba76731c678b81e9e24e8",
            _tweeteval("stance", "train"),
        ),
        PublicFile(
            "tweeteval_stance_val.csv",
            "0c05deca421b4b49e9ce79f6118715e37e77e889d1cf82e5e91ef2b0ece1c28c",
            _tweeteval("stance", "val"),
        ),
        PublicFile(
            "tweeteval_emotion_train.csv",
            "1d41b672549fa7d0a4f6a2d254b23c044eb9c1c4251962f3e5dc334960272d90",
            _tweeteval("emotion", "train"),
        ),
        PublicFile(
            "tweeteval_emotion_val.csv",
            "165fa7d930ecb744256de1aa5bd0b26752a9e9fff299faba5586f30f76f9d136",
            _tweeteval("emotion", "val"),
        ),
        PublicFile(
            "tweeteval_sentiment_val.csv",
            "580d89235317ee4ea7e44a799677db4d3412e23fd56d5f9f91cbada44ea8d204",
            _tweeteval("sentiment", "val"),
        ),
        PublicFile(
            "goemotions_ekman_train.csv",
            "edfe07c5ac478d10f8491f7849dd7a7e0f92530d39e60886862aafa5a020ac14",
            _goemotions("train"),
        ),
        PublicFile(
            "goemotions_ekman_dev.csv",
            "646cebf43b03b9a5a1cb60176c41acc58eb348e6384bd2245feb97665c5831de",
            _goemotions("dev"),
        ),
    )
}


def shared_dir() -> Path | None:
    configured = os.environ.get("TWEETPIPE_LABELLED_DIR")
    candidates = [Path(configured)] if configured else []
    candidates.append(ROOT.parent / "shared" / "data" / "labelled")
    return next((p for p in candidates if p.is_dir()), None)


def download_dir() -> Path:
    return pipeline_home() / "labelled"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locate(name: str, *, download: bool = True) -> Path:
    """The path of public file ``name``: the shared copy, the download cache, or a fresh
    download (assembled from the upstream pieces and checked against the pinned hash)."""
    try:
        entry = FILES[name]
    except KeyError:
        raise PublicDataError(f"unknown public file {name!r}; known: {', '.join(FILES)}") from None
    shared = shared_dir()
    if shared and (shared / name).is_file():
        return shared / name
    cached = download_dir() / name
    if cached.is_file() and sha256_of(cached) == entry.sha256:
        return cached
    if not download:
        raise PublicDataError(f"{name} is not in ../shared/data/labelled/ or {download_dir()}")
    try:
        with httpx.Client(timeout=60) as client:
            text = entry.assemble(client)
    except (httpx.HTTPError, ValueError) as exc:
        raise PublicDataError(
            f"{name} is not in ../shared/data/labelled/ and could not be downloaded ({exc}); "
            "set TWEETPIPE_LABELLED_DIR to a folder that holds it"
        ) from exc
    digest = hashlib.sha256(text.encode()).hexdigest()
    if digest != entry.sha256:
        raise PublicDataError(f"{name}: the downloaded data hashes to {digest}, not the pinned {entry.sha256}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(text, encoding="utf-8")
    return cached


def read_rows(name: str) -> list[dict[str, str]]:
    with locate(name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def goemotions_labels(cell: str) -> list[str]:
    """The Ekman labels of one GoEmotions row (multi-label, space-separated)."""
    labels = cell.split()
    unknown = [label for label in labels if label not in EMOTION_LABELS]
    if unknown:
        raise PublicDataError(f"GoEmotions labels {unknown} are not Ekman labels")
    return labels
