"""Write a tiny SigLIP with random weights, for demos and tests without network.

The folder it writes loads back through `AutoModel` and `AutoProcessor` like a real
checkpoint. It contains the model config and safetensors weights from
`save_pretrained`, a SigLIP image processor, and a SentencePiece tokenizer trained
here on a fixed list of shop words. Real SigLIP checkpoints also ship a
SentencePiece model, so the `sentencepiece` and `protobuf` packages that read it are
needed either way. The vectors carry no meaning: they only exercise the image and
text paths.

    python -m nanorec.tiny_siglip /tmp/tiny-siglip
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Annotated

import typer

logger = logging.getLogger(__name__)

# Words of the synthetic shop and common title words, the tokenizer's corpus.
_CORPUS_WORDS = (
    "beauty skin care makeup hair fragrance nails bath body tools men's grooming "
    "serum moisturizer cleanser toner face mask lipstick mascara foundation "
    "eyeliner blush shampoo conditioner oil styling gel spray eau de parfum mist "
    "cologne perfume polish top coat cuticle file wash lotion salts hand cream "
    "brush set sponge tweezers mirror dryer shaving beard aftershave razor "
    "hydrating matte volumizing gentle organic long-lasting repairing brightening "
    "soothing waterproof natural intense essentials oz fl ml travel size by in and "
    "of for with the a 1 2 3 50 100"
).split()


def build(
    folder: Path,
    seed: int = 0,
    image_size: int = 32,
    text_length: int = 16,
    patch_size: int = 8,
    hidden_size: int = 32,
    n_layer: int = 2,
    n_head: int = 2,
) -> Path:
    """Write a random SigLIP model and its processor into `folder`.

    The defaults give a model of about 76k weights. The sizes of SigLIP base
    (google/siglip-base-patch16-224) are image_size=224, text_length=64,
    patch_size=16, hidden_size=768, n_layer=12 and n_head=12, which the speed
    benchmark uses.

    Args:
        folder: output folder, created when missing; existing files are replaced.
        seed: seed of the random weights; the same seed writes the same weights.
        image_size: input resolution of the vision tower, in pixels.
        text_length: the text tower's maximum number of tokens.
        patch_size: side of the vision tower's square patches, in pixels.
        hidden_size: width of both towers; the MLPs are 4 times wider.
        n_layer: transformer layers in each tower.
        n_head: attention heads in each tower; must divide hidden_size.

    Returns:
        The folder.
    """
    import torch
    from transformers import (
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
        SiglipProcessor,
        SiglipTextConfig,
        SiglipTokenizer,
        SiglipVisionConfig,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "spiece.model"
    vocab_file.write_bytes(_train_sentencepiece())
    tokenizer = SiglipTokenizer(
        vocab_file=str(vocab_file), model_max_length=text_length
    )

    # Special ids follow the released SigLIP tokenizers: </s> (1) pads and ends.
    text = SiglipTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=n_layer,
        num_attention_heads=n_head,
        max_position_embeddings=text_length,
        pad_token_id=1,
        bos_token_id=1,
        eos_token_id=1,
    )
    vision = SiglipVisionConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=n_layer,
        num_attention_heads=n_head,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    model.save_pretrained(folder)

    image_processor = SiglipImageProcessor(
        size={"height": image_size, "width": image_size}
    )
    processor = SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    processor.save_pretrained(folder)
    logger.info("wrote a tiny random SigLIP to %s", folder)
    return folder


def _train_sentencepiece() -> bytes:
    import sentencepiece

    # Rotations of the word list give SentencePiece enough sentences to train on.
    words = list(_CORPUS_WORDS)
    sentences = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=256,
        hard_vocab_limit=False,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


app = typer.Typer(add_completion=False)


@app.command()
def main(
    folder: Annotated[Path, typer.Argument(help="output folder")],
    seed: Annotated[int, typer.Option(help="seed of the random weights")] = 0,
    image_size: Annotated[int, typer.Option(help="image side in pixels")] = 32,
) -> None:
    """Write a tiny random SigLIP (model + processor) for offline demos."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    build(folder, seed=seed, image_size=image_size)


if __name__ == "__main__":
    app()
