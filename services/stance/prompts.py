"""Versioned stance prompts, split into a fixed prefix and a per-tweet suffix (pure, no I/O).

The prefix is everything before the tweet. Keeping the instruction first and the tweet last
lets the local model evaluate the prefix once and reuse its KV cache for every tweet.
docs/stance.md explains every version and why it changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2.sandbox import ImmutableSandboxedEnvironment

from common.events import MAIN_SUBJECT, clean_target

TWEET = "{tweet}"
TARGET = "{target}"
# How the default target reads inside a prompt.
MAIN_SUBJECT_PHRASE = "the main subject of the tweet (the person, group, policy, product or idea it is about)"

_V2_INSTRUCTION = (
    "Decide which stance the author of a tweet takes toward the main subject of the tweet "
    "(the person, group, policy, product or idea it is about).\n"
    "SUPPORT: the author is in favour of it, praises, defends or celebrates it.\n"
    "OPPOSE: the author is against it, criticises, mocks or rejects it.\n"
    "NEUTRAL: the author only reports, asks or mentions it without taking a side.\n"
    "Answer with exactly one word: SUPPORT, OPPOSE or NEUTRAL.\n\n"
)

# Shots are written for this prompt and are not in bench/stance_devset.jsonl.
_V3_SHOTS = (
    "Tweet: Finally a mayor who actually fixes potholes instead of talking about them. Vote Reyes!\n"
    "Answer: SUPPORT\n\n"
    "Tweet: The new parking fees are a scam. Nobody asked for this and we will fight it.\n"
    "Answer: OPPOSE\n\n"
    "Tweet: The council votes on the new parking fees next Tuesday at 6pm.\n"
    "Answer: NEUTRAL\n\n"
)

_V4_SHOTS = _V3_SHOTS + (
    "Tweet: Best concert of my life, this band never disappoints!\n"
    "Answer: SUPPORT\n\n"
    "Tweet: This phone update ruined my battery life. Absolutely useless company.\n"
    "Answer: OPPOSE\n\n"
    "Tweet: The library will be closed on Monday for the holiday.\n"
    "Answer: NEUTRAL\n\n"
)

# Stance toward a named target (or the main subject), the question kept apart from the tweet's
# mood: the head trained on real posts reads this prompt (docs/stance.md, "v5").
_V5_INSTRUCTION = (
    "What stance does the author of the tweet take toward {target}?\n"
    "SUPPORT: in favour of it: praises, defends, celebrates or argues for it.\n"
    "OPPOSE: against it: criticises, mocks, blames or argues against it.\n"
    "NEUTRAL: takes no side on it, only reports or asks, or the tweet is not about it.\n"
    "Judge the position, not the mood: an angry tweet can defend, a cheerful one can mock.\n"
    "Answer with one word: SUPPORT, OPPOSE or NEUTRAL.\n\n"
)

PROMPT_VERSIONS: dict[str, str] = {
    # The specification's prompt, verbatim.
    "v1": (
        "Tweet: {tweet}. Does the author SUPPORT, OPPOSE, or remain NEUTRAL in its opinion? "
        "Only return any of the three options."
    ),
    # Instruction first (cacheable), the target made explicit, each label defined.
    "v2": _V2_INSTRUCTION + "Tweet: {tweet}",
    # v2 plus one worked example per label; free at run time because it is in the prefix.
    "v3": _V2_INSTRUCTION + _V3_SHOTS + "Tweet: {tweet}",
    # Two examples per label: halves the prompt's pull toward SUPPORT (see docs/stance.md).
    "v4": _V2_INSTRUCTION + _V4_SHOTS + "Tweet: {tweet}",
    # The target named in the question (one cached prefix per target); no worked examples.
    "v5": _V5_INSTRUCTION + "Tweet: {tweet}",
}
DEFAULT_PROMPT_VERSION = "v5"

# Stricter wording for the one retry an API answer outside the three labels earns.
STRICT_SUFFIX = "\n\nReply with one of SUPPORT, OPPOSE or NEUTRAL and nothing else: no punctuation, no explanation."

# Content-free inputs for contextual calibration (Zhao et al., 2021, "Calibrate before use").
CONTENT_FREE_INPUTS: tuple[str, ...] = ("N/A", "[MASK]", "")


@dataclass(frozen=True)
class PromptParts:
    """The rendered prompt around the tweet: ``prefix + tweet + suffix``."""

    prefix: str
    suffix: str

    def render(self, tweet: str) -> str:
        return f"{self.prefix}{tweet}{self.suffix}"


def target_phrase(target: str) -> str:
    """How a target reads in a prompt (and what the probe's encoder embeds for it)."""
    cleaned = clean_target(target)
    return MAIN_SUBJECT_PHRASE if cleaned == MAIN_SUBJECT else cleaned


def names_target(version: str) -> bool:
    """Whether this prompt version puts the target in the question (older ones ask about the
    main subject only)."""
    return TARGET in PROMPT_VERSIONS.get(version, "")


def user_message(version: str, tweet: str, target: str = MAIN_SUBJECT) -> str:
    """The prompt as one chat message (for chat-completions APIs)."""
    before, after = split_template(version, target)
    return before + tweet + after


def split_template(version: str, target: str = MAIN_SUBJECT) -> tuple[str, str]:
    try:
        template = PROMPT_VERSIONS[version]
    except KeyError:
        raise ValueError(f"unknown prompt version {version!r}; known: {', '.join(PROMPT_VERSIONS)}") from None
    before, _, after = template.partition(TWEET)
    return before.replace(TARGET, target_phrase(target)), after


def completion_prompt(version: str, target: str = MAIN_SUBJECT) -> PromptParts:
    """For a base model without a chat template: the prompt continues with an answer cue."""
    before, after = split_template(version, target)
    return PromptParts(prefix=before, suffix=after + "\nAnswer:")


def chat_prompt(
    version: str, chat_template: str, bos_token: str, eos_token: str, target: str = MAIN_SUBJECT
) -> PromptParts:
    """Render the model's own chat template around a placeholder, then split at it."""
    before, after = split_template(version, target)
    placeholder = "\x00TWEET\x00"
    rendered = (
        ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        .from_string(chat_template)
        .render(
            messages=[{"role": "user", "content": before + placeholder + after}],
            add_generation_prompt=True,
            bos_token=bos_token,
            eos_token=eos_token,
        )
    )
    prefix, found, suffix = rendered.partition(placeholder)
    if not found:
        raise ValueError("the chat template dropped the user message")
    return PromptParts(prefix=prefix, suffix=suffix)
