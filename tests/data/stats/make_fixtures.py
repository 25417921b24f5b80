#!/usr/bin/env python3
"""Writes the shared fixtures of the statistics peer test (ab.json, drift.json,
text.json beside this file). Deterministic: numpy's PCG64 with fixed seeds and
values rounded to 4 decimals, so re-running reproduces the files byte for byte
(tests/system/test_stats_peer.py checks that). Each file is a list of cases
{"name", "op", <arguments>} that eval/ft-eval-stats reads; the peer test runs
the same arguments through the Python libraries.

    python3 tests/data/stats/make_fixtures.py
"""
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def r4(a):
    return [round(float(x), 4) for x in a]


def judgments(rng, k, n, p_win, p_tie=0.0, pairs=None):
    """n judgments; arm i beats arm j with the Bradley-Terry strengths p_win."""
    out = []
    pairs = pairs or [(i, j) for i in range(k) for j in range(k) if i != j]
    for _ in range(n):
        a, b = pairs[rng.integers(len(pairs))]
        u = rng.random()
        pa = p_win[a] / (p_win[a] + p_win[b]) * (1 - p_tie)
        if u < p_tie:
            o = "tie" if rng.random() < 0.7 else "both_bad"
        elif u < p_tie + pa:
            o = "a"
        else:
            o = "b"
        out.append([int(a), int(b), o])
    return out


def ab_cases():
    rng = np.random.default_rng(17)
    c = []
    c.append({"name": "bt_two_arms", "op": "ab", "k": 2,
              "judgments": judgments(rng, 2, 60, [1.5, 1.0], 0.2)})
    c.append({"name": "bt_three_arms_ties", "op": "ab", "k": 3,
              "judgments": judgments(rng, 3, 150, [2.0, 1.0, 1.3], 0.25)})
    c.append({"name": "bt_four_arms_anchor", "op": "ab", "k": 4, "anchor": 0, "anchor_rating": 1114,
              "judgments": judgments(rng, 4, 400, [1.0, 1.8, 0.7, 1.2], 0.1)})
    c.append({"name": "bt_lopsided", "op": "ab", "k": 3,
              "judgments": judgments(rng, 3, 80, [20.0, 1.0, 0.2], 0.0)})
    c.append({"name": "bt_unbounded", "op": "ab", "k": 3,
              "judgments": [[0, 1, "a"], [1, 0, "b"], [1, 2, "tie"], [2, 1, "a"], [0, 2, "a"]]})
    c.append({"name": "bootstrap_two_arms", "op": "bootstrap", "k": 2, "seed": 20260101, "rounds": 300,
              "judgments": judgments(rng, 2, 120, [1.5, 1.0], 0.15)})
    c.append({"name": "bootstrap_three_arms_sparse", "op": "bootstrap", "k": 3, "seed": 7, "rounds": 200,
              "judgments": judgments(rng, 3, 24, [3.0, 1.0, 0.5], 0.1)})
    c.append({"name": "bootstrap_anchor", "op": "bootstrap", "k": 3, "seed": 99, "rounds": 200,
              "anchor": 1, "anchor_rating": 1000,
              "judgments": judgments(rng, 3, 90, [1.2, 1.0, 0.8], 0.2)})
    for k, n, alpha, power in [(62, 100, 0.05, 0.8), (130, 200, 0.05, 0.9), (17, 20, 0.01, 0.8),
                               (0, 12, 0.05, 0.8), (40, 40, 0.05, 0.8), (501, 1000, 0.05, 0.8),
                               (57.5, 100, 0.05, 0.8)]:
        c.append({"name": f"decision_{k}_of_{n}", "op": "decision", "k": k, "n": n,
                  "alpha": alpha, "power": power})
    c.append({"name": "rng_small", "op": "rng", "seed": 0, "n": 50, "below": 7})
    c.append({"name": "rng_large", "op": "rng", "seed": 12345678901, "n": 50,
              "below": 6148914691236517206})
    return c


def drift_cases():
    rng = np.random.default_rng(42)
    c = []
    # Kolmogorov-Smirnov: continuous, tied (token lengths), equal sizes, shifted
    for name, x, y in [
        ("ks_small_unequal", rng.normal(0, 1, 37), rng.normal(0.3, 1, 52)),
        ("ks_equal_sizes", rng.normal(0, 1, 80), rng.normal(0.5, 1, 80)),
        ("ks_ties_lengths", rng.poisson(40, 300), rng.poisson(43, 250)),
        ("ks_identical", np.arange(10.0), np.arange(10.0)),
        ("ks_one_each", np.array([1.0]), np.array([2.0])),
        ("ks_disjoint", rng.normal(0, 1, 30), rng.normal(10, 1, 45)),
        ("ks_medium", rng.lognormal(3, 0.5, 900), rng.lognormal(3.05, 0.5, 700)),
    ]:
        c.append({"name": name, "op": "ks_2samp", "x": r4(x), "y": r4(y)})
    # PSI / JS / Wasserstein on reference quantile bins
    ref = rng.lognormal(4, 0.6, 1000)
    for name, cur, bins in [
        ("numeric_same", rng.lognormal(4, 0.6, 300), 10),
        ("numeric_shift", rng.lognormal(4.3, 0.6, 300), 10),
        ("numeric_wider", rng.lognormal(4, 0.9, 500), 20),
        ("numeric_out_of_range", rng.lognormal(6, 0.2, 100), 10),
    ]:
        c.append({"name": name, "op": "numeric", "ref": r4(ref), "cur": r4(cur), "bins": bins})
    lengths = rng.poisson(12, 800).astype(float)
    c.append({"name": "numeric_integer_ties", "op": "numeric", "ref": r4(lengths),
              "cur": r4(rng.poisson(14, 200)), "bins": 10})
    # categorical mixes (languages): one category empty on both sides, one new
    for name, r, k in [
        ("counts_language_same", [700, 250, 50, 0], [140, 48, 12, 0]),
        ("counts_language_shift", [700, 250, 50, 0], [100, 90, 10, 0]),
        ("counts_new_category", [700, 250, 50, 0], [150, 30, 10, 10]),
        ("counts_two", [55, 45], [40, 60]),
    ]:
        c.append({"name": name, "op": "counts", "ref_counts": r, "cur_counts": k})
    c.append({"name": "mw_continuous", "op": "mann_whitney", "neg": r4(rng.normal(0, 1, 60)),
              "pos": r4(rng.normal(0.4, 1, 45))})
    c.append({"name": "mw_ties", "op": "mann_whitney", "neg": r4(rng.integers(0, 5, 40)),
              "pos": r4(rng.integers(1, 6, 35))})
    # embeddings: two topics' centroids, a shift toward a third
    d = 8
    cen = rng.normal(0, 1, (3, d))
    def emb(n, mix):
        t = rng.choice(3, size=n, p=mix)
        return (cen[t] + rng.normal(0, 1, (n, d))).round(4).tolist()
    base = emb(120, [0.5, 0.5, 0.0])
    c.append({"name": "embedding_same", "op": "embedding", "ref": base, "cur": emb(80, [0.5, 0.5, 0.0]),
              "seed": 3, "permutations": 199, "alpha": 0.05})
    c.append({"name": "embedding_topic_shift", "op": "embedding", "ref": base,
              "cur": emb(80, [0.3, 0.3, 0.4]), "seed": 4, "permutations": 199, "alpha": 0.05,
              "c": 0.5, "test_share": 0.4})
    c.append({"name": "special", "op": "special", "x": [1e-12, 0.001, 0.025, 0.2, 0.5, 0.77, 0.975, 0.999999],
              "dof": 3, "n": 10})
    return c


def text_cases():
    c = []
    rouge = [
        ("rouge_en", "The cat sat on the mat.", "the cat is on a mat", "default"),
        ("rouge_punct_case", "Refunds: 30 days, NO questions asked!", "refunds within 30-days; no questions", "default"),
        ("rouge_empty_pred", "Thanks for asking.", "", "default"),
        ("rouge_only_punct", "!!!", "...", "default"),
        ("rouge_special_lower", "K\u212aelvin \u0130stanbul", "kkelvin i stanbul", "default"),
        ("rouge_zh_default", "您好，退货需在签收后30天内申请。", "您好，签收后30天内可以申请退货。", "default"),
        ("rouge_zh_cjk", "您好，退货需在签收后30天内申请。", "您好，签收后30天内可以申请退货。", "cjk"),
        ("rouge_mixed_cjk", "订单 #MP20261120-7339 的Slim-Fit Chinos可以退货", "Slim-Fit Chinos 订单可以退货吗", "cjk"),
        ("rouge_fullwidth_cjk", "ＡＢＣ１２３ 好", "abc123 好", "cjk"),
        ("rouge_kana_hangul", "ご注文ありがとう 감사합니다", "注文 감사", "cjk"),
    ]
    for name, t, p, tok in rouge:
        c.append({"name": name, "op": "rouge_l", "target": t, "prediction": p, "tokenizer": tok})
    hyps = [
        "Thanks for getting in touch! You can return unused items within 30 days.",
        "Standard shipping is free on orders of ¥99 or more.",
        "Please report it within 48 hours, with photos.",
        "It's 3.5-4.0 kg; price: $1,299.00 (incl. tax) &amp; free returns.",
        "He said \"no\" -- then left... 1-2-3 go!",
        "",
    ]
    refs1 = [
        "Thanks for getting in touch! Of course. You can return unused items with their tags within 30 days of delivery.",
        "Standard shipping is free on orders of ¥99 or more; otherwise the fee is ¥8.",
        "I'm so sorry! Please report it within 48 hours of delivery, with photos of the item.",
        "It is 3.5-4.0 kg; the price is $1,299.00 (incl. tax) & returns are free.",
        "He said &quot;no&quot; - then left ... 1-2-3 go !",
        "Nothing to say.",
    ]
    refs2 = [
        "You can return unused items within 30 days.",
        None,
        "Report damage within 48 hours with photos, please.",
        "3.5-4.0 kg, $1,299.00 incl. tax, free returns.",
        None,
        "",
    ]
    c.append({"name": "bleu_13a_one_ref", "op": "bleu", "hyps": hyps, "refs": [refs1], "tokenizer": "13a"})
    c.append({"name": "bleu_13a_two_refs", "op": "bleu", "hyps": hyps, "refs": [refs1, refs2],
              "tokenizer": "13a"})
    c.append({"name": "bleu_13a_no_match", "op": "bleu", "hyps": ["zzz qqq"], "refs": [["aaa bbb ccc"]],
              "tokenizer": "13a"})
    c.append({"name": "bleu_13a_short", "op": "bleu", "hyps": ["the cat"], "refs": [["the cat sat on the mat"]],
              "tokenizer": "13a"})
    c.append({"name": "bleu_13a_whitespace", "op": "bleu",
              "hyps": ["a\u3000b\u00a0c\u2003d  e-\nf <skipped> g\n"], "refs": [["a b c d e f g"]],
              "tokenizer": "13a"})
    zh_h = ["您好，退货需在签收后30天内申请。", "标准配送满¥99包邮，否则运费¥8。", "非常抱歉！请在签收后48小时内反馈——附上照片…",
            "订单#MP20261120-7339的Slim-Fit Chinos可以退。"]
    zh_r = ["您好！退货请在签收后30天内申请。", "订单满¥99免运费，不满则收取¥8运费。", "非常抱歉！请在签收后48小时内通过“我的订单”反馈，并附上照片。",
            "订单 #MP20261120-7339 中的 Slim-Fit Chinos 可以退货。"]
    c.append({"name": "bleu_zh", "op": "bleu", "hyps": zh_h, "refs": [zh_r], "tokenizer": "zh"})
    c.append({"name": "bleu_zh_mixed_symbols", "op": "bleu", "hyps": ["价格€20（含税）→ 好 \U00020000字"],
              "refs": [["价格 €20 （含税） → 好 \U00020000 字"]], "tokenizer": "zh"})
    facts = [
        ("facts_all", "Returns are accepted within ３０ Days of delivery; shipping is free over ¥99.",
         [["30 days", "thirty days"], ["¥99", "99 yuan"], ["delivery"]]),
        ("facts_boundary", "You have 130 days and it costs ¥999.",
         [["30 days"], ["¥99"], ["130 DAYS"]]),
        ("facts_zh", "您好！退货请在签收后３０天内申请，满￥99包邮。",
         [["30天", "三十天"], ["¥99"], ["48小时"]]),
        ("facts_case_greek_cyrillic", "ΑΒΓ and МОСКВА, Ünïcode  spaced   out",
         [["αβγ"], ["москва"], ["ünïcode spaced out"]]),
    ]
    for name, answer, f in facts:
        c.append({"name": name, "op": "facts", "answer": answer, "facts": f})
    return c


def main():
    for fname, cases in [("ab.json", ab_cases()), ("drift.json", drift_cases()), ("text.json", text_cases())]:
        # one case per line keeps diffs readable
        text = "[\n" + ",\n".join(json.dumps(x, ensure_ascii=False, separators=(",", ":")) for x in cases) + "\n]\n"
        (HERE / fname).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
