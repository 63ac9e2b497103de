"""The /review page in a real headless browser (Debian's chromium + chromedriver, Selenium),
against the gateway API as a real process and the real Elasticsearch.

Screenshots go to the test's tmp dir (or ``REVIEW_SCREENSHOTS_DIR``) to look at.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.events import LabelEvent, TweetRecord
from common.tweet_store import TweetStore
from gateway.documents import ensure_indices
from gateway.indexer import logic
from gateway.quality import VaderLexicon, lexicon_doc
from gateway.settings import GatewaySettings
from tests.e2e.conftest import MakeStack
from tests.unit.gateway.factories import NOW, emotion, stance, tweet

pytestmark = [pytest.mark.es, pytest.mark.kafka]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1800",
)
API_KEY = "browser-test-key-1234"
BASE_ID = 7_000_000_000_000_000_000  # 64-bit ids, beyond 2**53: exact only as strings
EMOTIONS = ("joy", "anger", "sadness", "fear", "neutral", "disgust", "surprise")
STANCES = ("SUPPORT", "OPPOSE", "NEUTRAL")
TEXTS = (
    "What a wonderful result for the schools, I love it!",
    "This levy is a disgrace and I oppose it completely.",
    "Sad to see the library close after forty years.",
    "Worried the new bridge will not be safe in winter.",
    "The council meets on Tuesday at 7pm.",
    "Gross. They cut the budget for clean water again.",
    "Wow, did not expect the vote to pass tonight!",
)


def _tweets_and_labels() -> tuple[list[TweetRecord], list[LabelEvent]]:
    """28 tweets over two days: every label, some low-confidence, some whose lexicon disagrees."""
    tweets: list[TweetRecord] = []
    labels: list[LabelEvent] = []
    for i in range(28):
        tweet_id = str(BASE_ID + i)
        text = TEXTS[i % len(TEXTS)]
        created = datetime(2024, 3, 1, 9, tzinfo=UTC) + timedelta(hours=2 * i)
        tweets.append(tweet(tweet_id, text=f"{text} #{i}", created_at=created))
        label = EMOTIONS[(i + (i // 7)) % len(EMOTIONS)]  # shifted each round: labels vs texts vary
        score = 0.35 if i % 5 == 0 else 0.85
        valence = {"joy": 0.7, "neutral": 0.0, "surprise": 0.1}.get(label, -0.6)
        labels.append(emotion(tweet_id, label=label, score=score, scores={label: score}, valence=valence))
        stance_label = STANCES[i % 3]
        stance_score = 0.4 if i % 4 == 0 else 0.8
        labels.append(stance(tweet_id, label=stance_label, score=stance_score, scores={stance_label: stance_score}))
    return tweets, labels


async def _seed(es_url: str, index: str) -> None:
    """Through the indexer's own write path: one bulk of partial upserts."""
    store = TweetStore(es_url)
    try:
        await ensure_indices(store, GatewaySettings(es_url=es_url, index=index))
        tweets, labels = _tweets_and_labels()
        compounds = VaderLexicon().compounds([t.text for t in tweets])
        operations: list[dict[str, Any]] = []
        for record, compound in zip(tweets, compounds, strict=True):
            doc = logic.tweet_doc(record, indexed_at=NOW, ingest_trace_id=None, index_trace_id=None)
            doc["lexicon"] = lexicon_doc(compound)
            operations += logic.tweet_operations(index, doc)
        for label in labels:
            operations += logic.label_operations(index, label.tweet_id, label.task, logic.label_doc(label))
        items = await store.bulk(operations)
        assert all(logic.judge_bulk_item(i).outcome is logic.Outcome.STORED for i in items)
        await store.refresh(index)
    finally:
        await store.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("chromium/chromedriver missing: `make test` installs them (deploy/local/browser.sh)")
        pytest.skip("chromium/chromedriver missing: run `make browser` (deploy/local/browser.sh)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)  # Debian's browser: selenium-manager never downloads one
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("REVIEW_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _wait(driver: Any, condition: Any, what: str, timeout: float = 30) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition, message=f"waiting for {what}")


def _row_ids(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [a.get_attribute("data-id") for a in driver.find_elements(By.CSS_SELECTOR, "article.tweet")]


def test_review_page_samples_strata_and_a_correction_round_trips_to_es_and_the_csv(
    make_stack: MakeStack, es_url: str, index_name: str, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select

    asyncio.run(_seed(es_url, index_name))
    stack = make_stack({"GATEWAY_API_KEYS": f"ann:{API_KEY}", "GATEWAY_ES_URL": es_url})
    stack.start("gateway")
    stack.wait_ready()
    shots = _screenshots(tmp_path)

    # No seed: redirected to a pinned one. The page shows the strata and a sample from each.
    browser.get(f"{stack.api}/review?per_stratum=2")
    _wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "article.tweet")), "sample rows")
    assert "seed=" in browser.current_url
    strata = [li.get_attribute("data-stratum") for li in browser.find_elements(By.CSS_SELECTOR, "#strata li")]
    assert strata[:2] == ["flagged", "low confidence"]
    assert {f"emotion: {e}" for e in EMOTIONS} | {f"stance: {s}" for s in STANCES} <= set(strata)
    rows = browser.find_elements(By.CSS_SELECTOR, "article.tweet")
    ids = _row_ids(browser)
    assert len(ids) == len(set(ids)) and all(i.isdigit() and int(i) >= BASE_ID for i in ids)
    row_strata = [r.get_attribute("data-stratum") for r in rows]
    assert set(row_strata) <= set(strata)
    assert all(row_strata.count(name) <= 2 for name in strata), row_strata
    assert row_strata.count("flagged") == 2 and row_strata.count("low confidence") == 2  # drawn first
    for chip in browser.find_elements(By.CSS_SELECTOR, "#strata li"):  # each chip counts its rows
        assert chip.text.endswith(f": {row_strata.count(chip.get_attribute('data-stratum'))}")
    assert browser.find_elements(By.CSS_SELECTOR, "article[data-stratum='flagged'] .flag")
    browser.save_screenshot(str(shots / "1-sample.png"))

    # The same seed draws the same sample.
    sample_url = browser.current_url
    browser.get(sample_url)
    _wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "article.tweet")), "sample rows")
    assert _row_ids(browser) == ids

    # Saving needs the key: the sign-in box stores it in a cookie, then the box is gone.
    assert httpx.post(f"{stack.api}/review/{ids[0]}", data={"action": "accept"}).status_code == 401
    browser.find_element(By.ID, "api-key").send_keys(API_KEY)
    browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    _wait(browser, ec.invisibility_of_element_located((By.ID, "signin")), "the sign-in box to go")
    # The key cookie is Secure (GATEWAY_REVIEW_COOKIE_SECURE's default), HttpOnly and SameSite=Strict;
    # Chromium keeps and sends a Secure cookie over plain http to 127.0.0.1 (a trustworthy origin),
    # which the saves below prove.
    cookie = browser.get_cookie("gateway_api_key")
    assert cookie and cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie

    # Correct the first row: a different emotion, OPPOSE, negative sentiment.
    target = ids[0]
    row = browser.find_element(By.ID, f"t-{target}")
    shown = row.find_element(By.CSS_SELECTOR, "input[name=shown_emotion]").get_attribute("value")
    new_emotion = "fear" if shown != "fear" else "sadness"
    Select(row.find_element(By.NAME, "emotion")).select_by_value(new_emotion)
    Select(row.find_element(By.NAME, "stance")).select_by_value("OPPOSE")
    Select(row.find_element(By.NAME, "sentiment")).select_by_value("negative")
    row.find_element(By.CSS_SELECTOR, "button.correct").click()
    corrected = f"article[data-id='{target}'][data-review-status='corrected']"
    _wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, corrected)), "the corrected row")
    row = browser.find_element(By.ID, f"t-{target}")
    assert row.find_element(By.CSS_SELECTOR, ".review-emotion").text == new_emotion
    assert row.find_element(By.CSS_SELECTOR, ".review-stance").text == "OPPOSE"
    assert "corrected by ann" in row.find_element(By.CSS_SELECTOR, ".verdict").text
    assert _row_ids(browser) == ids  # back on the same sample
    browser.save_screenshot(str(shots / "2-corrected.png"))

    # Accept the second row as shown.
    second = browser.find_element(By.ID, f"t-{ids[1]}")
    second.find_element(By.CSS_SELECTOR, "button.accept").click()
    accepted = f"article[data-id='{ids[1]}'][data-review-status='accepted']"
    _wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, accepted)), "the accepted row")

    # Elasticsearch holds the verdicts on the tweets' documents...
    stored = httpx.get(f"{es_url}/{index_name}/_doc/{target}").json()["_source"]
    assert stored["review"]["status"] == "corrected"
    assert (stored["review"]["emotion"], stored["review"]["stance"]) == (new_emotion, "OPPOSE")
    assert stored["review"]["sentiment"] == "negative" and stored["review"]["reviewer"] == "ann"
    assert stored["review"]["shown_emotion"] == shown
    second_stored = httpx.get(f"{es_url}/{index_name}/_doc/{ids[1]}").json()["_source"]
    assert second_stored["review"]["emotion"] == second_stored["emotion"]["label"]

    # ...and the gold CSV export (which needs the key, like the forms) has both, in the evaluate
    # command's format.
    assert httpx.get(f"{stack.api}/review/export.csv").status_code == 401
    export = httpx.get(f"{stack.api}/review/export.csv", headers={"X-API-Key": API_KEY})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    gold = list(csv.DictReader(io.StringIO(export.text)))
    assert list(gold[0]) == ["id", "text", "emotion", "stance", "sentiment"]
    by_id = {g["id"]: g for g in gold}
    assert set(by_id) == {target, ids[1]}
    assert by_id[target]["emotion"] == new_emotion and by_id[target]["stance"] == "OPPOSE"
    assert by_id[target]["sentiment"] == "negative"
    assert by_id[target]["text"] == stored["text"]
    assert by_id[ids[1]]["sentiment"] == ""  # no label given: an empty cell

    # The reviewed filter shows exactly the two reviewed tweets.
    browser.get(sample_url.replace("status=all", "status=reviewed"))
    _wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "article.tweet")), "reviewed rows")
    assert set(_row_ids(browser)) == {target, ids[1]}
    browser.save_screenshot(str(shots / "3-reviewed.png"))
