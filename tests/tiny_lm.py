"""A randomly initialised, tiny causal LM with a real tokenizer, built in memory in well under a second.

Digits are split one per token, as in Qwen and Llama, so ids like ``10`` are two tokens and
the first-token scorer's multi-token path is exercised. The chat template is a small ChatML.
"""

from __future__ import annotations

from contextlib import contextmanager

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = """def get_response(self, request): return self.session.send(request, timeout=10)
class Session: headers = {} ; cookies = None ; [1] > [2] > [3] > [10] > [12]
Rank the code functions based on their relevance to contain the faults causing the GitHub issue.
Traceback (most recent call last): File "requests/models.py", line 42, in raise_for_status
""" * 3


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.splitlines(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<|im_end|>",
                                   bos_token="<|im_start|>")
    fast.chat_template = CHATML
    return fast


def tiny_model(tokenizer, seed: int = 0, max_positions: int = 4096):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
    )
    return Qwen2ForCausalLM(config).eval()


@contextmanager
def one_thread():
    """A tiny model gains nothing from threads, and on a busy machine torch's thread pool spins:
    one thread runs these tests about ten times faster there. The previous setting is restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tiny_loaded():
    """The tiny model and tokenizer as the reranker holds them."""
    import torch

    from localizer.rerank.models import LoadedModel

    tokenizer = tiny_tokenizer()
    return LoadedModel(tiny_model(tokenizer), tokenizer, "tiny", 4096, "cpu", torch.float32)
