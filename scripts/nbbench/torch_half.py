"""torch_half.py KIND DIR PROBLEM: PyTorch CPU forward of one bf16/f16
problem, for scripts/check-pytorch.

Reads the inputs `normbench run` wrote for the problem into DIR (x.npy:
bf16 as '<u2' bits, f16 as '<f2'; gamma/beta in the problem's params type;
running_mean0/running_var0 f32) and writes PyTorch's output beside them as
torch_y.npy in the same storage convention (and torch_running_mean.npy,
torch_running_var.npy for BatchNorm training). Prints `unsupported: ...`
and exits 3 when PyTorch has no CPU kernel for the dtype.

KIND:
  ln, gn, bn, in   the nn.functional layer on the storage dtype (gamma/beta
                   converted to the type PyTorch requires for it); `nhwc`
                   GroupNorm/BatchNorm run on a channels_last tensor
  rms_llama        Hugging Face Llama's RMSNorm: x widened to f32, scaled by
                   rsqrt(mean(x^2) + eps), rounded to the storage type, then
                   multiplied by the storage-type weight (round=before_gamma)
  rms_once         x widened to f32, normalised and multiplied by the f32
                   weight, rounded once at the end (round=once; as vLLM)
  rms_naive        the composed ops run on the storage type throughout
                   (x.pow(2).mean(...), rsqrt, products each rounded)"""

import sys

import numpy as np
import torch


def main():
    kind, d, prob = sys.argv[1], sys.argv[2], sys.argv[3]
    toks = prob.split(":")
    bf16 = "bf16" in toks
    dt = torch.bfloat16 if bf16 else torch.float16
    eps = float([t for t in toks if t.startswith("eps") and not t.startswith("eps=")][0][3:])
    nhwc = "nhwc" in toks

    def load(n):
        a = np.load("%s/%s.npy" % (d, n))
        if a.dtype == np.uint16:  # bf16 bits
            return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
        return torch.from_numpy(a)

    def save(n, t):
        t = t.detach().contiguous()
        if t.dtype == torch.bfloat16:
            a = t.view(torch.int16).numpy().view(np.uint16)
        else:
            a = t.numpy()
        np.save("%s/%s.npy" % (d, n), a)

    x = load("x")
    if nhwc:  # arrays are N, spatial..., C: PyTorch's logical N, C, spatial...
        perm = [0, x.dim() - 1] + list(range(1, x.dim() - 1))
        x = x.permute(*perm).contiguous(memory_format=torch.channels_last)
    try:
        with torch.no_grad():
            y = forward(kind, x, load, save, dt, eps, toks)
    except RuntimeError as e:
        print("unsupported: %s" % str(e).splitlines()[0])
        sys.exit(3)
    if nhwc:
        inv = [0] + list(range(2, y.dim())) + [1]
        y = y.permute(*inv)
    save("torch_y", y)


def forward(kind, x, load, save, dt, eps, toks):
    F = torch.nn.functional
    if kind in ("ln", "gn", "in", "bn"):
        g, b = load("gamma").to(dt), load("beta").to(dt)
    if kind == "ln":
        return F.layer_norm(x, (x.shape[-1],), g, b, eps)
    if kind == "gn":
        G = int([t for t in toks if t.startswith("g") and t[1:].isdigit()][0][1:])
        return F.group_norm(x, G, g, b, eps)
    if kind == "in":
        return F.instance_norm(x, None, None, g, b, True, 0.1, eps)
    if kind == "bn":
        train = "train" in toks
        rm, rv = load("running_mean0").float(), load("running_var0").float()
        # BatchNorm takes f32 parameters and running statistics with a
        # bf16 input (mixed); give them as the problem states them
        y = F.batch_norm(x, rm, rv, load("gamma").float(), load("beta").float(), train, 0.1, eps)
        if train:
            save("torch_running_mean", rm)
            save("torch_running_var", rv)
        return y
    w = load("gamma")
    if kind == "rms_llama":
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
        return w.to(dt) * h.to(dt)
    if kind == "rms_once":
        h = x.float()
        return (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps) * w.float()).to(dt)
    if kind == "rms_naive":
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w.to(dt)
    raise SystemExit("unknown kind %s" % kind)


if __name__ == "__main__":
    main()
