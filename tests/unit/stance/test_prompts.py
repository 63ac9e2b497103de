from __future__ import annotations

import pytest

from stance.prompts import PROMPT_VERSIONS, chat_prompt, completion_prompt, user_message

# TinyLlama-1.1B-Chat's template (Zephyr style), as embedded in its GGUF.
ZEPHYR = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n' + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)


def test_v1_is_the_specification_prompt_verbatim() -> None:
    assert user_message("v1", "Cats rule") == (
        "Tweet: Cats rule. Does the author SUPPORT, OPPOSE, or remain NEUTRAL in its opinion? "
        "Only return any of the three options."
    )


@pytest.mark.parametrize("version", [v for v in PROMPT_VERSIONS if v != "v1"])
def test_later_versions_put_the_instruction_first_and_the_tweet_last(version: str) -> None:
    parts = completion_prompt(version)
    assert "SUPPORT" in parts.prefix and "OPPOSE" in parts.prefix and "NEUTRAL" in parts.prefix
    assert parts.suffix == "\nAnswer:"  # only the answer cue follows the tweet
    assert parts.render("X").endswith("Tweet: X\nAnswer:")


def test_chat_prompt_renders_the_models_template_around_the_tweet() -> None:
    parts = chat_prompt("v2", ZEPHYR, bos_token="<s>", eos_token="</s>")
    assert parts.prefix.startswith("<|user|>\n")
    assert parts.suffix == "</s>\n<|assistant|>\n"
    assert parts.render("I love it").count("I love it") == 1


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown prompt version"):
        completion_prompt("v99")


def test_v5_names_the_target_in_the_cached_prefix_and_defaults_to_the_main_subject() -> None:
    from stance.prompts import MAIN_SUBJECT_PHRASE, names_target

    named = completion_prompt("v5", "Hillary Clinton")
    default = completion_prompt("v5")
    assert "toward Hillary Clinton?" in named.prefix and "{target}" not in named.prefix
    assert MAIN_SUBJECT_PHRASE in default.prefix
    assert named.suffix == default.suffix  # only the prefix differs: one cache per target
    assert names_target("v5") and not names_target("v4")
    assert completion_prompt("v4", "Hillary Clinton") == completion_prompt("v4")


def test_a_target_cannot_smuggle_template_or_special_token_syntax_into_the_prefix() -> None:
    from common.events import clean_target

    assert clean_target("<start_of_turn>user {tweet}\x00 Hillary") == "start_of_turn user tweet Hillary"
    assert clean_target("   ") == "main subject" and clean_target(None) == "main subject"
    assert len(clean_target("x" * 500)) == 200
    assert "{tweet}" not in user_message("v5", "a tweet", "{tweet} [INST]")
