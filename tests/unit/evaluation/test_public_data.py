"""Where the public benchmark files come from, and the pinned hash that guards a download."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from evaluation import public_data
from evaluation.public_data import FILES, PublicDataError, PublicFile, locate


def test_a_file_in_the_labelled_folder_is_used_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tweeteval_emotion_val.csv").write_text("text,label\nhi,joy\n")
    monkeypatch.setenv("TWEETPIPE_LABELLED_DIR", str(tmp_path))
    assert locate("tweeteval_emotion_val.csv") == tmp_path / "tweeteval_emotion_val.csv"


def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWEETPIPE_LABELLED_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("TWEETPIPE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(public_data, "ROOT", tmp_path / "repo")  # no ../shared beside it


def test_a_download_that_does_not_hash_to_the_pin_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _isolated(tmp_path, monkeypatch)
    fake = PublicFile("tweeteval_emotion_val.csv", FILES["tweeteval_emotion_val.csv"].sha256, lambda _: "text,label\n")
    monkeypatch.setitem(FILES, fake.name, fake)
    with pytest.raises(PublicDataError, match="not the pinned"):
        locate(fake.name)
    assert not (tmp_path / "home" / "labelled" / fake.name).exists()


def test_a_download_that_matches_the_pin_is_cached_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _isolated(tmp_path, monkeypatch)
    text = "text,label\nhello,joy\n"
    calls: list[int] = []

    def assemble(_: httpx.Client) -> str:
        calls.append(1)
        return text

    fake = PublicFile("tweeteval_emotion_val.csv", hashlib.sha256(text.encode()).hexdigest(), assemble)
    monkeypatch.setitem(FILES, fake.name, fake)
    first = locate(fake.name)
    assert first.read_text() == text and locate(fake.name) == first and calls == [1]


def test_tweeteval_pieces_are_assembled_into_the_shared_layout() -> None:
    upstream = {
        "/emotion/val_text.txt": "I am so happy\nthis is awful \n",
        "/emotion/val_labels.txt": "1\n0\n",
    }

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.split("/datasets", 1)[1]
        return httpx.Response(200, text=upstream[path])

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        csv_text = public_data._tweeteval("emotion", "val")(client)
    assert csv_text == "text,label\nI am so happy,joy\nthis is awful,anger\n"


def test_unknown_files_and_no_download_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _isolated(tmp_path, monkeypatch)
    with pytest.raises(PublicDataError, match="unknown public file"):
        locate("tweeteval_stance_test.csv")
    with pytest.raises(PublicDataError, match="is not in"):
        locate("tweeteval_stance_val.csv", download=False)
