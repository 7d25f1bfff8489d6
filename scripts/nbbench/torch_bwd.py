"""torch_bwd.py KIND DIR PROBLEM: PyTorch CPU autograd gradients of one
backward problem, for scripts/check-pytorch.

Reads the inputs `normbench run` wrote for the problem into DIR (x.npy,
dy.npy, gamma.npy when affine) and writes PyTorch's gradients beside them:
torch_dx.npy, torch_dgamma.npy, torch_dbeta.npy (when the layer has the
parameter), and PyTorch's own saved statistics torch_mean.npy and
torch_rstd.npy where an ATen entry point returns them (native_layer_norm,
native_group_norm, native_batch_norm; RMSNorm: torch_rstd.npy only, r as the
composed module computes it), so `normbench check` can score the gradients against the
statistics PyTorch itself saved.

KIND: ln, rms, gn, bn (training), in. The problem's dtype (f32, f64) is
the computation dtype; a `nhwc` GroupNorm/BatchNorm problem runs PyTorch on a
channels_last tensor (its NHWC kernels), the arrays stay in the problem's
layout. Backward formulas are PyTorch's own (autograd of the functional
calls), nothing is recomputed here."""

import sys

import numpy as np
import torch


def main():
    kind, d, prob = sys.argv[1], sys.argv[2], sys.argv[3]
    toks = prob.split(":")
    dt = torch.float64 if "f64" in toks else torch.float32
    eps = float([t for t in toks if t.startswith("eps") and not t.startswith("eps=")][0][3:])
    nhwc = "nhwc" in toks

    def load(n):
        return torch.from_numpy(np.load("%s/%s.npy" % (d, n))).to(dt)

    def save(n, t):
        np.save("%s/%s.npy" % (d, n), t.detach().contiguous().numpy())

    x, dy = load("x"), load("dy")
    if nhwc:  # arrays are N, spatial..., C: PyTorch's logical N, C, spatial...
        perm = [0, x.dim() - 1] + list(range(1, x.dim() - 1))
        back = [0] + list(range(2, x.dim())) + [1]
        x = x.permute(perm).contiguous(memory_format=torch.channels_last)
        dy = dy.permute(perm).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    gamma = load("gamma").requires_grad_(True)
    beta = torch.zeros_like(gamma).requires_grad_(kind != "rms")
    stats = None
    if kind == "ln":
        y, mean, rstd = torch.native_layer_norm(x, [x.shape[-1]], gamma, beta, eps)
        stats = (mean.reshape(-1), rstd.reshape(-1))
    elif kind == "rms":
        r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
        y = x * r * gamma
        stats = (None, r.reshape(-1))
    elif kind == "gn":
        G = int([t for t in toks if t.startswith("g") and t[1:].isdigit()][0][1:])
        N, C = x.shape[0], x.shape[1]
        HxW = x.numel() // (N * C)
        y, mean, rstd = torch.native_group_norm(x, gamma, beta, N, C, HxW, G, eps)
        stats = (mean.reshape(-1), rstd.reshape(-1))
    elif kind == "bn":
        y, mean, invstd = torch.native_batch_norm(x, gamma, beta, None, None, True, 0.1, eps)
        stats = (mean, invstd)
    elif kind == "in":
        # what torch.instance_norm does: batch_norm over (1, N C, spatial)
        # with the weight repeated per sample; its saved statistics too
        N, C = x.shape[0], x.shape[1]
        xr = x.reshape((1, N * C) + tuple(x.shape[2:]))
        yr, mean, invstd = torch.native_batch_norm(xr, gamma.repeat(N), beta.repeat(N), None, None,
                                                   True, 0.1, eps)
        y = yr.reshape(x.shape)
        stats = (mean, invstd)
    else:
        sys.exit("torch_bwd: unknown kind %s" % kind)
    y.backward(dy)
    dx = x.grad
    if nhwc:
        dx = dx.permute(back)
    save("torch_dx", dx)
    save("torch_dgamma", gamma.grad)
    if kind != "rms":
        save("torch_dbeta", beta.grad)
    if stats is not None:
        if stats[0] is not None:
            save("torch_mean", stats[0])
        save("torch_rstd", stats[1])


if __name__ == "__main__":
    main()
