"""``/review``: a server-rendered page to check a stratified random sample of labelled tweets,
accept or correct their labels (stored on the tweet's document), and export them as gold CSV.

With ``GATEWAY_API_KEYS`` set, the forms and the export need the key like every mutating route:
the page's sign-in box calls ``POST /review/login`` with the ``X-API-Key`` header once, which
stores the key in a Secure (``GATEWAY_REVIEW_COOKIE_SECURE``), HttpOnly, SameSite=Strict cookie
valid only under ``/review``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.templating import Jinja2Templates

from common.events import EMOTION_LABELS, STANCE_LABELS
from gateway.api.deps import QualityStoreDep, SettingsDep
from gateway.api.review import GOLD_HEADER, SENTIMENT_LABELS, InvalidReview, ReviewForm, csv_lines, gold_row, review_doc
from gateway.api.routes.tweets import TweetIdPath
from gateway.api.search import review_strata
from gateway.api.security import API_KEY_COOKIE, API_KEY_HEADER, client_name, key_required
from gateway.quality import FLAGS, QualityThresholds

router = APIRouter(tags=["review"])
templates = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")
COOKIE_MAX_AGE_S = 8 * 3600
Status = Literal["all", "pending", "reviewed"]
Seed = Annotated[int | None, Query(ge=0, le=2**31 - 1, description="Same seed, same data: same sample")]
PerStratum = Annotated[int, Query(ge=1, le=20, description="Tweets drawn per stratum")]
StatusQuery = Annotated[Status, Query(description="all, pending (not reviewed yet) or reviewed")]
Label = Annotated[str, Form(max_length=32)]


def _sample_url(seed: int, per_stratum: int, status: str) -> str:
    return "/review?" + urlencode({"seed": seed, "per_stratum": per_stratum, "status": status})


@router.get("/review", response_class=HTMLResponse)
async def review_page(
    request: Request,
    store: QualityStoreDep,
    settings: SettingsDep,
    seed: Seed = None,
    per_stratum: PerStratum = 3,
    status: StatusQuery = "all",
) -> Response:
    """The sample: strata flagged, low confidence, each emotion label and each stance label."""
    if seed is None:  # pin a seed in the address, so reloading and sharing show the same sample
        return RedirectResponse(_sample_url(random.randrange(2**31), per_stratum, status), status_code=302)
    strata = review_strata(EMOTION_LABELS, STANCE_LABELS, QualityThresholds.from_settings(settings))
    rows = await store.sample(strata, seed=seed, per_stratum=per_stratum, status=status)
    needs_key = bool(settings.api_key_names) and API_KEY_COOKIE not in request.cookies
    return templates.TemplateResponse(
        request,
        "review.html",
        {
            "rows": rows,
            "strata": [name for name, _ in strata],
            "drawn": Counter(name for name, _ in rows),
            "seed": seed,
            "per_stratum": per_stratum,
            "status": status,
            "statuses": get_args(Status),
            "next_url": _sample_url((seed + 1) % 2**31, per_stratum, status),
            "emotion_labels": EMOTION_LABELS,
            "stance_labels": STANCE_LABELS,
            "sentiment_labels": SENTIMENT_LABELS,
            "flags": FLAGS,
            "needs_key": needs_key,
            "keys_configured": bool(settings.api_key_names),
            "key_header": API_KEY_HEADER,
        },
    )


@router.post("/review/login", status_code=204, responses={401: {"description": "Missing or wrong X-API-Key"}})
async def review_login(request: Request, settings: SettingsDep) -> Response:
    """Called by the page's sign-in box with ``X-API-Key`` (checked like on every mutating route)."""
    response = Response(status_code=204)
    key = request.headers.get(API_KEY_HEADER)
    if settings.api_key_names and key:
        response.set_cookie(
            API_KEY_COOKIE,
            key,
            max_age=COOKIE_MAX_AGE_S,
            path="/review",
            secure=settings.review_cookie_secure,
            httponly=True,
            samesite="strict",
        )
    return response


@router.post(
    "/review/{tweet_id}",
    status_code=303,
    responses={303: {"description": "Back to the sample"}, 404: {"description": "No such tweet"}},
)
async def submit_review(
    request: Request,
    tweet_id: TweetIdPath,
    store: QualityStoreDep,
    settings: SettingsDep,
    action: Annotated[Literal["accept", "correct"], Form()],
    shown_emotion: Label = "",
    shown_stance: Label = "",
    emotion: Label = "",
    stance: Label = "",
    sentiment: Label = "",
    reviewer: Annotated[str, Form(max_length=100)] = "",
    seed: Annotated[int, Form(ge=0, le=2**31 - 1)] = 0,
    per_stratum: Annotated[int, Form(ge=1, le=20)] = 3,
    status: Annotated[Status, Form()] = "all",
) -> Response:
    """Accept the shown labels or store corrections on the tweet's document (``review``)."""
    if settings.api_key_names:
        reviewer = client_name(request)  # the key's name: a reviewer cannot sign as someone else
    form = ReviewForm(action, shown_emotion, shown_stance, emotion, stance, sentiment, reviewer or "anonymous")
    try:
        doc = review_doc(form, at=datetime.now(UTC))
    except InvalidReview as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    tweet_id = str(int(tweet_id))
    if not await store.save_review(tweet_id, doc):
        raise HTTPException(status_code=404, detail=f"tweet {tweet_id} is not indexed")
    return RedirectResponse(f"{_sample_url(seed, per_stratum, status)}#t-{tweet_id}", status_code=303)


@router.get(
    "/review/export.csv",
    response_class=StreamingResponse,
    dependencies=[Depends(key_required)],
    responses={
        401: {"description": "Missing or unknown X-API-Key (when keys are configured)"},
        429: {"description": "Rate limit exceeded, or too many wrong keys from this client; see Retry-After"},
    },
)
async def export_gold(store: QualityStoreDep) -> StreamingResponse:
    """Every reviewed tweet as gold CSV: ``id,text,emotion,stance,sentiment`` (empty = no label).
    With ``GATEWAY_API_KEYS`` set it needs the key (header, or the page's cookie)."""

    async def lines() -> AsyncIterator[str]:
        yield csv_lines([list(GOLD_HEADER)])
        async for page in store.reviewed():
            yield csv_lines(gold_row(source) for source in page)

    headers = {"Content-Disposition": 'attachment; filename="review-gold.csv"'}
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers)
