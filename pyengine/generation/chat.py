"""Chat templates: the checkpoint's Jinja template rendered the way transformers renders it."""

from __future__ import annotations

import functools


def _raise_exception(message):
    raise ValueError(f"chat template: {message}")


@functools.lru_cache(maxsize=16)
def _compiled(template: str):
    """The template compiled once: a server renders the same one for every request, and
    compiling it (parse + Python code generation) costs far more than rendering."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise_exception
    return env.from_string(template)


def render_chat(template: str | None, messages: list[dict], special_tokens: dict) -> str:
    """The prompt text for `messages` ([{"role": ..., "content": ...}]), ending with the
    assistant's turn opened (add_generation_prompt=True)."""
    if not template:
        raise ValueError("this model has no chat template; pass a plain prompt instead")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
    for i, m in enumerate(messages):
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("role"), str)
            or not isinstance(m.get("content"), str)
        ):
            raise ValueError(f"messages[{i}] must be a dict with str 'role' and 'content'")
    from jinja2 import TemplateError

    try:
        return _compiled(template).render(
            messages=messages,
            add_generation_prompt=True,
            bos_token=special_tokens.get("bos") or "",
            eos_token=special_tokens.get("eos") or "",
        )
    except TemplateError as exc:  # the model's template is broken, not the caller's messages
        raise ValueError(f"the model's chat template cannot be rendered: {exc}") from exc
