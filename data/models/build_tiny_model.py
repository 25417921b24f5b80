"""Build ftplat-tiny-cs, the default model of the quickstart: a small
Llama-architecture model pretrained by ftplat's own trainer on the project's
own text (data/customer-service/corpus.txt). Run once by a developer; the
result is committed in data/models/ftplat-tiny-cs/ (a few MB).

    python data/models/build_tiny_model.py --ft-train build-rel/trainer/ft-train [--epochs 6]

Steps:
 1. a byte-level BPE tokenizer (Llama-3 split regex, 4096 tokens, ChatML
    special tokens) trained on the corpus with the `tokenizers` package;
 2. a LlamaForCausalLM config (4 layers, hidden 256, GQA 4/2, tied
    embeddings) and a seeded random initialisation (transformers' own init);
 3. the corpus tokenized into rows of 256 tokens, every token trained;
 4. `ft-train train` with method full (AdamW, cosine, warmup) - the
    pretraining itself is ours;
 5. the weights cast to bf16 (`ft-train st-cast`) to keep the folder small.
The base model has never seen data/customer-service/train.jsonl or
validation.jsonl as dialogues, so fine-tuning on them has something to teach.
"""
import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "data" / "models" / "ftplat-tiny-cs"
CORPUS = ROOT / "data" / "customer-service" / "corpus.txt"

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
          " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
          "{% endif %}")
CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 4096,
    "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
    "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "tie_word_embeddings": True, "hidden_act": "silu", "attention_bias": False,
    "mlp_bias": False, "bos_token_id": None, "eos_token_id": 2, "pad_token_id": None,
    "torch_dtype": "bfloat16",
}


def build_tokenizer(out):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=CONFIG["vocab_size"], special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train([str(CORPUS)], trainer)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "unk_token": None, "chat_template": CHATML,
        "model_max_length": CONFIG["max_position_embeddings"], "add_bos_token": False,
        "clean_up_tokenization_spaces": False}, indent=2) + "\n")
    assert [tok.token_to_id(s) for s in SPECIALS] == [0, 1, 2]
    return tok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ft-train", required=True)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    work = Path(tempfile.mkdtemp(prefix="tiny-model-"))
    init = work / "init"
    init.mkdir()
    tok = build_tokenizer(init)
    cfg = {k: v for k, v in CONFIG.items() if v is not None}
    torch.manual_seed(20261123)
    model = LlamaForCausalLM(LlamaConfig(**cfg)).to(torch.float32)
    model.save_pretrained(init, safe_serialization=True)
    (init / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")

    # Corpus rows: paragraphs joined with <|endoftext|>, cut into rows of `seq`.
    ids = []
    for para in CORPUS.read_text().split("\n\n"):
        if para.strip():
            ids += tok.encode(para.strip()).ids + [0]
    rows = work / "rows.jsonl"
    with rows.open("w") as f:
        for i in range(0, len(ids) - args.seq, args.seq):
            f.write(json.dumps({"input_ids": ids[i:i + args.seq]}) + "\n")
    print(f"corpus: {len(ids)} tokens, {len(ids) // args.seq} rows of {args.seq}")

    job = {"model": str(init), "train_file": str(rows), "output_dir": str(work / "out"),
           "method": "full", "seed": 7, "threads": args.threads,
           "hyperparameters": {"n_epochs": args.epochs, "batch_size": 8, "learning_rate": 2e-3,
                               "lr_scheduler_type": "cosine", "warmup_ratio": 0.05,
                               "weight_decay": 0.01, "max_grad_norm": 1.0}}
    (work / "job.json").write_text(json.dumps(job))
    subprocess.run([args.ft_train, "train", "--config", str(work / "job.json")], check=True)

    trained = work / "out" / "model"
    if not (trained / "model.safetensors").exists():
        raise SystemExit(f"no trained model in {trained}: {list((work / 'out').iterdir())}")
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    subprocess.run([args.ft_train, "st-cast", str(trained / "model.safetensors"),
                    str(OUT / "model.safetensors"), "BF16"], check=True)
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(init / f, OUT / f)
    (OUT / "generation_config.json").write_text(json.dumps(
        {"eos_token_id": 2, "max_new_tokens": 96}, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
