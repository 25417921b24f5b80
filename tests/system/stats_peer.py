"""Independent Python implementations of what eval/ (fteval) computes, for
tests/system/test_stats_peer.py: each function takes a fixture case (the same
dict ft-eval-stats reads) and returns the same fields from the Python peers
named in docs/evaluation.md (scipy, numpy, rouge-score, sacrebleu), or from the
written procedure replayed step by step (the bootstrap, the domain classifier).
Nothing here calls ftplat code.
"""
import math
import re
import unicodedata

import numpy as np
from scipy import optimize, special, stats
from scipy.sparse.csgraph import connected_components
from scipy.spatial import distance

M64 = (1 << 64) - 1


class Rng:
    """xoshiro256** seeded by splitmix64, below(n) by Lemire's rejection
    (the generator ft/stats.h specifies)."""

    def __init__(self, seed):
        x = seed & M64
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & M64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    def u64(self):
        s = self.s
        result = (self._rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def below(self, n):
        m = self.u64() * n
        if (m & M64) < n:
            t = ((1 << 64) - n) % n
            while (m & M64) < t:
                m = self.u64() * n
        return m >> 64

    def uniform(self):
        return (self.u64() >> 11) * 2.0 ** -53


# ---- A/B ---------------------------------------------------------------

SCORE_A = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}


def win_table(k, judgments):
    wins = np.zeros((k, k))  # FastChat's ptbl_win: 2 per win, 1 per tie each way
    n = np.zeros((k, k))
    for a, b, o in judgments:
        if o == "a":
            wins[a, b] += 2
        elif o == "b":
            wins[b, a] += 2
        else:
            wins[a, b] += 1
            wins[b, a] += 1
        n[a, b] += 1
        n[b, a] += 1
    return wins, n


def bt_exists(k, wins, n):
    """The MLE exists iff every arm has judgments and the 'scored against'
    graph is strongly connected (scipy's strongly connected components)."""
    if (n.sum(axis=1) == 0).any():
        return False
    ncomp, _ = connected_components(wins > 0, directed=True, connection="strong")
    return ncomp == 1


def bt_fit(k, judgments, scale=400.0, base=10.0, init=1000.0, anchor=-1, anchor_rating=0.0):
    """FastChat's compute_mle_elo without scikit-learn: rows (a, b) with
    X[a] = +ln(base), X[b] = -ln(base), Y = 1 weighted by ptbl_win[a, b] and
    Y = 0 weighted by ptbl_win[b, a]; the unregularised logistic loss, with the
    last coefficient held at 0, minimised by scipy.optimize (Newton-CG, which
    stops near 1e-8) and polished by five Newton steps (numpy.linalg.solve),
    then centred. Returns (theta in natural units, ratings) or None when the MLE
    does not exist."""
    wins, n = win_table(k, judgments)
    if not bt_exists(k, wins, n):
        return None
    rows, ys, ws = [], [], []
    L = math.log(base)
    for a in range(k):
        for b in range(k):
            if a == b or n[a, b] == 0:
                continue
            x = np.zeros(k)
            x[a], x[b] = L, -L
            rows += [x, x]
            ys += [1.0, 0.0]
            ws += [wins[a, b], wins[b, a]]
    X = np.array(rows)[:, : k - 1]
    y, w = np.array(ys), np.array(ws)

    def f(beta):
        z = X @ beta
        return np.sum(w * (np.logaddexp(0, z) - y * z))

    def g(beta):
        z = X @ beta
        return X.T @ (w * (special.expit(z) - y))

    def h(beta):
        p = special.expit(X @ beta)
        return X.T @ (X * (w * p * (1 - p))[:, None])

    res = optimize.minimize(f, np.zeros(k - 1), jac=g, hess=h, method="Newton-CG",
                            options={"xtol": 1e-14, "maxiter": 1000})
    x = res.x
    for _ in range(5):  # polish: Newton-CG stops at its tolerance, 1e-8 or so
        x = x - np.linalg.solve(h(x), g(x))
    beta = np.append(x, 0.0)
    beta -= beta.mean()
    theta = beta * L  # log-odds units
    rating = scale * beta + init
    if anchor >= 0:
        rating += anchor_rating - rating[anchor]
    return theta, rating


def ab(case):
    k, js = case["k"], case["judgments"]
    wins, n = win_table(k, js)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = (wins / 2) / n
        rate = (wins.sum(axis=1) / 2) / n.sum(axis=1)
    out = {"win_matrix": frac, "win_rate": rate}
    fit = bt_fit(k, js, anchor=case.get("anchor", -1), anchor_rating=case.get("anchor_rating", 0.0))
    if fit is None:
        out["bt_error"] = True
        return out
    theta, rating = fit
    out["theta"], out["rating"] = theta, rating
    out["win_prob"] = special.expit(theta[:, None] - theta[None, :])
    return out


def bootstrap(case):
    k, js, R = case["k"], case["judgments"], case["rounds"]
    rng = Rng(case["seed"])
    n = len(js)
    ratings, rates, probs = [[] for _ in range(k)], [[] for _ in range(k)], {}
    unbounded = 0
    for _ in range(R):
        sample = [js[rng.below(n)] for _ in range(n)]
        wins, cnt = win_table(k, sample)
        for i in range(k):
            if cnt[i].sum() > 0:
                rates[i].append(wins[i].sum() / 2 / cnt[i].sum())
        fit = bt_fit(k, sample, anchor=case.get("anchor", -1), anchor_rating=case.get("anchor_rating", 0.0))
        if fit is None:
            unbounded += 1
            continue
        theta, rating = fit
        for i in range(k):
            ratings[i].append(rating[i])
            for j in range(k):
                probs.setdefault((i, j), []).append(special.expit(theta[i] - theta[j]))

    def iv(v):
        if not v:
            return {"lo": None, "median": None, "hi": None, "rounds": 0}
        q = np.quantile(np.array(v), [0.025, 0.5, 0.975])
        return {"lo": q[0], "median": q[1], "hi": q[2], "rounds": len(v)}

    return {"rating": [iv(ratings[i]) for i in range(k)], "win_rate": [iv(rates[i]) for i in range(k)],
            "win_prob": [[iv(probs.get((i, j), [])) for j in range(k)] for i in range(k)],
            "unbounded_rounds": unbounded}


def decision(case):
    k, n, alpha, power = case["k"], case["n"], case.get("alpha", 0.05), case.get("power", 0.8)
    out = {}
    if float(k).is_integer():  # scipy's binomtest takes integer counts
        ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
        out["wilson"] = [ci.low, ci.high]
    p = k / n
    if p in (0.0, 0.5, 1.0):
        out["needed_total"] = out["needed_more"] = math.inf
    else:
        za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
        total = ((za * 0.5 + zb * math.sqrt(p * (1 - p))) / (p - 0.5)) ** 2
        out["needed_total"] = total
        out["needed_more"] = max(0.0, math.ceil(total) - n)
    a = 12.0
    ll = special.betaln(k + a, n - k + a) - special.betaln(a, a) + n * math.log(2)
    out["log_lambda"] = ll
    out["log_threshold"] = -math.log(alpha)
    out["decided"] = bool(ll >= -math.log(alpha))
    return out


def rng(case):
    r = Rng(case["seed"])
    draws = [r.below(case["below"]) for _ in range(case["n"])]
    return {"draws": draws, "uniform": Rng(case["seed"]).uniform()}


# ---- drift -------------------------------------------------------------

def special_fns(case):
    x = np.array(case["x"])
    return {"norm_cdf": stats.norm.cdf(x), "norm_ppf": stats.norm.ppf(x),
            "chi2_sf": stats.chi2.sf(x, case.get("dof", 1)),
            "kolmogorov_sf": stats.kstwo.sf(x, case.get("n", 1))}


def ks(case):
    r = stats.ks_2samp(case["x"], case["y"], method="auto")
    exact = max(len(case["x"]), len(case["y"])) <= 10000
    return {"statistic": r.statistic, "pvalue": r.pvalue, "exact_attempted": exact}


def shares_with_epsilon(c):
    """Evidently's get_binned_data(feel_zeroes=True) rule for empty bins."""
    p = np.asarray(c, dtype=float) / np.sum(c)
    m = p[p != 0].min()
    np.place(p, p == 0, m / 10**6 if m <= 0.0001 else 0.0001)
    return p


def psi_from_counts(r, c):
    r, c = shares_with_epsilon(r), shares_with_epsilon(c)
    return float(np.sum((r - c) * np.log(r / c)))


def numeric(case):
    ref, cur, bins = np.array(case["ref"]), np.array(case["cur"]), case.get("bins", 10)
    edges = np.unique(np.quantile(ref, np.arange(1, bins) / bins))
    rc = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    cc = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    psi = psi_from_counts(rc, cc)
    band = "stable" if psi < 0.1 else "moderate" if psi < 0.25 else "significant"
    return {"edges": edges, "ref_counts": rc, "cur_counts": cc, "psi": psi, "band": band,
            "js": distance.jensenshannon(rc, cc), "wasserstein": stats.wasserstein_distance(ref, cur)}


def counts(case):
    r, c = np.array(case["ref_counts"], float), np.array(case["cur_counts"], float)
    keep = (r + c) > 0
    chi = stats.chi2_contingency(np.vstack([r[keep], c[keep]]), correction=False)
    return {"psi": psi_from_counts(r, c), "js": distance.jensenshannon(r, c),
            "chi2": chi.statistic, "chi2_p": chi.pvalue, "dof": chi.dof}


def mann_whitney(case):
    pos, neg = np.array(case["pos"]), np.array(case["neg"])
    r = stats.mannwhitneyu(pos, neg, method="asymptotic")
    return {"auc": r.statistic / (len(pos) * len(neg)), "pvalue": r.pvalue}


def embedding(case):
    ref, cur = np.array(case["ref"]), np.array(case["cur"])
    seed, share = case["seed"], case.get("test_share", 0.5)
    C, B, alpha = case.get("c", 1.0), case.get("permutations", 999), case.get("alpha", 0.001)
    rng = Rng(seed)

    def split(n):
        idx = list(range(n))
        for i in range(n - 1, 0, -1):
            j = rng.below(i + 1)
            idx[i], idx[j] = idx[j], idx[i]
        t = min(max(math.floor(share * n + 0.5), 1), n - 1)
        return idx[:t], idx[t:]

    te0, tr0 = split(len(ref))
    te1, tr1 = split(len(cur))
    Xtr = np.vstack([ref[tr0], cur[tr1]])
    ytr = np.r_[np.zeros(len(tr0)), np.ones(len(tr1))]
    lam = 1.0 / (C * len(ytr))
    A = np.hstack([Xtr, np.ones((len(ytr), 1))])

    def f(wb):
        z = A @ wb
        return np.mean(np.logaddexp(0, z) - ytr * z) + 0.5 * lam * wb[:-1] @ wb[:-1]

    def g(wb):
        z = A @ wb
        gr = A.T @ (special.expit(z) - ytr) / len(ytr)
        gr[:-1] += lam * wb[:-1]
        return gr

    res = optimize.minimize(f, np.zeros(A.shape[1]), jac=g, method="BFGS", options={"gtol": 1e-12})
    wb = res.x
    s0 = np.hstack([ref[te0], np.ones((len(te0), 1))]) @ wb
    s1 = np.hstack([cur[te1], np.ones((len(te1), 1))]) @ wb
    auc = stats.mannwhitneyu(s1, s0).statistic / (len(s0) * len(s1))
    scores = np.r_[s0, s1]
    T, t1 = len(scores), len(s1)
    perm = []
    for _ in range(B):
        idx = list(range(T))
        for i in range(t1):
            j = i + rng.below(T - i)
            idx[i], idx[j] = idx[j], idx[i]
        pos = np.zeros(T, bool)
        pos[idx[:t1]] = True
        perm.append(stats.mannwhitneyu(scores[pos], scores[~pos]).statistic / (t1 * (T - t1)))
    perm = np.array(perm)
    return {"cosine": distance.cosine(ref.mean(axis=0), cur.mean(axis=0)), "auc": auc,
            "threshold": np.quantile(perm, 1 - alpha), "pvalue": (1 + np.sum(perm >= auc)) / (B + 1),
            "weights": wb[:-1], "intercept": wb[-1], "n_train": len(ytr), "n_test": T}


# ---- text --------------------------------------------------------------

CJK_RE = re.compile("[a-z0-9]+|[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
                    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]")


class CjkTokenizer:
    """The CJK rule of ft/textmetrics.h, written with Python's re, for
    rouge_scorer.RougeScorer(tokenizer=...)."""

    def tokenize(self, text):
        text = "".join(chr(ord(ch) - 0xFEE0) if 0xFF01 <= ord(ch) <= 0xFF5E else ch for ch in text)
        return CJK_RE.findall(text.lower())


def rouge_l(case):
    from rouge_score import rouge_scorer, tokenize
    tok = case.get("tokenizer", "default")
    if tok == "cjk":
        sc = rouge_scorer.RougeScorer(["rougeL"], tokenizer=CjkTokenizer())
        toks = CjkTokenizer().tokenize
    else:
        sc = rouge_scorer.RougeScorer(["rougeL"])
        toks = lambda s: tokenize.tokenize(s, None)  # noqa: E731
    s = sc.score(case["target"], case["prediction"])["rougeL"]
    return {"precision": s.precision, "recall": s.recall, "fmeasure": s.fmeasure,
            "target_tokens": " ".join(toks(case["target"])),
            "prediction_tokens": " ".join(toks(case["prediction"]))}


def bleu(case):
    import sacrebleu
    b = sacrebleu.BLEU(tokenize=case.get("tokenizer", "13a"))
    s = b.corpus_score(case["hyps"], case["refs"])
    return {"score": s.score, "bp": s.bp, "precisions": s.precisions, "counts": s.counts,
            "totals": s.totals, "sys_len": s.sys_len, "ref_len": s.ref_len,
            "hyp_tokens": [b.tokenizer(h.rstrip()) for h in case["hyps"]]}


def fold(s):
    """NFKC (fullwidth forms), lower case, whitespace runs to one space: the
    same as the C folding on the characters the fixtures use."""
    s = unicodedata.normalize("NFKC", s).lower()
    return " ".join(s.split())


def facts(case):
    a = fold(case["answer"])
    found = []
    for spellings in case["facts"]:
        hit = False
        for sp in spellings:
            f = fold(sp)
            lb = r"(?<![0-9A-Za-z])" if re.match(r"[0-9A-Za-z]", f) else ""
            rb = r"(?![0-9A-Za-z])" if re.search(r"[0-9A-Za-z]$", f) else ""
            hit = hit or re.search(lb + re.escape(f) + rb, a) is not None
        found.append(hit)
    return {"found": found, "all": all(found), "folded": a}


PEERS = {"ab": ab, "bootstrap": bootstrap, "decision": decision, "rng": rng, "special": special_fns,
         "ks_2samp": ks, "numeric": numeric, "counts": counts, "mann_whitney": mann_whitney,
         "embedding": embedding, "rouge_l": rouge_l, "bleu": bleu, "facts": facts}
