"""Chat templates for tokenizers that arrive without one, recognised by the turn markers in their vocabulary.

The Gemma 3 270M GGUF (the built-in default model) has no `tokenizer.chat_template` in its metadata, so its sessions
would render with the plain fallback and the calibration text would not look like what the model sees as an agent.
These templates are written here from the published turn formats; they leave out the BOS token on purpose, because
llama-imatrix and `imatrix collect` put BOS at the start of every chunk themselves, and a `<bos>` string inside the
text would become a BOS token mid-stream under --parse-special. Roles a family's format lacks (system, tool) raise
an error that mentions the role, so `render.render_session` applies its documented adaptation and retries.
"""

from __future__ import annotations

from typing import Any

# Gemma: <start_of_turn>user|model ... <end_of_turn>; the system text is folded into the first user turn and the
# tool definitions (when any) are listed there as JSON, one per line.
GEMMA = """\
{%- set ns = namespace(prefix='') -%}
{%- if tools -%}
{%- set ns.prefix = 'Available tools:\\n' -%}
{%- for tool in tools -%}{%- set ns.prefix = ns.prefix ~ (tool | tojson) ~ '\\n' -%}{%- endfor -%}
{%- set ns.prefix = ns.prefix ~ '\\n' -%}
{%- endif -%}
{%- for message in messages -%}
{%- if message['role'] == 'system' and loop.first -%}
{%- set ns.prefix = ns.prefix ~ message['content'] ~ '\\n\\n' -%}
{%- elif message['role'] in ('user', 'assistant') -%}
{{ '<start_of_turn>' ~ ('model' if message['role'] == 'assistant' else 'user') ~ '\\n' }}
{%- if message['role'] == 'user' and ns.prefix -%}{{ ns.prefix }}{%- set ns.prefix = '' -%}{%- endif -%}
{{ message['content'] | trim }}<end_of_turn>{{ '\\n' }}
{%- else -%}
{{ raise_exception('Gemma has no ' ~ message['role'] ~ ' role here: conversation roles must be user/assistant') }}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}
"""

# ChatML (<|im_start|>role ... <|im_end|>), used by Qwen and many fine-tunes; every role is allowed.
CHATML = """\
{%- if tools -%}
{{ '<|im_start|>system\\nAvailable tools:\\n' }}{%- for tool in tools -%}{{ (tool | tojson) ~ '\\n' }}{%- endfor -%}
{{ '<|im_end|>\\n' }}
{%- endif -%}
{%- for message in messages -%}
{{ '<|im_start|>' ~ message['role'] ~ '\\n' ~ message['content'] ~ '<|im_end|>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}
"""

# (marker tokens that must all be in the vocabulary, template name, template), most specific first
TEMPLATES_BY_MARKERS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("<start_of_turn>", "<end_of_turn>"), "gemma", GEMMA),
    (("<|im_start|>", "<|im_end|>"), "chatml", CHATML),
)
TEMPLATES_BY_NAME = {name: template for _, name, template in TEMPLATES_BY_MARKERS}


def template_for_vocabulary(tokenizer: Any) -> tuple[str, str] | None:
    """(name, template) of the first family whose turn markers are all tokens of this tokenizer, or None."""
    vocabulary = tokenizer.get_vocab()
    for markers, name, template in TEMPLATES_BY_MARKERS:
        if all(marker in vocabulary for marker in markers):
            return name, template
    return None
