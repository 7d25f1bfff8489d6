/* nb_torch.cpp: PyTorch's CPU normalization layers (libtorch, ATen) as a
 * normbench plug-in (include/normbench_plugin.h; docs/DESIGN.md section
 * 9.6). Each kernel wraps the caller's buffers in tensors without copying
 * (at::from_blob with the problem's strides, so an NHWC problem is a
 * channels_last tensor and ATen takes its channels_last path), calls the
 * ATen entry that also returns the statistics (native_layer_norm,
 * native_group_norm, native_batch_norm) and copies the results into the
 * output buffers. RMSNorm is composed from tensor ops as users write it
 * (torch 1.13 has none). PyTorch's intra-op threads are set to the
 * problem's thread count. Forward, f32 and f64.
 *
 * Statistics: mean and rstd as the ATen entry returns them (rstd is its
 * saved invstd); no entry returns var, so these kernels declare
 * NBP_KF_NO_VAR and normbench checks mean and rstd only. RMSNorm: mean 0,
 * var the mean of squares and rstd as the composed ops compute them. */
#include <normbench_plugin.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/version.h> /* TORCH_VERSION (torch/csrc/api/include) */

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

/* One entry for every kernel: user names the layer's function. */
using layer_fn = int (*)(const nbp_problem *, const nbp_buffers *);

int run(const nbp_problem *p, const nbp_buffers *b, void *user)
{
    if (p->direction != NBP_FWD)
        return NBP_UNSUPPORTED;
    try {
        set_threads(p);
        return reinterpret_cast<layer_fn>(user)(p, b);
    } catch (const std::exception &) {
        return 2; /* an error: ATen refused the problem */
    }
}

constexpr uint32_t modes_norm = NBP_MODE_BATCH_STATS | NBP_MODE_AFFINE | NBP_MODE_PLAIN;

nbp_kernel kernel(const char *algo, int32_t layer, uint32_t layouts, uint32_t modes, layer_fn f,
                  uint32_t flags = NBP_KF_NO_VAR | NBP_KF_THREADED)
{
    nbp_kernel k{};
    k.algo = algo;
    k.isa = "native";
    k.layer = layer;
    k.directions = NBP_DIR_FWD;
    k.dtypes = NBP_DTYPE_F32 | NBP_DTYPE_F64;
    k.layouts = layouts;
    k.modes = modes;
    k.reduction = NBP_RED_UNKNOWN;
    k.flags = flags;
    k.run = run;
    k.user = reinterpret_cast<void *>(f);
    return k;
}

const nbp_kernel kernels[] = {
    kernel("aten", NBP_LAYERNORM, NBP_LAYOUT_NCHW, modes_norm | NBP_MODE_NO_BETA, layer_norm),
    kernel("aten", NBP_GROUPNORM, NBP_LAYOUT_NCHW, modes_norm, group_norm),
    kernel("aten_cl", NBP_GROUPNORM, NBP_LAYOUT_NHWC, modes_norm, group_norm),
    kernel("aten", NBP_BATCHNORM, NBP_LAYOUT_NCHW,
           modes_norm | NBP_MODE_RUNNING_STATS | NBP_MODE_RUNNING_UPDATE, batch_norm),
    kernel("aten_cl", NBP_BATCHNORM, NBP_LAYOUT_NHWC,
           modes_norm | NBP_MODE_RUNNING_STATS | NBP_MODE_RUNNING_UPDATE, batch_norm),
    kernel("aten", NBP_INSTANCENORM, NBP_LAYOUT_NCHW, modes_norm, instance_norm),
    kernel("composed", NBP_RMSNORM, NBP_LAYOUT_NCHW, modes_norm, rms_norm, NBP_KF_THREADED),
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
