/* nb_torch.cpp: PyTorch's CPU normalization layers (libtorch, ATen) as a
 * normbench plug-in (include/normbench_plugin.h; docs/DESIGN.md section
 * 9.6). Each kernel wraps the caller's buffers in tensors without copying
 * (at::from_blob with the problem's strides, so an NHWC problem is a
 * channels_last tensor and ATen takes its channels_last path), calls the
 * ATen entry that also returns the statistics (native_layer_norm,
 * native_group_norm, native_batch_norm) and copies the results into the
 * output buffers. RMSNorm is composed from tensor ops as users write it
 * (torch 1.13 has none). PyTorch's intra-op threads are set to the
 * problem's thread count. Forward, f32 and f64; backward (dx, dgamma,
 * dbeta from the saved mean and rstd) through the matching
 * native_*_backward entries for LayerNorm, GroupNorm (NCHW), BatchNorm
 * (training; inference with the running statistics, whose variance
 * normbench passes as the saved var) and InstanceNorm, and through
 * PyTorch's autograd where a user's gradient comes from it: the composed
 * RMSNorm and channels_last GroupNorm (at::group_norm, as F.group_norm;
 * in 1.13 that is the NCHW backward entry on contiguous copies, with the
 * channels_last forward's own statistics: see group_norm_cl_bwd).
 *
 * Statistics: mean and rstd as the ATen entry returns them (rstd is its
 * saved invstd); no entry returns var, so these kernels declare
 * NBP_KF_NO_VAR and normbench checks mean and rstd only. RMSNorm: mean 0,
 * var the mean of squares and rstd as the composed ops compute them. */
#include <normbench_plugin.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/version.h> /* TORCH_VERSION (torch/csrc/api/include) */

#include <array>
#include <cstdint>
#include <exception>
#include <vector>

namespace
{

at::ScalarType scalar_type(const nbp_problem *p)
{
    return p->dtype == NBP_F64 ? at::kDouble : at::kFloat;
}

/* The problem's logical sizes (n, c, spatial...) and element strides. */
std::vector<int64_t> sizes_of(const nbp_problem *p)
{
    std::vector<int64_t> s{p->n, p->c};
    for (int i = 0; i < p->spatial_rank; i++)
        s.push_back(p->spatial[i]);
    return s;
}

std::vector<int64_t> strides_of(const nbp_problem *p)
{
    return std::vector<int64_t>(p->x_strides, p->x_strides + 2 + p->spatial_rank);
}

/* A tensor over a caller's buffer: the whole of x's shape, or a vector of
 * count values; undefined for NULL. */
at::Tensor over(const void *buf, const nbp_problem *p)
{
    return at::from_blob(const_cast<void *>(buf), sizes_of(p), strides_of(p),
                         at::TensorOptions().dtype(scalar_type(p)));
}

at::Tensor vec(const void *buf, int64_t count, const nbp_problem *p)
{
    if (!buf)
        return at::Tensor();
    return at::from_blob(const_cast<void *>(buf), {count},
                         at::TensorOptions().dtype(scalar_type(p)));
}

void set_threads(const nbp_problem *p)
{
    const int want = p->threads > 0 ? p->threads : 1;
    if (at::get_num_threads() != want)
        at::set_num_threads(want);
}

/* y into the caller's buffer, in the problem's layout. */
void put_y(const at::Tensor &y, const nbp_problem *p, const nbp_buffers *b)
{
    over(b->y, p).copy_(y);
}

/* mean, rstd (and var, when asked for) into the caller's buffers, when
 * given: stat_count values each. */
void put_stats(const at::Tensor &mean, const at::Tensor &var, const at::Tensor &rstd,
               const nbp_problem *p, const nbp_buffers *b)
{
    if (!b->mean || !b->rstd)
        return;
    vec(b->mean, p->stat_count, p).copy_(mean.reshape({-1}));
    vec(b->rstd, p->stat_count, p).copy_(rstd.reshape({-1}));
    if (b->var)
        vec(b->var, p->stat_count, p).copy_(var.reshape({-1}));
}

bool has_beta(const nbp_problem *p)
{
    return (p->modes & NBP_MODE_AFFINE) && !(p->modes & NBP_MODE_NO_BETA);
}

/* ---- the layers ------------------------------------------------------------------ */

int layer_norm(const nbp_problem *p, const nbp_buffers *b)
{
    const at::Tensor x = over(b->x, p);
    const bool affine = p->modes & NBP_MODE_AFFINE;
    const at::Tensor g = affine ? vec(b->gamma, p->c, p) : at::Tensor();
    const at::Tensor bt = has_beta(p) ? vec(b->beta, p->c, p) : at::Tensor();
    auto r = at::native_layer_norm(x, {p->c}, g, bt, p->eps);
    put_y(std::get<0>(r), p, b);
    put_stats(std::get<1>(r), at::Tensor(), std::get<2>(r), p, b);
    return NBP_OK;
}

int group_norm(const nbp_problem *p, const nbp_buffers *b)
{
    const at::Tensor x = over(b->x, p);
    const bool affine = p->modes & NBP_MODE_AFFINE;
    const at::Tensor g = affine ? vec(b->gamma, p->c, p) : at::Tensor();
    const at::Tensor bt = affine ? vec(b->beta, p->c, p) : at::Tensor();
    const int64_t hxw = p->numel / (p->n * p->c);
    auto r = at::native_group_norm(x, g, bt, p->n, p->c, hxw, p->groups, p->eps);
    put_y(std::get<0>(r), p, b);
    put_stats(std::get<1>(r), at::Tensor(), std::get<2>(r), p, b);
    return NBP_OK;
}

/* BatchNorm (training or inference), and InstanceNorm as PyTorch computes
 * it: BatchNorm over (1, N C, spatial) with gamma and beta repeated per
 * sample. */
int batch_norm_on(const at::Tensor &x, const at::Tensor &g, const at::Tensor &bt,
                  const nbp_problem *p, const nbp_buffers *b, bool instance)
{
    const bool training = p->modes & NBP_MODE_BATCH_STATS;
    const bool running =
        !instance && (p->modes & (NBP_MODE_RUNNING_STATS | NBP_MODE_RUNNING_UPDATE));
    const at::Tensor rm = running ? vec(b->running_mean, p->param_count, p) : at::Tensor();
    const at::Tensor rv = running ? vec(b->running_var, p->param_count, p) : at::Tensor();
    auto r = at::native_batch_norm(x, g, bt, rm, rv, training, p->momentum, p->eps);
    const at::Tensor y = std::get<0>(r);
    put_y(instance ? y.reshape(sizes_of(p)) : y, p, b);
    if (training) {
        put_stats(std::get<1>(r), at::Tensor(), std::get<2>(r), p, b);
    } else if (running) {
        /* inference: the statistics used are the running ones, rstd as
         * PyTorch forms it, 1 / sqrt(running_var + eps) */
        put_stats(rm, rv, at::rsqrt(rv + p->eps), p, b);
    }
    return NBP_OK;
}

int batch_norm(const nbp_problem *p, const nbp_buffers *b)
{
    const bool affine = p->modes & NBP_MODE_AFFINE;
    const at::Tensor g = affine ? vec(b->gamma, p->c, p) : at::Tensor();
    const at::Tensor bt = affine ? vec(b->beta, p->c, p) : at::Tensor();
    return batch_norm_on(over(b->x, p), g, bt, p, b, false);
}

int instance_norm(const nbp_problem *p, const nbp_buffers *b)
{
    if (p->modes & (NBP_MODE_RUNNING_STATS | NBP_MODE_RUNNING_UPDATE))
        return NBP_UNSUPPORTED;
    std::vector<int64_t> s = sizes_of(p);
    s[1] = p->n * p->c;
    s[0] = 1;
    const at::Tensor x = over(b->x, p).contiguous().reshape(s);
    const bool affine = p->modes & NBP_MODE_AFFINE;
    const at::Tensor g = affine ? vec(b->gamma, p->c, p).repeat({p->n}) : at::Tensor();
    const at::Tensor bt = affine ? vec(b->beta, p->c, p).repeat({p->n}) : at::Tensor();
    return batch_norm_on(x, g, bt, p, b, true);
}

/* RMSNorm as users compose it: x * rsqrt(mean(x^2) + eps) * weight. */
int rms_norm(const nbp_problem *p, const nbp_buffers *b)
{
    const at::Tensor x = over(b->x, p);
    const at::Tensor ms = x.pow(2).mean({-1}, true);
    const at::Tensor r = at::rsqrt(ms + p->eps);
    at::Tensor y = x * r;
    if (p->modes & NBP_MODE_AFFINE)
        y = y * vec(b->gamma, p->c, p);
    put_y(y, p, b);
    put_stats(at::zeros_like(ms), ms, r, p, b);
    return NBP_OK;
}

/* ---- backward ------------------------------------------------------------------ */

/* The gradients ATen returned into dx, dgamma, dbeta (those asked for). */
void put_grads(const std::tuple<at::Tensor, at::Tensor, at::Tensor> &g, const nbp_problem *p,
               const nbp_buffers *b)
{
    over(b->dx, p).copy_(std::get<0>(g));
    if (b->dgamma)
        vec(b->dgamma, p->param_count, p).copy_(std::get<1>(g).reshape({-1}));
    if (b->dbeta)
        vec(b->dbeta, p->param_count, p).copy_(std::get<2>(g).reshape({-1}));
}

std::array<bool, 3> grads_wanted(const nbp_buffers *b)
{
    return {true, b->dgamma != nullptr, b->dbeta != nullptr};
}

at::Tensor weight_of(const nbp_problem *p, const nbp_buffers *b)
{
    return (p->modes & NBP_MODE_AFFINE) ? vec(b->gamma, p->c, p) : at::Tensor();
}

int layer_norm_bwd(const nbp_problem *p, const nbp_buffers *b)
{
    const at::Tensor w = weight_of(p, b);
    const at::Tensor bias = has_beta(p) ? at::zeros_like(w) : at::Tensor();
    put_grads(at::native_layer_norm_backward(
                  over(b->dy, p), over(b->x, p), {p->c}, vec(b->mean, p->n, p).reshape({p->n, 1}),
                  vec(b->rstd, p->n, p).reshape({p->n, 1}), w, bias, grads_wanted(b)),
              p, b);
    return NBP_OK;
}

int group_norm_bwd(const nbp_problem *p, const nbp_buffers *b)
{
    const int64_t hxw = p->numel / (p->n * p->c);
    put_grads(at::native_group_norm_backward(over(b->dy, p), over(b->x, p),
                                             vec(b->mean, p->stat_count, p),
                                             vec(b->rstd, p->stat_count, p), weight_of(p, b), p->n,
                                             p->c, hxw, p->groups, grads_wanted(b)),
              p, b);
    return NBP_OK;
}

/* BatchNorm inference: ATen's eval-mode backward (train = false) reads the
 * running_mean and running_var slots, forming invstd = 1 / sqrt(running_var
 * + eps) itself, as autograd calls it for a module in eval(); normbench
 * passes the running statistics as the saved mean and var. The save_mean
 * and save_invstd slots are read only in training: 1.13 given only those
 * with train = false dereferences the missing running_var (a segfault,
 * measured), so they stay undefined here. */
int batch_norm_infer_bwd(const nbp_problem *p, const nbp_buffers *b)
{
    if (!b->var)
        return NBP_UNSUPPORTED;
    put_grads(at::native_batch_norm_backward(
                  over(b->dy, p), over(b->x, p), weight_of(p, b), vec(b->mean, p->c, p),
                  vec(b->var, p->c, p), at::Tensor(), at::Tensor(), false, p->eps, grads_wanted(b)),
              p, b);
    return NBP_OK;
}

int batch_norm_bwd(const nbp_problem *p, const nbp_buffers *b)
{
    if (!(p->modes & NBP_MODE_BATCH_STATS))
        return batch_norm_infer_bwd(p, b);
    put_grads(at::native_batch_norm_backward(over(b->dy, p), over(b->x, p), weight_of(p, b),
                                             at::Tensor(), at::Tensor(), vec(b->mean, p->c, p),
                                             vec(b->rstd, p->c, p), true, p->eps, grads_wanted(b)),
              p, b);
    return NBP_OK;
}

/* InstanceNorm as PyTorch differentiates it: BatchNorm over (1, N C,
 * spatial), the per-sample parameter gradients summed over the batch. */
int instance_norm_bwd(const nbp_problem *p, const nbp_buffers *b)
{
    std::vector<int64_t> s = sizes_of(p);
    s[1] = p->n * p->c;
    s[0] = 1;
    const at::Tensor x = over(b->x, p).contiguous().reshape(s);
    const at::Tensor dy = over(b->dy, p).contiguous().reshape(s);
    const at::Tensor w =
        (p->modes & NBP_MODE_AFFINE) ? weight_of(p, b).repeat({p->n}) : at::Tensor();
    auto g = at::native_batch_norm_backward(
        dy, x, w, at::Tensor(), at::Tensor(), vec(b->mean, p->stat_count, p),
        vec(b->rstd, p->stat_count, p), true, p->eps, grads_wanted(b));
    over(b->dx, p).copy_(std::get<0>(g).reshape(sizes_of(p)));
    if (b->dgamma)
        vec(b->dgamma, p->c, p).copy_(std::get<1>(g).reshape({p->n, p->c}).sum(0));
    if (b->dbeta)
        vec(b->dbeta, p->c, p).copy_(std::get<2>(g).reshape({p->n, p->c}).sum(0));
    return NBP_OK;
}

/* A leaf for autograd: a copy of v (keeping its strides) that records the
 * gradient; undefined stays undefined. */
at::Tensor leaf(const at::Tensor &v)
{
    return v.defined() ? v.clone().requires_grad_(true) : v;
}

/* The gradient autograd left in t into buf (when both exist). */
void put_grad(const at::Tensor &t, void *buf, int64_t count, const nbp_problem *p)
{
    if (buf && t.defined() && t.grad().defined())
        vec(buf, count, p).copy_(t.grad().reshape({-1}));
}

/* RMSNorm's gradients as PyTorch's autograd gives them on the composition
 * the forward uses (it recomputes from x; the saved statistics unused). */
int rms_norm_bwd(const nbp_problem *p, const nbp_buffers *b)
{
    c10::AutoGradMode grad_mode(true);
    const at::Tensor x = leaf(over(b->x, p)), g = leaf(weight_of(p, b));
    at::Tensor y = x * at::rsqrt(x.pow(2).mean({-1}, true) + p->eps);
    if (g.defined())
        y = y * g;
    y.backward(over(b->dy, p));
    over(b->dx, p).copy_(x.grad());
    put_grad(g, b->dgamma, p->param_count, p);
    return NBP_OK;
}

/* channels_last GroupNorm's gradients as a user gets them: autograd
 * through at::group_norm (F.group_norm) on channels_last tensors. It runs
 * the forward again (normbench's saved mean and rstd are not used) and,
 * in 1.13, its backward node calls native_group_norm_backward on
 * contiguous (NCHW) copies of x and dy: the NCHW backward kernel fed the
 * channels_last forward's statistics (bitwise the same dx, measured), not a
 * channels_last backward kernel. So its error is that of those statistics
 * (the one-pass forward) carried into dx. */
int group_norm_cl_bwd(const nbp_problem *p, const nbp_buffers *b)
{
    c10::AutoGradMode grad_mode(true);
    const bool affine = p->modes & NBP_MODE_AFFINE;
    const at::Tensor x = leaf(over(b->x, p)), g = leaf(weight_of(p, b));
    const at::Tensor bt = affine ? leaf(at::zeros_like(vec(b->gamma, p->c, p))) : at::Tensor();
    const at::Tensor y = at::group_norm(x, p->groups, g, bt, p->eps, false);
    y.backward(over(b->dy, p));
    over(b->dx, p).copy_(x.grad());
    put_grad(g, b->dgamma, p->param_count, p);
    put_grad(bt, b->dbeta, p->param_count, p);
    return NBP_OK;
}

/* One entry for every kernel: user names the layer's forward and backward
 * functions (backward NULL: forward only). */
using layer_fn = int (*)(const nbp_problem *, const nbp_buffers *);
struct layer_fns {
    layer_fn fwd, bwd;
};

int run(const nbp_problem *p, const nbp_buffers *b, void *user)
{
    const layer_fns *f = static_cast<const layer_fns *>(user);
    const layer_fn fn = p->direction == NBP_FWD ? f->fwd : f->bwd;
    if (!fn)
        return NBP_UNSUPPORTED;
    try {
        set_threads(p);
        return fn(p, b);
    } catch (const std::exception &) {
        return 2; /* an error: ATen refused the problem */
    }
}

constexpr uint32_t modes_norm = NBP_MODE_BATCH_STATS | NBP_MODE_AFFINE | NBP_MODE_PLAIN;

const layer_fns ln_fns = {layer_norm, layer_norm_bwd}, gn_fns = {group_norm, group_norm_bwd},
                bn_fns = {batch_norm, batch_norm_bwd}, in_fns = {instance_norm, instance_norm_bwd},
                rms_fns = {rms_norm, rms_norm_bwd},
                /* channels_last GroupNorm: backward through autograd.
                 * ATen 1.13's native_group_norm_backward called directly on
                 * channels_last tensors reads them as NCHW: a wrong dx on
                 * any data (max |dx - exact| 4.42 where max |dx| is 3.06,
                 * gn:n2c8h5w5:g2 f32 and f64; docs/DESIGN.md 9.6), so it is
                 * not registered; autograd, what a user runs, converts to
                 * NCHW first (group_norm_cl_bwd) */
    gn_cl_fns = {group_norm, group_norm_cl_bwd};

nbp_kernel kernel(const char *algo, int32_t layer, uint32_t layouts, uint32_t modes,
                  const layer_fns &f, uint32_t flags = NBP_KF_NO_VAR | NBP_KF_THREADED)
{
    nbp_kernel k{};
    k.algo = algo;
    k.isa = "native";
    k.layer = layer;
    k.directions = f.bwd ? NBP_DIR_FWD | NBP_DIR_BWD | NBP_DIR_BWD_D : NBP_DIR_FWD;
    k.dtypes = NBP_DTYPE_F32 | NBP_DTYPE_F64;
    k.layouts = layouts;
    k.modes = modes;
    k.reduction = NBP_RED_UNKNOWN;
    k.flags = flags;
    k.run = run;
    k.user = const_cast<layer_fns *>(&f);
    return k;
}

const nbp_kernel kernels[] = {
    kernel("aten", NBP_LAYERNORM, NBP_LAYOUT_NCHW, modes_norm | NBP_MODE_NO_BETA, ln_fns),
    kernel("aten", NBP_GROUPNORM, NBP_LAYOUT_NCHW, modes_norm, gn_fns),
    kernel("aten_cl", NBP_GROUPNORM, NBP_LAYOUT_NHWC, modes_norm, gn_cl_fns),
    kernel("aten", NBP_BATCHNORM, NBP_LAYOUT_NCHW,
           modes_norm | NBP_MODE_RUNNING_STATS | NBP_MODE_RUNNING_UPDATE, bn_fns),
    kernel("aten_cl", NBP_BATCHNORM, NBP_LAYOUT_NHWC,
           modes_norm | NBP_MODE_RUNNING_STATS | NBP_MODE_RUNNING_UPDATE, bn_fns),
    kernel("aten", NBP_INSTANCENORM, NBP_LAYOUT_NCHW, modes_norm, in_fns),
    kernel("composed", NBP_RMSNORM, NBP_LAYOUT_NCHW, modes_norm, rms_fns, NBP_KF_THREADED),
};

/* On request only: some of PyTorch's semantics differ from normbench's on
 * edge data (eps = 0 on a constant channel, Inf in an RMSNorm row) and its
 * channels_last GroupNorm is unstable, so it joins a run when named
 * (--plugin, NORMBENCH_PLUGINS), not from the default plug-in directory. */
const nbp_plugin plugin = {NBP_ABI_VERSION,
                           "torch",
                           TORCH_VERSION,
                           kernels,
                           sizeof kernels / sizeof kernels[0],
                           sizeof(nbp_kernel),
                           NBP_PF_ON_REQUEST};

} // namespace

extern "C" const nbp_plugin *normbench_plugin_init(uint32_t host_abi)
{
    (void)host_abi;
    return &plugin;
}
