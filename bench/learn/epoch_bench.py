#!/usr/bin/env python3
"""One training epoch of weight-space models: weightspace (burn, CPU) vs the reference PyTorch code.

Issue #7, deliverable 6. Run by hand (never in tests/CI):

    /work/venv/bin/python bench/learn/epoch_bench.py \
        --weightspace target/debug/weightspace --ng-repo PATH/neural-graphs --work /tmp/lbench

What it does, back to back in one process so both sides see the same machine load:

1. makes the 1,000-model zoo of bench/learn/zoo-1k.toml (MLPs 64-32-32-10 on digits) with
   `weightspace zoo train` and exports it with `weightspace zoo export --npz` (skipped when WORK
   already holds them);
2. for each model, times `weightspace learn train --zoo DIR --model M --epochs 1 ...` (wall and
   CPU time of the child process, and `train_seconds` from its JSON when it prints one);
3. times one epoch of the reference PyTorch implementation of the same model, same size, on the
   same 1,000 networks' weights, loaded from the npz:
   * nfn-np / nfn-hnp: `AllanYangZhou/nfn` (pip-installed package `nfn`, commit ce78322):
     `InvariantNFN` as in `experiments/models.py` — `depth` x (NPLinear(io_embed)/HNPLinear
     -> ReLU), then `MlpHead` (HNPPool -> Linear-ReLU-Linear-ReLU-Linear, h_size = 1000, the
     reference default, as weightspace's NFN head since 2026-12-07);
   * ng-gnn: `mkofinas/neural-graphs` (checkout given by --ng-repo, commit 1f2b671; needs
     torch_geometric, hydra-core, random-fourier-features-pytorch): `nn.gnn.GNNForClassification`
     with `nn.graph_constructor.GraphConstructor` and the `nn.gnn.PNA` backbone configured as in
     `experiments/inr_classification/configs/model/pna.yaml` except d_hid = hidden,
     num_layers = depth and sin_emb = False (weightspace projects the raw weights linearly);
   with the split of the weightspace learner (70/15/15 % of the models: one epoch is the training
   steps over 700 networks in mini-batches of 64 plus a forward pass over the 150 validation
   networks), Adam (lr 1e-3), MSE on the standardised test accuracy, per-tensor standardisation
   of the input weights, torch.set_num_threads(THREADS);
4. prints the table (model, weightspace s/epoch, reference s/epoch, ratio) and writes it as JSON.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
LAYOUT = [64, 32, 32, 10]  # the zoo's MLP: n_in, hidden..., n_out


def sh(cmd, env=None):
    """Runs a command; returns (stdout, wall s, child CPU s)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}")
    return p.stdout, wall, cpu


def make_zoo(ws, work):
    zoo = os.path.join(work, "zoo-1k")
    npz = os.path.join(work, "zoo-1k.npz")
    if not os.path.exists(os.path.join(zoo, "catalog.parquet")):
        _, wall, cpu = sh([ws, "zoo", "train", os.path.join(HERE, "zoo-1k.toml"), "-o", zoo, "-q"])
        print(f"zoo train: {wall:.1f} s wall, {cpu:.1f} s CPU")
    if not os.path.exists(npz):
        sh([ws, "zoo", "export", zoo, "--npz", npz, "-q"])
    return zoo, npz


def time_weightspace(ws, zoo, model, args):
    out = os.path.join(args.work, f"ws-{model}")
    cmd = [ws, "learn", "train", "--zoo", zoo, "--model", model, "--epochs", "1",
           "--hidden", str(args.hidden), "--depth", str(args.depth),
           "--batch-size", str(args.batch), "--states", "last", "--seed", "0", "-o", out, "--json"] + args.ws_extra
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    stdout, wall, cpu = sh(cmd, env)
    train_s = None
    try:
        train_s = json.loads(stdout[stdout.index("{"):]).get("train_seconds")
    except (ValueError, AttributeError):
        pass
    return {"cmd": " ".join(cmd), "wall_s": wall, "cpu_s": cpu, "train_seconds": train_s}


# ---------------------------------------------------------------- reference side (PyTorch)

def load_zoo(npz, seed):
    """Weights [N, P] split into per-layer (W [N, out, in], b [N, out]), standardised per tensor on
    the training split; standardised test accuracy; train/val indices (70/15/15 % by model)."""
    d = np.load(npz, allow_pickle=False)
    flat = d["weights"].astype(np.float32)
    y = d["test_accuracy"].astype(np.float32)
    n = flat.shape[0]
    rng = np.random.default_rng(seed)
    ids = rng.permutation(n)
    n_test = n_val = round(0.15 * n)
    tr, va = ids[: n - n_test - n_val], ids[n - n_test - n_val: n - n_test]
    ws, bs, off = [], [], 0
    for i in range(len(LAYOUT) - 1):
        o, k = LAYOUT[i + 1], LAYOUT[i]
        w = flat[:, off: off + o * k].reshape(n, o, k)
        off += o * k
        b = flat[:, off: off + o]
        off += o
        w = (w - w[tr].mean()) / w[tr].std()
        b = (b - b[tr].mean()) / b[tr].std()
        ws.append(w)
        bs.append(b)
    assert off == flat.shape[1], (off, flat.shape)
    y = (y - y[tr].mean()) / y[tr].std()
    return ws, bs, y, tr, va


def nfn_model(hnp, hidden, depth):
    import torch
    from torch import nn
    from nfn.common import NetworkSpec, ArraySpec
    from nfn.layers import NPLinear, HNPLinear, HNPPool, TupleOp

    spec = NetworkSpec(
        weight_spec=[ArraySpec((LAYOUT[i + 1], LAYOUT[i])) for i in range(len(LAYOUT) - 1)],
        bias_spec=[ArraySpec((LAYOUT[i + 1],)) for i in range(len(LAYOUT) - 1)],
    )
    layers, c = [], 1
    for _ in range(depth):
        if hnp:
            layers.append(HNPLinear(spec, in_channels=c, out_channels=hidden))
        else:  # MODE2LAYER["NP-PosEmb"], the predict-generalisation setting
            layers.append(NPLinear(spec, in_channels=c, out_channels=hidden, io_embed=True))
        layers.append(TupleOp(nn.ReLU()))
        c = hidden
    # MlpHead(pool_mode="HNP", h_size=1000 (its default), no dropout / layer norm / sigmoid)
    n_pool = c * HNPPool.get_num_outs(spec)
    h_size = 1000
    layers += [HNPPool(spec), nn.Flatten(start_dim=-2), nn.Linear(n_pool, h_size), nn.ReLU(),
               nn.Linear(h_size, h_size), nn.ReLU(), nn.Linear(h_size, 1)]
    net = nn.Sequential(*layers)

    def make(ws, bs, idx):
        from nfn.common import WeightSpaceFeatures
        return WeightSpaceFeatures([torch.from_numpy(w[idx]).unsqueeze(1) for w in ws],
                                   [torch.from_numpy(b[idx]).unsqueeze(1) for b in bs])
    return net, make


def ng_model(ng_repo, hidden, depth):
    import torch
    sys.path.insert(0, ng_repo)
    try:
        import torch_geometric.utils.trim_to_layer  # noqa: F401
    except ImportError:
        # torch_geometric >= 2.5 dropped this module; neural-graphs imports `TrimToLayer` but only
        # calls it with `num_sampled_nodes_per_hop` (neighbour sampling), never used here.
        import types
        m = types.ModuleType("torch_geometric.utils.trim_to_layer")
        m.TrimToLayer = type("TrimToLayer", (torch.nn.Module,), {})
        sys.modules[m.__name__] = m
    from nn.gnn import GNNForClassification

    gc = {"_target_": "nn.graph_constructor.GraphConstructor", "_recursive_": False,
          "_convert_": "all", "d_in": 1, "d_edge_in": 1, "zero_out_bias": False,
          "zero_out_weights": False, "sin_emb": False, "sin_emb_dim": 128,
          "use_pos_embed": True, "input_layers": 1, "inp_factor": 3, "num_probe_features": 0,
          "inr_model": None, "stats": None}
    backbone = {"_target_": "nn.gnn.PNA", "_convert_": "all", "in_channels": hidden,
                "hidden_channels": hidden, "out_channels": hidden, "num_layers": depth,
                "aggregators": ["mean", "min", "max", "std"],
                "scalers": ["identity", "amplification"], "edge_dim": hidden, "dropout": 0.0,
                "norm": "layernorm", "act": "silu", "deg": None, "update_edge_attr": True,
                "modulate_edges": True, "gating_edges": False, "final_edge_update": False}
    net = GNNForClassification(d_hid=hidden, d_out=1, graph_constructor=gc,
                               gnn_backbone=backbone, layer_layout=LAYOUT,
                               rev_edge_features=False, pooling_method="cat",
                               pooling_layer_idx="last")

    def make(ws, bs, idx):
        # neural-graphs' convention: weights [B, n_in, n_out, 1], biases [B, n_out, 1]
        return (tuple(torch.from_numpy(w[idx]).transpose(1, 2).unsqueeze(-1) for w in ws),
                tuple(torch.from_numpy(b[idx]).unsqueeze(-1) for b in bs))
    return net, make


def time_reference(model, data, args):
    import torch
    torch.manual_seed(0)
    ws, bs, y, tr, va = data
    if model.startswith("nfn"):
        net, make = nfn_model(model == "nfn-hnp", args.hidden, args.depth)
    else:
        net, make = ng_model(args.ng_repo, args.hidden, args.depth)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    yt = torch.from_numpy(y)
    rng = np.random.default_rng(1)

    def epoch():
        net.train()
        order = rng.permutation(tr)
        for s in range(0, len(order), args.batch):
            idx = order[s: s + args.batch]
            out = net(make(ws, bs, idx))
            loss = ((out[:, 0] - yt[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            for s in range(0, len(va), 256):
                net(make(ws, bs, va[s: s + 256]))

    epoch()  # warm-up (first-call allocations, torch_geometric's lazy set-up), not timed
    times = []
    for _ in range(args.repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        epoch()
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    wall = sorted(t[0] for t in times)[len(times) // 2]
    cpu = sorted(t[1] for t in times)[len(times) // 2]
    n_params = sum(p.numel() for p in net.parameters())
    return {"wall_s": wall, "cpu_s": cpu, "all_wall_s": [t[0] for t in times], "params": n_params}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weightspace", default="target/debug/weightspace")
    ap.add_argument("--zoo-bin", default=None,
                    help="binary for zoo train/export (default: --weightspace)")
    ap.add_argument("--ng-repo", required=True, help="checkout of mkofinas/neural-graphs")
    ap.add_argument("--work", default="/tmp/lbench")
    ap.add_argument("--models", default="nfn-np,nfn-hnp,ng-gnn")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="timed reference epochs (median)")
    ap.add_argument("--skip-ws", action="store_true", help="reference side only")
    ap.add_argument("--ws-extra", nargs=argparse.REMAINDER, default=[],
                    help="extra arguments for `weightspace learn train` (last on the line)")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    zoo, npz = make_zoo(args.zoo_bin or args.weightspace, args.work)
    data = load_zoo(npz, 0)
    print(f"load average before: {os.getloadavg()}")
    rows = []
    for m in args.models.split(","):
        ws = None if args.skip_ws else time_weightspace(args.weightspace, zoo, m, args)
        ref = time_reference(m, data, args)
        rows.append({"model": m, "weightspace": ws, "reference": ref,
                     "load": os.getloadavg()[0]})
        w = ws["wall_s"] if ws else float("nan")
        print(f"{m}: ws {w:.2f} s wall, ref {ref['wall_s']:.2f} s wall, {ref['cpu_s']:.2f} s CPU", flush=True)
    print()
    print(f"{'model':9} {'ws s/epoch':>11} {'ws train_s':>11} {'ws CPU s':>9} "
          f"{'ref s/epoch':>12} {'ref CPU s':>10} {'ws/ref':>7} {'load':>5}")
    for r in rows:
        ws, ref = r["weightspace"] or {}, r["reference"]
        w = ws.get("wall_s", float("nan"))
        ts = ws.get("train_seconds")
        print(f"{r['model']:9} {w:11.2f} {ts if ts is not None else float('nan'):11.2f} "
              f"{ws.get('cpu_s', float('nan')):9.2f} {ref['wall_s']:12.2f} "
              f"{ref['cpu_s']:10.2f} {(ts or w) / ref['wall_s']:7.2f} {r['load']:5.1f}")
    with open(os.path.join(args.work, "epoch_bench.json"), "w") as f:
        json.dump({"args": vars(args), "rows": rows, "torch": torch.__version__}, f, indent=1)


if __name__ == "__main__":
    main()
