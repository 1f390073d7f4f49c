#!/usr/bin/env python3
"""Times `weightspace inspect` and `weightspace stats` against the Python path a user would take.

    bench/foundation/run.sh            # builds the release binary, then runs this script
    python bench/foundation/bench_inspect_stats.py --bin target/release/weightspace \
        --write BENCHMARKS.md

Needs numpy and safetensors (torch only for bf16 tensors, which numpy cannot hold).

What it does, in one run:

1. Makes a ~1 GB safetensors file in a temp folder, shaped like a real model: a 12-layer
   transformer (d=1280, vocab 32000; attention q/k/v/o, MLP up/down, two norms per layer, an
   embedding, a final norm and an LM head; 99 tensors), even layers and the embedding f32, odd
   layers and the head bf16. Values ~ N(0, 0.02²), norms ~1, 5 % exact zeros in some tensors.
   It is written tensor by tensor (never all in memory) and read back by `safe_open` to check
   it. A second file with the same 99 tensor names but tiny shapes (~1 MB) shows that
   `inspect` costs O(header), not O(file).
2. inspect: `weightspace inspect --json FILE` (a process) vs a `python -c` process that opens
   the file with `safetensors.safe_open` and lists every tensor's name, dtype and shape
   (`get_slice`, no data read), as a user's script would; also the same Python code timed
   inside this process (no interpreter start-up or imports), for transparency.
3. stats: `weightspace stats --json FILE` (a process, all cores) vs numpy in this process:
   every tensor loaded with `safe_open(framework="numpy")` (bf16 tensors with
   `framework="pt"` and `.float().numpy()`), then mean, std, min, quartiles (`np.quantile`),
   max, l2 (`np.linalg.norm`), mean |x|, sparsity, NaN and Inf counts, the statistics
   `weightspace stats` reports. The two results are compared as a sanity check.

Each measurement is repeated (weightspace and Python alternating) and the median reported.
The file is in the page cache for every run (it was just written), so this times compute,
not the disk. With `--write FILE`, the table replaces the part of FILE between the
`<!-- bench:foundation:begin -->` and `<!-- bench:foundation:end -->` markers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- bench:foundation:begin -->", "<!-- bench:foundation:end -->"

INSPECT_PY = """
import sys
from safetensors import safe_open
rows = []
with safe_open(sys.argv[1], framework="numpy") as f:
    meta = f.metadata()
    for k in f.keys():
        s = f.get_slice(k)
        rows.append((k, s.get_dtype(), s.get_shape()))
print(len(rows))
"""


def layout(d: int, layers: int, vocab: int) -> list[tuple[str, list[int], str]]:
    """(name, shape, dtype) of a transformer-like model, in file order."""
    t = [("model.embed_tokens.weight", [vocab, d], "F32")]
    for i in range(layers):
        dt = "F32" if i % 2 == 0 else "BF16"
        p = f"model.layers.{i}."
        t += [
            (p + "input_layernorm.weight", [d], dt),
            (p + "self_attn.q_proj.weight", [d, d], dt),
            (p + "self_attn.k_proj.weight", [d, d], dt),
            (p + "self_attn.v_proj.weight", [d, d], dt),
            (p + "self_attn.o_proj.weight", [d, d], dt),
            (p + "post_attention_layernorm.weight", [d], dt),
            (p + "mlp.up_proj.weight", [4 * d, d], dt),
            (p + "mlp.down_proj.weight", [d, 4 * d], dt),
        ]
    t += [("model.norm.weight", [d], "F32"), ("lm_head.weight", [vocab, d], "BF16")]
    return t


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """f32 -> bf16 bit patterns, round to nearest even (values here are finite)."""
    u = x.view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_model(path: Path, tensors: list[tuple[str, list[int], str]], seed: int) -> int:
    """Streams a safetensors file; returns its size."""
    header: dict = {"__metadata__": {"format": "pt", "made_by": "bench_inspect_stats.py"}}
    off = 0
    for name, shape, dt in tensors:
        n = int(np.prod(shape)) * (4 if dt == "F32" else 2)
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for i, (name, shape, dt) in enumerate(tensors):
            n = int(np.prod(shape))
            if "norm" in name:
                x = (1.0 + 0.1 * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)
            else:
                x = rng.standard_normal(n, dtype=np.float32)
                x *= np.float32(0.02)
                if i % 3 == 0:
                    x[rng.random(n) < 0.05] = 0.0
            f.write((x if dt == "F32" else to_bf16_bits(x)).tobytes())
    return path.stat().st_size


def python_inspect(path: Path) -> int:
    from safetensors import safe_open

    rows = []
    with safe_open(str(path), framework="numpy") as f:
        f.metadata()
        for k in f.keys():
            s = f.get_slice(k)
            rows.append((k, s.get_dtype(), s.get_shape()))
    return len(rows)


def numpy_stats(path: Path) -> list[dict]:
    from safetensors import safe_open

    out = []
    with safe_open(str(path), framework="numpy") as f, safe_open(str(path), framework="pt") as g:
        for k in f.keys():
            if f.get_slice(k).get_dtype() == "BF16":
                x = g.get_tensor(k).float().numpy()
            else:
                x = f.get_tensor(k)
            x = x.reshape(-1)
            q25, med, q75 = np.quantile(x, [0.25, 0.5, 0.75])
            out.append({
                "name": k,
                "count": x.size,
                "mean": float(np.mean(x)),
                "std": float(np.std(x)),
                "min": float(np.min(x)),
                "q25": float(q25),
                "median": float(med),
                "q75": float(q75),
                "max": float(np.max(x)),
                "l2": float(np.linalg.norm(x)),
                "abs_mean": float(np.mean(np.abs(x))),
                "sparsity": float(np.count_nonzero(x == 0) / x.size),
                "nan": int(np.count_nonzero(np.isnan(x))),
                "inf": int(np.count_nonzero(np.isinf(x))),
            })
    return out


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    r = fn()
    return time.perf_counter() - t0, r


def run_proc(argv: list[str]) -> bytes:
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if p.returncode != 0:
        sys.exit(f"{argv} failed ({p.returncode}): {p.stderr.decode()}")
    return p.stdout


def check_same(ours: list[dict], np_rows: list[dict]) -> float:
    """Largest relative difference over mean/std/quartiles/l2 (numpy sums in f32 here)."""
    by = {r["name"]: r for r in ours}
    worst = 0.0
    for r in np_rows:
        w = by[r["name"]]
        assert w["count"] == r["count"] and w["nan"] == r["nan"] and w["inf"] == r["inf"]
        assert w["min"] == r["min"] and w["max"] == r["max"], r["name"]
        assert w["sparsity"] == r["sparsity"], r["name"]
        for k in ["mean", "std", "q25", "median", "q75", "l2", "abs_mean"]:
            scale = max(abs(r[k]), r["std"], 1e-30)
            worst = max(worst, abs(w[k] - r[k]) / scale)
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=str(ROOT / "target/release/weightspace"))
    ap.add_argument("--inspect-repeats", type=int, default=15)
    ap.add_argument("--stats-repeats", type=int, default=5)
    ap.add_argument("--d", type=int, default=1280, help="model width (1280: ~1 GB)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", metavar="FILE", help="replace the marked section of FILE")
    ap.add_argument("--tmp", default=None, help="folder for the generated files")
    a = ap.parse_args()
    ws = a.bin
    cmdline = " ".join([Path(sys.executable).name, "bench/foundation/bench_inspect_stats.py"]
                       + sys.argv[1:])

    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
        big, small = Path(tmp) / "model.safetensors", Path(tmp) / "tiny.safetensors"
        t_gen, size = timed(lambda: write_model(big, layout(a.d, 12, 32000), a.seed))
        small_size = write_model(small, layout(16, 12, 200), a.seed)
        n_tensors = len(layout(a.d, 12, 32000))
        params = sum(int(np.prod(s)) for _, s, _ in layout(a.d, 12, 32000))
        print(f"made {big.name}: {size / 1e9:.3f} GB, {n_tensors} tensors, {params / 1e6:.0f}M "
              f"params in {t_gen:.1f} s; {small.name}: {small_size / 1e6:.2f} MB", flush=True)
        assert python_inspect(big) == n_tensors

        # inspect
        ws_inspect, ws_inspect_small, py_proc, py_inproc = [], [], [], []
        py_cmd = [sys.executable, "-c", INSPECT_PY, str(big)]
        run_proc([ws, "inspect", "--json", str(big)])  # warm-up
        run_proc(py_cmd)
        for _ in range(a.inspect_repeats):
            ws_inspect.append(timed(lambda: run_proc([ws, "inspect", "--json", str(big)]))[0])
            ws_inspect_small.append(
                timed(lambda: run_proc([ws, "inspect", "--json", str(small)]))[0])
            py_proc.append(timed(lambda: run_proc(py_cmd))[0])
            py_inproc.append(timed(lambda: python_inspect(big))[0])
        out = json.loads(run_proc([ws, "inspect", "--json", str(big)]))
        assert len(out["tensors"]) == n_tensors and out["total_params"] == params

        # stats
        ws_stats, np_stats = [], []
        ours = json.loads(run_proc([ws, "stats", "--json", str(big)]))["tensors"]  # warm-up
        np_rows = numpy_stats(big)
        worst = check_same(ours, np_rows)
        for _ in range(a.stats_repeats):
            ws_stats.append(timed(lambda: run_proc([ws, "--quiet", "stats", "--json", str(big)]))[0])
            np_stats.append(timed(lambda: numpy_stats(big))[0])
            print(f"  stats: weightspace {ws_stats[-1]:.2f} s, numpy {np_stats[-1]:.2f} s",
                  flush=True)

    med = statistics.median
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    import safetensors

    def ms(v: float) -> str:
        return f"{v * 1e3:.1f} ms"

    def t(v: float) -> str:
        return ms(v) if v < 1 else f"{v:.2f} s"

    rows = [
        ("inspect (whole command)", "`weightspace inspect --json`",
         "`python -c` + `safe_open`, list name/dtype/shape", med(ws_inspect), med(py_proc)),
        ("inspect (Python without start-up)", "`weightspace inspect --json`",
         "same `safe_open` loop timed in-process", med(ws_inspect), med(py_inproc)),
        ("stats", "`weightspace stats --json`",
         "`safe_open` + numpy, timed in-process", med(ws_stats), med(np_stats)),
    ]
    lines = [
        f"Run {date} with `{cmdline}` on {os.cpu_count()} cores ({cpu}), load average "
        f"{load} at the end (other jobs shared the machine); Python {platform.python_version()}, "
        f"numpy {np.__version__}, safetensors {safetensors.__version__}.",
        "",
        f"Input: a {size / 1e9:.2f} GB safetensors file ({size:,} bytes), {n_tensors} tensors, "
        f"{params / 1e6:.0f}M parameters, f32 and bf16, made by the script. Medians of "
        f"{a.inspect_repeats} (inspect) and {a.stats_repeats} (stats) runs.",
        "",
        "| task | weightspace | Python path | weightspace | Python | speed-up |",
        "|---|---|---|---:|---:|---:|",
    ]
    for task, w, p, tw, tp in rows:
        lines.append(f"| {task} | {w} | {p} | {t(tw)} | {t(tp)} | {tp / tw:.1f}× |")
    lines += [
        "",
        f"O(header): `weightspace inspect` took {ms(med(ws_inspect))} on the {size / 1e9:.2f} GB "
        f"file and {ms(med(ws_inspect_small))} on a {small_size / 1e6:.2f} MB file with the same "
        f"{n_tensors} tensor names (ratio {med(ws_inspect) / med(ws_inspect_small):.2f}).",
        f"Sanity check: both stats agree (largest relative difference in mean/std/quartiles/l2/"
        f"abs_mean {worst:.1e}; min, max, sparsity and counts identical; numpy sums in f32).",
    ]
    table = "\n".join(lines)
    print("\n" + table)
    if a.write:
        p = Path(a.write)
        text = p.read_text() if p.exists() else f"{BEGIN}\n{END}\n"
        i, j = text.index(BEGIN) + len(BEGIN), text.index(END)
        p.write_text(text[:i] + "\n" + table + "\n" + text[j:])
        print(f"\nwrote {p}")


if __name__ == "__main__":
    main()
