#!/usr/bin/env python3
"""Makes the spectral-metrics fixture and its golden values.

Writes, beside this script:
  spectral_fixture.safetensors  fixed f32 matrices (numpy seed 2024)
  spectral_golden.json          per layer: the reference values of three implementations
    "numpy"         a line-by-line numpy/scipy/sklearn transcription of WeightWatcher 0.7.7's
                    definitions (WWFit, mp_fit with fit_density_with_range, norm metrics)
    "powerlaw"      powerlaw.Fit(evals[evals > 1e-5]) (alpha, xmin, D), 2-D layers
    "weightwatcher" weightwatcher.WeightWatcher(model).analyze(mp_fit=True) on a torch model
                    holding the same weights (when weightwatcher is importable)

Run with a Python that has numpy, scipy, scikit-learn, powerlaw, safetensors (and optionally
torch + weightwatcher), e.g.:  python3 -m venv /tmp/ww && /tmp/ww/bin/pip install numpy scipy \
scikit-learn powerlaw safetensors torch weightwatcher && /tmp/ww/bin/python spectral_golden.py
"""
import json
import os

import numpy as np
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(2024)


def make_layers():
    L = {}
    L["gauss"] = rng.standard_normal((200, 100))
    L["heavy"] = rng.standard_t(3, size=(300, 150)) * 0.1
    u = rng.standard_normal((128, 3))
    v = rng.standard_normal((3, 64))
    L["spiked"] = rng.standard_normal((128, 64)) * 0.05 + u @ v * 0.2
    L["square"] = rng.standard_normal((96, 96)) * 0.02
    L["wide"] = rng.standard_t(4, size=(50, 180))
    L["small"] = rng.standard_t(2.5, size=(40, 12))
    L["conv"] = rng.standard_t(3, size=(16, 8, 3, 3)) * 0.3
    return {k: v.astype(np.float32) for k, v in L.items()}


# ---- numpy transcription of WeightWatcher 0.7.7 -------------------------------------------
EVALS_THRESH = 1e-5


def esd(w):
    w = w.astype(np.float64)
    if w.ndim == 4:
        mats = [w[:, :, i, j] * np.sqrt(0.5) for i in range(w.shape[2]) for j in range(w.shape[3])]
    else:
        mats = [w]
    ev = []
    for m in mats:
        sv = np.linalg.svd(m, compute_uv=False)
        ev.extend(sv * sv)
    return np.sort(np.array(ev))


def wwfit(evals):
    data = np.sort(evals[evals > EVALS_THRESH])
    N = len(data)
    log_data = np.log(data)
    alphas = np.zeros(N - 1)
    Ds = np.ones(N - 1)
    if N < 20:
        Js = np.full(N - 1, np.inf)
        for i, xmin in enumerate(data[:-1]):
            n_int = N - i
            if n_int < 8:
                continue
            n = float(n_int)
            s = np.sum(log_data[i:]) - n * log_data[i]
            if s <= 1e-12:
                continue
            a = 1.0 + (n - 1.0) / s
            alphas[i] = a
            if a <= 1.0:
                continue
            F = 1.0 - (data[i:] / xmin) ** (1.0 - a)
            D = float(np.max(np.abs(np.arange(n_int) / n - F)))
            Ds[i] = D
            Js[i] = D - 0.868 / np.sqrt(n)
        i = int(np.nanargmin(Js))
    else:
        for i, xmin in enumerate(data[:-1]):
            n = float(N - i)
            a = 1 + n / (np.sum(log_data[i:]) - n * log_data[i])
            alphas[i] = a
            if a > 1:
                Ds[i] = np.max(np.abs(1 - (data[i:] / xmin) ** (-a + 1) - np.arange(n) / n))
        i = int(np.argmin(Ds))
    sigmas = (alphas - 1) / np.sqrt(N - np.arange(N - 1))
    return dict(alpha=alphas[i], xmin=data[i], D=Ds[i], sigma=sigmas[i],
                num_pl_spikes=int(np.sum(evals >= data[i])))


def mp_fit(evals, N, M):
    from scipy import optimize
    from sklearn.neighbors import KernelDensity

    Q = N / M
    Wscale2 = len(evals) / np.sum(evals)
    to_plot = evals * Wscale2
    lambda_max = np.max(to_plot)
    sigma0 = np.sqrt(lambda_max / np.square(1 + 1 / np.sqrt(Q)))
    to_fit = np.sqrt(to_plot) if Q == 1 else to_plot
    bw = 0.1

    def resid(p, ev):
        sigma = p[0] if np.ndim(p) else p
        kde = KernelDensity(kernel="linear", bandwidth=bw).fit(ev.reshape(-1, 1))
        xde = np.linspace(0, np.max(ev) + 0.5, 1000)
        yde = np.exp(kde.score_samples(xde[:, None]))
        good = np.where(yde > 0.01)[0]
        bad = np.where(yde <= 0.01)[0]
        xde, yde = xde[good], yde[good]
        with np.errstate(all="ignore"):
            if Q == 1:
                ymp = np.nan_to_num((1 / (np.pi * sigma * sigma)) * np.sqrt(4 - xde ** 2))
                r = ymp - yde
            else:
                b = (sigma * (1 + np.sqrt(1 / Q))) ** 2
                a = (sigma * (1 - np.sqrt(1 / Q))) ** 2
                ymp = np.nan_to_num((1 / (2 * np.pi * sigma * sigma * xde * (1 / Q))) * np.sqrt((b - xde) * (xde - a)))
                peak = xde[np.where(yde == max(yde))][0]
                if (b < peak) | (b > max(xde)) | (a > peak):
                    r = np.zeros(len(yde)) + 1000
                else:
                    r = ymp - yde
        r = np.concatenate((r, np.zeros(len(bad))))
        return np.sum(r ** 2)

    rng_ = (slice(0.05 * sigma0, 2.0 * sigma0, 0.01 * sigma0),)
    out = optimize.brute(resid, rng_, args=(to_fit,), full_output=True)
    s1 = float(out[0][0])
    bulk_max = (s1 * (1 + 1 / np.sqrt(Q))) ** 2
    TW = 1 / np.sqrt(Q) * np.power(bulk_max, 2 / 3) * np.power(M, -2 / 3)
    num_spikes = int(np.sum(to_plot > bulk_max + np.sqrt(TW)))
    return dict(sigma_mp=s1, bulk_max=bulk_max / Wscale2, num_spikes=num_spikes,
                mp_softrank=bulk_max / lambda_max)


def reference(w):
    ev = esd(w)
    if w.ndim == 4:
        n, m = max(w.shape[:2]), min(w.shape[:2])
    else:
        n, m = max(w.shape), min(w.shape)
    fit = wwfit(ev)
    norm = float(np.sum(ev))
    lmax = float(np.max(ev))
    out = dict(num_evals=len(ev), lambda_max=lmax, log_norm=np.log10(norm),
               log_spectral_norm=np.log10(lmax), stable_rank=norm / lmax, **fit)
    out["alpha_weighted"] = out["alpha"] * np.log10(lmax)
    out["log_alpha_norm"] = np.log10(np.sum(ev ** out["alpha"]))
    out.update(mp_fit(ev, n, m))
    return {k: (float(v) if not isinstance(v, int) else v) for k, v in out.items()}, ev


def main():
    layers = make_layers()
    save_file(layers, os.path.join(HERE, "spectral_fixture.safetensors"))
    golden = {"numpy": {}, "powerlaw": {}, "weightwatcher": {}}
    for name, w in layers.items():
        ref, ev = reference(w)
        golden["numpy"][name] = ref
        if w.ndim == 2:
            import powerlaw
            f = powerlaw.Fit(ev[ev > EVALS_THRESH], verbose=False)
            golden["powerlaw"][name] = dict(alpha=float(f.alpha), xmin=float(f.xmin), D=float(f.D))
    try:
        import torch
        import weightwatcher as ww
    except ImportError as e:  # optional
        print("weightwatcher not available:", e)
    else:
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                for name, w in layers.items():
                    t = torch.from_numpy(w.copy())
                    if w.ndim == 2:
                        mod = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
                    else:
                        mod = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], bias=False)
                    mod.weight.data = t
                    setattr(self, name, mod)

        net = Net()
        details = ww.WeightWatcher(model=net).analyze(mp_fit=True, randomize=False, vectors=False)
        for _, row in details.iterrows():
            name = row["name"]
            golden["weightwatcher"][name] = {
                k: float(row[k]) for k in ["alpha", "xmin", "D", "lambda_max", "log_norm",
                                           "log_spectral_norm", "alpha_weighted", "stable_rank",
                                           "mp_softrank", "num_spikes", "num_evals", "num_pl_spikes"]
                if k in row}
        golden["weightwatcher_version"] = ww.__version__
    with open(os.path.join(HERE, "spectral_golden.json"), "w") as f:
        json.dump(golden, f, indent=1, sort_keys=True)
    print(json.dumps(golden, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
