"""The language model's tokenizer, built by the project (no hub): byte-level BPE trained on the
prompts of the tasks, so any text encodes (unknown words fall back to bytes).

The model's vocabulary is the tokenizer's plus N_BINS action tokens at the very end.
"""

from transformers import PreTrainedTokenizerFast

PROMPT_TEMPLATE = "In: What action should the robot take to {instruction}?\nOut:"
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>"]


def prompt(instruction: str) -> str:
    return PROMPT_TEMPLATE.format(instruction=instruction.strip().rstrip("?.").lower())


def build_tokenizer(instructions: list[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on the prompts of ``instructions``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [prompt(text) for text in instructions] or [prompt("do the task")]
    tokenizer.train_from_iterator(corpus * 4, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>", padding_side="left"
    )
