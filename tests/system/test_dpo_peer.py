"""DPO in ft-train against trl + PyTorch + peft (CPU).

Tiny random Llama models are built here (test_engine_peer's helpers) and
trained on pre-tokenized preference pairs ({"prompt_ids", "chosen_ids",
"rejected_ids"}, trl's tokenized layout). The reference is a PyTorch loop of
trl's DPOTrainer computation: trl's own DataCollatorForPreference (chosen
rows then rejected rows, right-padded), completion-only summed log-probs,
the sigmoid loss with label smoothing, and trl's metrics. Its loss and
metrics are themselves checked against trl's DPOTrainer._compute_loss on a
bare trainer instance (label_smoothing > 0: trl 1.x's sigmoid loss ignores
it; the smoothed (cDPO) form is what its "aot" loss computes on one pair).

Tolerances (stated, and why):
  - first step: loss and rewards/{chosen,rejected,accuracies,margins}
    within 1e-5 absolute, logps/* within 1e-5 relative (sums of ~10 fp32
    log-probs);
  - 20 steps: per-step loss within 1e-4 relative of the PyTorch loop with the
    same weights, data order and hyperparameters (as test_engine_peer).
"""
import json
import math
from collections import defaultdict

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
trl = pytest.importorskip("trl")
import torch.nn.functional as F  # noqa: E402
from trl import DPOTrainer  # noqa: E402
from trl.trainer.dpo_trainer import DataCollatorForPreference  # noqa: E402
from trl.trainer.utils import add_fused_lm_head  # noqa: E402

from test_engine_peer import ENV, _peft_model, ft, load_hf, make_model  # noqa: E402
from conftest import run  # noqa: E402

VOCAB = 61


# ---------------------------------------------------------------- data

def make_pairs(n, seed):
    g = torch.Generator().manual_seed(seed)

    def ids(lo, hi):
        L = int(torch.randint(lo, hi + 1, (1,), generator=g))
        return torch.randint(3, VOCAB, (L,), generator=g).tolist()

    return [{"prompt_ids": ids(2, 6), "chosen_ids": ids(1, 6), "rejected_ids": ids(1, 6)}
            for _ in range(n)]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def collate(pairs):
    return DataCollatorForPreference(pad_token_id=0)(pairs)


# ---------------------------------------------------------------- the reference

def seq_logps(model, batch):
    """Sum over completion tokens of log p(token), per row (chosen rows, then rejected)."""
    ids = batch["input_ids"]
    logits = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits
    lp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (lp * batch["completion_mask"][:, 1:]).sum(1)


def dpo_loss(pi, ref, beta, ls):
    pi_c, pi_r = pi.chunk(2)
    ref_c, ref_r = ref.chunk(2)
    z = beta * ((pi_c - pi_r) - (ref_c - ref_r))
    loss = (-F.logsigmoid(z) * (1 - ls) - F.logsigmoid(-z) * ls).mean()
    rc, rr = beta * (pi_c - ref_c).detach(), beta * (pi_r - ref_r).detach()
    metrics = {"rewards/chosen": rc.mean().item(), "rewards/rejected": rr.mean().item(),
               "rewards/accuracies": (rc > rr).float().mean().item(),
               "rewards/margins": (rc - rr).mean().item(),
               "logps/chosen": pi_c.detach().mean().item(),
               "logps/rejected": pi_r.detach().mean().item()}
    return loss, metrics


def ref_logps_of(model, pairs, adapters_off):
    model.eval()
    with torch.no_grad():
        if adapters_off:
            with model.disable_adapter():
                return seq_logps(model, collate(pairs))
        return seq_logps(model, collate(pairs))


class _Accel:
    device = torch.device("cpu")

    def gather_for_metrics(self, x):
        return x

    def gather(self, x):
        return x

    def unwrap_model(self, m):
        return m


def trl_loss(model, pairs, ref, beta, ls=0.0, loss_type="sigmoid"):
    """trl's own DPOTrainer._compute_loss on a bare instance (precomputed reference)."""
    t = object.__new__(DPOTrainer)
    t.model, t.accelerator, t.ref_model = model, _Accel(), None
    t.ld_alpha, t.precompute_ref_logps, t.f_divergence_type = None, True, "reverse_kl"
    t.loss_types, t.loss_weights, t.beta, t.label_smoothing = [loss_type], [1.0], beta, ls
    t.use_weighting, t.aux_loss_enabled, t._tp_size = False, False, 1
    t._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    t._total_train_tokens = 0
    inputs = dict(collate(pairs))
    inputs["ref_chosen_logps"], inputs["ref_rejected_logps"] = ref.chunk(2)
    with torch.no_grad():
        loss = t._compute_loss(model, inputs, False)
    mode = "train" if model.training else "eval"
    return loss.item(), {k: v[0] for k, v in t._metrics[mode].items()}


METRICS = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"]


def assert_metrics(ours, theirs, prefix=""):
    for k in METRICS:
        assert abs(ours[prefix + k] - theirs[k]) <= 1e-5, (k, ours[prefix + k], theirs[k])
    for k in ["logps/chosen", "logps/rejected"]:
        assert abs(ours[prefix + k] - theirs[k]) <= 1e-5 * abs(theirs[k]), \
            (k, ours[prefix + k], theirs[k])


# ---------------------------------------------------------------- jobs

def _job(d, method, steps, out, **hp):
    h = {"max_steps": steps, "batch_size": 2, "gradient_accumulation_steps": 2,
         "learning_rate": 3e-3, "lr_scheduler_type": "cosine", "warmup_steps": 3,
         "weight_decay": 0.01, "max_grad_norm": 0.5, "shuffle": False, "beta": 0.5}
    h.update(hp)
    job = {"model": str(d / "model"), "train_file": str(d / "pairs.jsonl"),
           "output_dir": str(d / out), "method": method, "seed": 7, "objective": "dpo",
           "hyperparameters": h}
    if method == "lora":
        job["init_adapter"] = str(d / "init_adapter")
    return job


def _run(build_dir, job, path, *extra, check=True):
    path.write_text(json.dumps(job))
    p = run([ft(build_dir), "train", "--config", str(path), *extra], env=ENV, check=check)
    return p, [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]


def _steps(lines):
    return [x for x in lines if x["type"] == "step"]


def torch_dpo_loop(model, pairs, steps, method, beta, ls=0.0, ref=None):
    """The reference loop: file order, micro-batches of 2 pairs (one forward
    of 4 rows each), 2 accumulation steps, loss = mean over the step's pairs,
    clip_grad_norm_(0.5), AdamW (decay 0.01, not on norms), cosine schedule
    with 3 warmup steps. ref: reference log-probs per pair (chosen, rejected),
    else the model with its adapters off."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if method == "full":
        groups = [{"params": [p for n, p in params if "norm" not in n], "weight_decay": 0.01},
                  {"params": [p for n, p in params if "norm" in n], "weight_decay": 0.0}]
    else:
        groups = [{"params": [p for _, p in params], "weight_decay": 0.01}]
    opt = torch.optim.AdamW(groups, lr=3e-3, betas=(0.9, 0.999), eps=1e-8)
    sched = transformers.get_cosine_schedule_with_warmup(opt, 3, steps)
    micro = [list(range(i, min(i + 2, len(pairs)))) for i in range(0, len(pairs), 2)]
    steps_per_epoch = math.ceil(len(micro) / 2)
    out = []
    for step in range(steps):
        first = (step % steps_per_epoch) * 2
        mbs = micro[first:first + 2]
        n_pairs = sum(len(mb) for mb in mbs)
        opt.zero_grad()
        loss_sum, margin_sum = 0.0, 0.0
        for mb in mbs:
            sub = [pairs[i] for i in mb]
            if ref is None:
                r = ref_logps_of(model, sub, adapters_off=True)
            else:
                r = torch.cat([torch.tensor([ref[i][0] for i in mb]),
                               torch.tensor([ref[i][1] for i in mb])])
            model.train()
            loss, m = dpo_loss(seq_logps(model, collate(sub)), r, beta, ls)
            (loss * len(mb) / n_pairs).backward()
            loss_sum += loss.item() * len(mb)
            margin_sum += m["rewards/margins"] * len(mb)
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 0.5)
        opt.step()
        sched.step()
        out.append((loss_sum / n_pairs, margin_sum / n_pairs))
    model.eval()
    return out


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("dpo")
    make_model("llama_gqa", d / "model", seed=3)
    pairs = make_pairs(8, seed=31)
    write_jsonl(d / "pairs.jsonl", pairs)
    val = make_pairs(5, seed=37)
    write_jsonl(d / "val.jsonl", val)
    # peft's own init (B = 0: the policy starts equal to the reference) ...
    pm = peft.get_peft_model(load_hf(d / "model"),
                             peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                             target_modules="all-linear"))
    pm.save_pretrained(d / "init_adapter")
    # ... and one with B random, so that the first step's rewards are not 0
    _peft_model(load_hf(d / "model"), ["q_proj", "v_proj", "up_proj"]).save_pretrained(
        d / "rand_adapter")
    return d, pairs, val


def _rand_peft(d):
    base = load_hf(d / "model")
    add_fused_lm_head(base, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    return peft.PeftModel.from_pretrained(base, str(d / "rand_adapter"))


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("ls", [0.0, 0.2])
def test_first_step_loss_and_metrics(case, build_dir, ls):
    d, pairs, _ = case
    job = _job(d, "lora", 1, f"first_{ls}", batch_size=4, gradient_accumulation_steps=1,
               label_smoothing=ls)
    job["init_adapter"] = str(d / "rand_adapter")
    _, lines = _run(build_dir, job, d / f"first_{ls}.json")
    ours = _steps(lines)
    assert [x["step"] for x in ours] == [1]
    step1 = ours[0]

    pm = _rand_peft(d)
    sub = pairs[:4]
    ref = ref_logps_of(pm, sub, adapters_off=True)
    with torch.no_grad():
        loss, theirs = dpo_loss(seq_logps(pm, collate(sub)), ref, 0.5, ls)
    assert abs(step1["train_loss"] - loss.item()) <= 1e-5
    assert_metrics(step1, theirs)
    assert 0 < theirs["rewards/accuracies"] < 1  # a real mix, not a trivial 0 or 1

    # the reference is trl's computation
    if ls == 0:
        tl, tm = trl_loss(pm, sub, ref, 0.5)
        assert abs(tl - loss.item()) <= 1e-6
        for k in METRICS + ["logps/chosen", "logps/rejected"]:
            assert abs(tm[k] - theirs[k]) <= 1e-6 * max(1, abs(theirs[k])), k
    else:
        per_pair = [trl_loss(pm, [p], ref[[i, 4 + i]], 0.5, ls, "aot")[0]
                    for i, p in enumerate(sub)]
        assert abs(sum(per_pair) / 4 - loss.item()) <= 1e-6


def test_first_step_metrics_on_a_smaller_batch(case, build_dir):
    # gradient accumulation: the step's metrics are means over all its pairs
    d, pairs, _ = case
    job = _job(d, "lora", 1, "first_ga", batch_size=3, gradient_accumulation_steps=2)
    job["init_adapter"] = str(d / "rand_adapter")
    _, lines = _run(build_dir, job, d / "first_ga.json")
    step1 = _steps(lines)[0]
    pm = _rand_peft(d)
    parts = [pairs[0:3], pairs[3:6]]
    pis, refs = [], []
    for sub in parts:
        refs.append(ref_logps_of(pm, sub, adapters_off=True))
        with torch.no_grad():
            pis.append(seq_logps(pm, collate(sub)))

    def cat(xs):  # all chosen, then all rejected
        return torch.cat([x.chunk(2)[0] for x in xs] + [x.chunk(2)[1] for x in xs])

    loss, theirs = dpo_loss(cat(pis), cat(refs), 0.5, 0.0)
    assert abs(step1["train_loss"] - loss.item()) <= 1e-5
    assert_metrics(step1, theirs)


def test_lora_dpo_training_matches_torch_loop(case, build_dir):
    d, pairs, _ = case
    _, lines = _run(build_dir, _job(d, "lora", 20, "lora20"), d / "lora20.json")
    ours = _steps(lines)
    assert len(ours) == 20
    assert abs(ours[0]["train_loss"] - math.log(2)) <= 1e-6  # B = 0: policy == reference
    pm = peft.PeftModel.from_pretrained(load_hf(d / "model"), str(d / "init_adapter"),
                                        is_trainable=True)
    theirs = torch_dpo_loop(pm, pairs, 20, "lora", beta=0.5)
    for i, (a, (b, mb)) in enumerate(zip(ours, theirs)):
        assert abs(a["train_loss"] - b) <= 1e-4 * abs(b), f"step {i + 1}: {a['train_loss']} {b}"
        assert abs(a["rewards/margins"] - mb) <= 1e-4 * max(1.0, abs(mb)), f"step {i + 1}"
    assert theirs[-1][0] < 0.5 * math.log(2)  # it learned something


def test_full_dpo_training_with_precomputed_reference(case, build_dir):
    d, pairs, _ = case
    _, lines = _run(build_dir, _job(d, "full", 20, "full20"), d / "full20.json")
    ours = _steps(lines)
    assert len(ours) == 20
    base = load_hf(d / "model")
    with torch.no_grad():
        r = seq_logps(base, collate(pairs))
    ref = list(zip(r.chunk(2)[0].tolist(), r.chunk(2)[1].tolist()))
    theirs = torch_dpo_loop(load_hf(d / "model"), pairs, 20, "full", beta=0.5, ref=ref)
    for i, (a, (b, mb)) in enumerate(zip(ours, theirs)):
        assert abs(a["train_loss"] - b) <= 1e-4 * abs(b), f"step {i + 1}: {a['train_loss']} {b}"
        assert abs(a["rewards/margins"] - mb) <= 1e-4 * max(1.0, abs(mb)), f"step {i + 1}"


def test_label_smoothing_training_matches_torch_loop(case, build_dir):
    d, pairs, _ = case
    job = _job(d, "lora", 6, "ls6", label_smoothing=0.1)
    _, lines = _run(build_dir, job, d / "ls6.json")
    ours = _steps(lines)
    pm = peft.PeftModel.from_pretrained(load_hf(d / "model"), str(d / "init_adapter"),
                                        is_trainable=True)
    theirs = torch_dpo_loop(pm, pairs, 6, "lora", beta=0.5, ls=0.1)
    for i, (a, (b, _)) in enumerate(zip(ours, theirs)):
        assert abs(a["train_loss"] - b) <= 1e-4 * abs(b), f"step {i + 1}: {a['train_loss']} {b}"


def test_eval_metrics_on_validation_pairs(case, build_dir):
    d, _, val = case
    job = _job(d, "lora", 1, "eval", eval_on_start=True)
    job["init_adapter"] = str(d / "rand_adapter")
    job["validation_file"] = str(d / "val.jsonl")
    _, lines = _run(build_dir, job, d / "eval.json")
    evals = [x for x in lines if x["type"] == "eval"]
    assert [e["step"] for e in evals] == [0, 1]
    pm = _rand_peft(d)
    # evaluation goes batch_size (2) pairs at a time; the metrics are over all 5
    ref = ref_logps_of(pm, val, adapters_off=True)
    with torch.no_grad():
        loss, theirs = dpo_loss(seq_logps(pm, collate(val)), ref, 0.5, 0.0)
    assert abs(evals[0]["eval_loss"] - loss.item()) <= 1e-5
    assert_metrics(evals[0], theirs, prefix="eval_")
    assert "eval_perplexity" not in evals[0]


def test_full_dpo_exact_resume(case, build_dir):
    d, _, _ = case
    job = _job(d, "full", 6, "res_a", shuffle=True)
    _, a = _run(build_dir, job, d / "res_a.json")
    job["output_dir"] = str(d / "res_b")
    _, b1 = _run(build_dir, job, d / "res_b.json", "--stop-after-steps", "3")
    assert b1[-1]["type"] == "interrupted"
    _, b2 = _run(build_dir, job, d / "res_b.json", "--resume", str(d / "res_b" / "checkpoint"))
    la = [(x["train_loss"], x["rewards/margins"]) for x in _steps(a)]
    lb = [(x["train_loss"], x["rewards/margins"]) for x in _steps(b1 + b2)]
    assert len(la) == 6 and la == lb  # bit-identical: the reference is the same after resume


@pytest.mark.parametrize("row,needle", [
    ({"prompt_ids": [4, 5], "chosen_ids": "x", "rejected_ids": [6]},
     '"chosen_ids" must be a list (got string)'),
    ({"prompt_ids": [4, 5], "chosen_ids": [7], "rejected_ids": [6, 99]},
     '"rejected_ids"[1] = 99 is not a token id of the model (0 to 60)'),
    ({"prompt_ids": [], "chosen_ids": [7], "rejected_ids": [6]},
     '"prompt_ids" must hold at least 1 token id'),
    ({"prompt_ids": [4], "chosen_ids": [7]}, '"rejected_ids" is required'),
    ({"prompt_ids": [4], "chosen_ids": [7], "rejected_ids": [6], "extra": 1}, '"extra"'),
])
def test_bad_preference_row_names_its_line(case, build_dir, tmp_path, row, needle):
    d, pairs, _ = case
    bad = tmp_path / "bad.jsonl"
    write_jsonl(bad, pairs[:2] + [row] + pairs[2:3])
    job = _job(d, "lora", 1, "bad")
    job["train_file"] = str(bad)
    p, _ = _run(build_dir, job, tmp_path / "bad.json", check=False)
    assert p.returncode == 3, p.stderr
    assert f"bad.jsonl line 3: " in p.stderr and needle in p.stderr, p.stderr


def test_sft_rows_are_refused_for_dpo(case, build_dir, tmp_path):
    d, _, _ = case
    rows = tmp_path / "sft.jsonl"
    write_jsonl(rows, [{"input_ids": [1, 2, 3]}])
    job = _job(d, "lora", 1, "sft")
    job["train_file"] = str(rows)
    p, _ = _run(build_dir, job, tmp_path / "sft.json", check=False)
    assert p.returncode == 3
    assert "sft.jsonl line 1: " in p.stderr and "a dpo job reads" in p.stderr, p.stderr


@pytest.mark.parametrize("patch,needle", [
    ({"objective": "ppo"}, '"objective" must be "supervised" or "dpo" (got "ppo")'),
    ({"objective": "supervised", "hyperparameters": {"beta": 0.2}},
     '"beta" is a DPO hyperparameter'),
    ({"hyperparameters": {"label_smoothing": 0.7}},
     '"label_smoothing" must be between 0 and 0.5 (got 0.7)'),
    ({"hyperparameters": {"beta": 0}}, '"beta" must be between 1e-06 and 2 (got 0)'),
    ({"hyperparameters": {"packing": True}}, '"packing" does not go with DPO'),
])
def test_dpo_job_errors(case, build_dir, tmp_path, patch, needle):
    d, _, _ = case
    job = _job(d, "lora", 1, "err")
    for k, v in patch.items():
        if k == "hyperparameters":
            job[k].update(v)
        else:
            job[k] = v
    p, _ = _run(build_dir, job, tmp_path / "e.json", check=False)
    assert p.returncode == 3 and needle in p.stderr, p.stderr


def test_beta_auto_is_the_default(case, build_dir):
    # the API stores "auto" for hyperparameters the user left out; the
    # worker passes them on unchanged
    d, pairs, _ = case
    job = _job(d, "lora", 1, "auto", batch_size=4, gradient_accumulation_steps=1, beta="auto")
    job["init_adapter"] = str(d / "rand_adapter")
    _, lines = _run(build_dir, job, d / "auto.json")
    step1 = _steps(lines)[0]
    pm = _rand_peft(d)
    ref = ref_logps_of(pm, pairs[:4], adapters_off=True)
    with torch.no_grad():
        loss, theirs = dpo_loss(seq_logps(pm, collate(pairs[:4])), ref, 0.1, 0.0)
    assert abs(step1["train_loss"] - loss.item()) <= 1e-5
    assert_metrics(step1, theirs)


def test_lora_dpo_with_gradient_checkpointing_is_identical(case, build_dir):
    """The reference forward (adapters off) and the policy forward share the
    activation buffers; with every layer recomputed in backward the steps
    must still be bit-identical to the plain run."""
    d, _, _ = case
    _, a = _run(build_dir, _job(d, "lora", 6, "ck_plain"), d / "ck_plain.json")
    _, b = _run(build_dir, _job(d, "lora", 6, "ck_every", gradient_checkpointing=True),
                d / "ck_every.json")
    keys = ("train_loss", "rewards/margins", "rewards/chosen", "logps/rejected")
    sa = [[x[k] for k in keys] for x in _steps(a)]
    sb = [[x[k] for k in keys] for x in _steps(b)]
    assert len(sa) == 6 and sa == sb
