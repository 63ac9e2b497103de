"""Per target, the prompt around a tweet for a llama context: rendered once, tokenized once,
and its evaluated prefix (instruction, examples) kept as a saved KV state, so that switching
back to a target restores the prefix instead of decoding it again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stance.prompts import PromptParts, chat_prompt, completion_prompt

if TYPE_CHECKING:
    from llama_cpp import Llama

_MAX_TARGETS = 64  # rendered prompts kept per scorer (targets named by re-label jobs are few)
_MAX_SAVED_STATES = 8  # KV states kept in memory, one per recently used target


@dataclass
class Prefix:
    """One target's prompt: the tokens before the tweet (cached in the KV), the tail after it."""

    parts: PromptParts
    tokens: list[int]
    tail: list[int]
    tweet_lead: str
    content_free: dict[str, float] | None = None


def tokenize(llm: Llama, text: str, special: bool, bos: bool = False) -> list[int]:
    tokens = list(llm.tokenize(text.encode(), add_bos=False, special=special))
    if bos and (not tokens or tokens[0] != llm.token_bos()):
        tokens.insert(0, llm.token_bos())
    return tokens


class PrefixCache:
    """One scorer's prompts by target (:meth:`get`), and its context's prefix for a target (:meth:`load`)."""

    def __init__(self, llm: Llama, prompt_version: str) -> None:
        self._llm = llm
        self.prompt_version = prompt_version
        self._space_prefixing = llm.detokenize(llm.tokenize(b"a", add_bos=False)).startswith(b" ")
        self._prefixes: dict[str, Prefix] = {}
        # One saved KV state per target (least recently used first).
        self._states: OrderedDict[str, Any] = OrderedDict()

    def get(self, target: str) -> Prefix:
        found = self._prefixes.get(target)
        if found is not None:
            return found
        parts = self._prompt_parts(self.prompt_version, target)
        prefix = parts.prefix.rstrip(" ")
        tail = tokenize(self._llm, parts.suffix, special=True)
        if self._space_prefixing and tail and self._llm.detokenize(tail[:1]) == b" ":
            tail = tail[1:]  # the tokenizer's dummy space, not ours
        lead = "" if self._space_prefixing else parts.prefix[len(prefix) :]
        entry = Prefix(parts, tokenize(self._llm, prefix, special=True, bos=True), tail, lead)
        if len(self._prefixes) >= _MAX_TARGETS:
            self._prefixes.pop(next(iter(self._prefixes)))
        self._prefixes[target] = entry
        return entry

    def load(self, target: str) -> None:
        """The target's prefix in the KV cache: kept if it is there, restored from its saved
        state, or decoded (and saved). The caller holds the scorer's lock."""
        tokens = self.get(target).tokens
        n = len(tokens)
        if self._llm.n_tokens >= n and self._llm.input_ids[:n].tolist() == tokens:
            return
        state = self._states.get(target)
        if state is not None:
            self._llm.load_state(state)
            self._states.move_to_end(target)
            if self._llm.n_tokens >= n and self._llm.input_ids[:n].tolist() == tokens:
                return
        self._llm.n_tokens = 0  # what Llama.reset() does; eval drops the KV past it
        self._llm.eval(tokens)
        self._states[target] = self._llm.save_state()
        while len(self._states) > _MAX_SAVED_STATES:
            self._states.popitem(last=False)

    def _prompt_parts(self, version: str, target: str) -> PromptParts:
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            return completion_prompt(version, target)
        vocab_piece = self._llm.detokenize
        bos = vocab_piece([self._llm.token_bos()], special=True).decode(errors="ignore")
        eos = vocab_piece([self._llm.token_eos()], special=True).decode(errors="ignore")
        return chat_prompt(version, template, bos, eos, target)
