/* problem.c: problem descriptions: defaults, derived sizes, consistency
 * checks, status strings, and the compact problem-string grammar
 * (`ln:rows64:cols256:eps1e-5:f32:data=offset1e4`), parsed and printed so
 * that parse(format(p)) == p. */
#include "nb_half.h"
#include "normbench.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_text[NB_STATUS_COUNT] = {
    [NB_OK] = "ok",
    [NB_ERR_NULL] = "a required buffer is NULL",
    [NB_ERR_SHAPE] = "a dimension is zero or negative",
    [NB_ERR_OVERFLOW] = "the shape's size overflows",
    [NB_ERR_GROUPS] = "groups must be positive and divide the channel count",
    [NB_ERR_SINGLE] = "expected more than 1 value per channel (or instance) when training",
    [NB_ERR_EPS] = "eps must be finite and non-negative",
    [NB_ERR_MOMENTUM] = "momentum must lie in [0, 1]",
    [NB_ERR_DTYPE] = "dtype not supported by this kernel",
    [NB_ERR_LAYER] = "problem layer does not match the kernel's layer",
    [NB_ERR_LAYOUT] = "layout not valid for this layer",
    [NB_ERR_UNAVAILABLE] = "this CPU lacks the kernel's instruction set",
    [NB_ERR_NOMEM] = "out of memory (or the problem needs more than half of this machine's memory)",
    [NB_ERR_PARSE] = "malformed problem string",
    [NB_ERR_MPFR] = "reference could not reach its precision target",
    [NB_ERR_IO] = "file could not be read or written",
    [NB_ERR_ARG] = "invalid argument",
    [NB_ERR_UNSUPPORTED] = "problem not supported by this kernel",
    [NB_ERR_DIRECTION] = "the kernel does not compute this direction (fwd, bwd, bwd_d)",
    [NB_ERR_KERNEL] = "the kernel reported an error, crashed or did not return",
    [NB_ERR_PLUGIN] = "a plug-in could not be loaded",
};

const char *nb_strerror(nb_status s)
{
    if ((unsigned)s >= NB_STATUS_COUNT)
        return "unknown status";
    return status_text[s];
}

static const char *const layer_short[NB_LAYER_COUNT] = {"bn", "in", "ln", "gn", "rms"};
static const char *const layer_long[NB_LAYER_COUNT] = {"batchnorm", "instancenorm", "layernorm",
                                                       "groupnorm", "rmsnorm"};
static const char *const dist_names[NB_DIST_COUNT] = {
    "normal", "offset", "sorted", "const", "alt", "tiny", "huge", "subnormal", "nan"};

static const char *const direction_names[NB_DIRECTION_COUNT] = {"fwd", "bwd", "bwd_d"};
static const char *const dy_names[NB_DY_COUNT] = {"normal", "const", "prop", "sparse", "offset"};
static const char *const act_names[NB_ACT_COUNT] = {"none", "relu", "silu"};

const char *nb_act_name(nb_act a)
{
    return (unsigned)a < NB_ACT_COUNT ? act_names[a] : "?";
}

const char *nb_direction_name(nb_direction d)
{
    return (unsigned)d < NB_DIRECTION_COUNT ? direction_names[d] : "?";
}
const char *nb_dy_dist_name(nb_dy_dist d)
{
    return (unsigned)d < NB_DY_COUNT ? dy_names[d] : "?";
}
const char *nb_layer_short(nb_layer l)
{
    return (unsigned)l < NB_LAYER_COUNT ? layer_short[l] : "?";
}
const char *nb_layer_name(nb_layer l)
{
    return (unsigned)l < NB_LAYER_COUNT ? layer_long[l] : "?";
}
const char *nb_dtype_name(nb_dtype t)
{
    static const char *const n[NB_DTYPE_COUNT] = {"f32", "f64", "bf16", "f16"};
    return (unsigned)t < NB_DTYPE_COUNT ? n[t] : "?";
}
const char *nb_dist_name(nb_dist d)
{
    return (unsigned)d < NB_DIST_COUNT ? dist_names[d] : "?";
}
size_t nb_dtype_size(nb_dtype t)
{
    return t == NB_F64 ? sizeof(double) : nb_dtype_is_half(t) ? sizeof(uint16_t) : sizeof(float);
}

bool nb_dtype_is_half(nb_dtype t)
{
    return t == NB_BF16 || t == NB_F16;
}

nb_dtype nb_problem_param_dtype(const nb_problem *p)
{
    if (nb_dtype_is_half(p->dtype) && p->params == NB_PARAMS_F32)
        return NB_F32;
    return p->dtype;
}

nb_dtype nb_problem_stat_dtype(const nb_problem *p)
{
    return nb_dtype_is_half(p->dtype) ? NB_F32 : p->dtype;
}

double nb_dtype_get(const void *buf, nb_dtype t, int64_t i)
{
    switch (t) {
    case NB_F64: return ((const double *)buf)[i];
    case NB_BF16: return (double)nb_bf16_to_f32(((const uint16_t *)buf)[i]);
    case NB_F16: return (double)nb_f16_to_f32(((const uint16_t *)buf)[i]);
    default: return (double)((const float *)buf)[i];
    }
}

void nb_dtype_put(void *buf, nb_dtype t, int64_t i, double v)
{
    switch (t) {
    case NB_F64: ((double *)buf)[i] = v; break;
    case NB_BF16: ((uint16_t *)buf)[i] = nb_f64_to_bf16(v); break;
    case NB_F16: ((uint16_t *)buf)[i] = nb_f64_to_f16(v); break;
    default: ((float *)buf)[i] = (float)v; break;
    }
}

double nb_dtype_max(nb_dtype t)
{
    switch (t) {
    case NB_F64: return 1.7976931348623157e308;
    case NB_BF16: return 0x1.fep127;
    case NB_F16: return 65504.0;
    default: return 3.4028234663852886e38;
    }
}

void nb_problem_defaults(nb_problem *p, nb_layer layer)
{
    memset(p, 0, sizeof *p);
    p->layer = layer;
    p->dtype = NB_F32;
    p->layout = NB_NCHW;
    p->groups = layer == NB_GN ? 1 : 0;
    p->eps = 1e-5;
    p->training = true;
    p->momentum = 0.1;
    p->num_batches_tracked = 1;
    p->affine = layer != NB_IN;
    p->has_beta = layer != NB_RMS;
    p->track_running = layer == NB_BN;
    p->dist = NB_DIST_NORMAL;
    p->dist_param = 0.0;
    p->seed = 1;
}

static bool is_rowwise(const nb_problem *p)
{
    return p->layer == NB_LN || p->layer == NB_RMS;
}

int64_t nb_problem_spatial(const nb_problem *p)
{
    int64_t s = 1;
    for (int i = 0; i < p->spatial_rank && i < NB_MAX_SPATIAL; i++)
        s *= p->spatial[i];
    return s;
}

int64_t nb_problem_numel(const nb_problem *p)
{
    return p->n * p->c * nb_problem_spatial(p);
}

int64_t nb_problem_stat_count(const nb_problem *p)
{
    switch (p->layer) {
    case NB_BN: return p->c;
    case NB_IN: return p->n * p->c;
    case NB_GN: return p->n * p->groups;
    default: return p->n;
    }
}

int64_t nb_problem_group_size(const nb_problem *p)
{
    int64_t s = nb_problem_spatial(p);
    switch (p->layer) {
    case NB_BN: return p->n * s;
    case NB_IN: return s;
    case NB_GN: return p->groups > 0 ? p->c / p->groups * s : 0;
    default: return p->c;
    }
}

int64_t nb_problem_param_count(const nb_problem *p)
{
    return p->c;
}

bool nb_problem_uses_beta(const nb_problem *p)
{
    return p->affine && p->has_beta && p->layer != NB_RMS;
}

bool nb_problem_has_running(const nb_problem *p)
{
    if (p->dir != NB_FWD)
        return false; /* a backward pass reads and updates no running statistics */
    return p->layer == NB_BN || (p->layer == NB_IN && p->track_running);
}

bool nb_problem_is_backward(const nb_problem *p)
{
    return p->dir != NB_FWD;
}

bool nb_problem_is_fused(const nb_problem *p)
{
    return p->add || p->act != NB_ACT_NONE;
}

bool nb_problem_has_param_grads(const nb_problem *p)
{
    return p->dir == NB_BWD && p->affine;
}

int64_t nb_problem_param_terms(const nb_problem *p)
{
    return p->c > 0 ? nb_problem_numel(p) / p->c : 0;
}

bool nb_problem_uses_batch_stats(const nb_problem *p)
{
    return !(p->layer == NB_BN && !p->training);
}

bool nb_problem_eps_exact(const nb_problem *p)
{
    if (p->dtype == NB_F64 || p->eps_conv == NB_EPS_F64)
        return true;
    return p->eps_conv == NB_EPS_LAYER && (p->layer == NB_BN || p->layer == NB_IN);
}

/* bf16/f16 statistics are f32: eps=dtype adds float32(eps), as for f32. */
double nb_problem_eps_added(const nb_problem *p)
{
    return nb_problem_eps_exact(p) ? p->eps : (double)(float)p->eps;
}

static nb_status fail(char *err, size_t len, nb_status s, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return s;
}

/* Largest element count we accept: byte sizes of every buffer must fit in
 * size_t and indices in int64_t with room for address arithmetic. */
#define NB_MAX_NUMEL (INT64_C(1) << 40)

static bool mul_ok(int64_t a, int64_t b, int64_t *out)
{
    if (a > 0 && b > NB_MAX_NUMEL / a)
        return false;
    *out = a * b;
    return true;
}

/* The direction and the dy distribution: known values, dy settings only on
 * a backward problem, and a finite dy parameter within half the dtype's
 * range. */
static nb_status direction_check(const nb_problem *p, char *err, size_t len)
{
    if ((unsigned)p->dir >= NB_DIRECTION_COUNT)
        return fail(err, len, NB_ERR_ARG, "unknown direction %d", (int)p->dir);
    if ((unsigned)p->dy_dist >= NB_DY_COUNT)
        return fail(err, len, NB_ERR_ARG, "unknown dy distribution %d", (int)p->dy_dist);
    if (p->dir == NB_FWD && (p->dy_dist != NB_DY_NORMAL || p->dy_param != 0))
        return fail(err, len, NB_ERR_ARG, "a dy distribution is set on a forward problem");
    const double dmax = nb_dtype_max(p->dtype);
    if (!isfinite(p->dy_param) || fabs(p->dy_param) > 0.5 * dmax)
        return fail(err, len, NB_ERR_ARG, "dy parameter %g is beyond half the %s range",
                    p->dy_param, nb_dtype_name(p->dtype));
    return NB_OK;
}

/* SyncBatchNorm: a bn training problem (fwd, bwd or bwd_d), 1..NB_MAX_RANKS ranks,
 * and an explicit split of one non-negative count per rank summing to n. */
static nb_status ranks_check(const nb_problem *p, char *err, size_t len)
{
    if (p->ranks == 0 && p->nsplit == 0)
        return NB_OK;
    if (p->ranks < 1 || p->ranks > NB_MAX_RANKS)
        return fail(err, len, NB_ERR_ARG, "ranks must lie in 1..%d, got %d", NB_MAX_RANKS,
                    p->ranks);
    if (p->layer != NB_BN || !p->training)
        return fail(err, len, NB_ERR_ARG, "ranks needs a bn training problem");
    if (p->nsplit == 0)
        return NB_OK;
    if (p->nsplit != p->ranks || p->nsplit > NB_MAX_SPLIT)
        return fail(err, len, NB_ERR_ARG, "split lists %d ranks, not %d", p->nsplit, p->ranks);
    int64_t sum = 0;
    for (int r = 0; r < p->nsplit; r++) {
        if (p->split[r] < 0 || p->split[r] > p->n)
            return fail(err, len, NB_ERR_ARG, "split count %" PRId64 " of rank %d is out of range",
                        p->split[r], r);
        sum += p->split[r];
    }
    if (sum != p->n)
        return fail(err, len, NB_ERR_ARG,
                    "split sums to %" PRId64 " samples, the batch has n%" PRId64, sum, p->n);
    return NB_OK;
}

void nb_problem_rank_slice(const nb_problem *p, int rank, int64_t *first, int64_t *count)
{
    if (p->ranks <= 1) {
        *first = 0;
        *count = rank == 0 ? p->n : 0;
        return;
    }
    int64_t f = 0;
    for (int r = 0; r < rank && r < p->ranks; r++)
        f += p->nsplit ? p->split[r] : p->n / p->ranks + (r < p->n % p->ranks);
    *first = f;
    *count = rank >= p->ranks ? 0
             : p->nsplit      ? p->split[rank]
                              : p->n / p->ranks + (rank < p->n % p->ranks);
}

/* The bf16/f16 settings: known values, set only on a bf16/f16 affine
 * forward problem (the defaults elsewhere). */
static nb_status half_check(const nb_problem *p, char *err, size_t len)
{
    if ((unsigned)p->params >= NB_PARAMS_COUNT || (unsigned)p->rounding >= NB_ROUND_COUNT)
        return fail(err, len, NB_ERR_ARG, "unknown params or rounding setting");
    const bool set = p->params != NB_PARAMS_F32 || p->rounding != NB_ROUND_ONCE;
    if (!set)
        return nb_dtype_is_half(p->dtype) && p->dir != NB_FWD
                   ? fail(err, len, NB_ERR_DTYPE, "%s has no backward pass yet (forward only)",
                          nb_dtype_name(p->dtype))
                   : NB_OK;
    if (!nb_dtype_is_half(p->dtype))
        return fail(err, len, NB_ERR_ARG, "params= and round= need bf16 or f16, not %s",
                    nb_dtype_name(p->dtype));
    if (!p->affine)
        return fail(err, len, NB_ERR_ARG, "params= and round= need gamma (affine)");
    return p->dir != NB_FWD ? fail(err, len, NB_ERR_DTYPE, "%s has no backward pass yet",
                                   nb_dtype_name(p->dtype))
                            : NB_OK;
}

/* The fused variants: add on ln/rms, act on gn/bn, both forward only;
 * act rounds once (round=before_gamma defines no place for it); no
 * SyncBatchNorm. */
static nb_status fused_check(const nb_problem *p, char *err, size_t len)
{
    if ((unsigned)p->act >= NB_ACT_COUNT)
        return fail(err, len, NB_ERR_ARG, "unknown activation %d", (int)p->act);
    if (!nb_problem_is_fused(p))
        return NB_OK;
    if (p->add && !is_rowwise(p))
        return fail(err, len, NB_ERR_ARG, "add (residual) is defined for ln and rms, not %s",
                    layer_short[p->layer]);
    if (p->act != NB_ACT_NONE && p->layer != NB_GN && p->layer != NB_BN)
        return fail(err, len, NB_ERR_ARG, "act= is defined for gn and bn, not %s",
                    layer_short[p->layer]);
    if (p->dir != NB_FWD)
        return fail(err, len, NB_ERR_ARG, "the fused variants are forward only");
    if (p->act != NB_ACT_NONE && p->affine && p->rounding == NB_ROUND_BEFORE_GAMMA)
        return fail(err, len, NB_ERR_ARG, "act= rounds once: not with round=before_gamma");
    if (p->ranks)
        return fail(err, len, NB_ERR_ARG, "act= is not defined for SyncBatchNorm (ranks)");
    return NB_OK;
}

nb_status nb_problem_check(const nb_problem *p, char *err, size_t len)
{
    if (!p)
        return fail(err, len, NB_ERR_NULL, "problem is NULL");
    if ((unsigned)p->layer >= NB_LAYER_COUNT)
        return fail(err, len, NB_ERR_ARG, "unknown layer %d", (int)p->layer);
    if ((unsigned)p->dtype >= NB_DTYPE_COUNT)
        return fail(err, len, NB_ERR_DTYPE, "unknown dtype %d", (int)p->dtype);
    if (p->layout != NB_NCHW && p->layout != NB_NHWC)
        return fail(err, len, NB_ERR_LAYOUT, "unknown layout %d", (int)p->layout);
    if (is_rowwise(p) && p->layout != NB_NCHW)
        return fail(err, len, NB_ERR_LAYOUT, "%s takes rows x cols, not nhwc",
                    layer_short[p->layer]);
    if (p->spatial_rank < 0 || p->spatial_rank > NB_MAX_SPATIAL ||
        (is_rowwise(p) && p->spatial_rank))
        return fail(err, len, NB_ERR_SHAPE, "spatial rank %d out of range", p->spatial_rank);
    const char *nn = is_rowwise(p) ? "rows" : "n", *cn = is_rowwise(p) ? "cols" : "c";
    if (p->n <= 0)
        return fail(err, len, NB_ERR_SHAPE, "%s must be positive, got %" PRId64, nn, p->n);
    if (p->c <= 0)
        return fail(err, len, NB_ERR_SHAPE, "%s must be positive, got %" PRId64, cn, p->c);
    int64_t total = p->n;
    if (!mul_ok(total, p->c, &total))
        return fail(err, len, NB_ERR_OVERFLOW, "shape too large: %s*%s overflows", nn, cn);
    for (int i = 0; i < p->spatial_rank; i++) {
        if (p->spatial[i] <= 0)
            return fail(err, len, NB_ERR_SHAPE,
                        "spatial dimension %d must be positive, got %" PRId64, i, p->spatial[i]);
        if (!mul_ok(total, p->spatial[i], &total))
            return fail(err, len, NB_ERR_OVERFLOW, "shape too large: more than 2^40 elements");
    }
    if (p->layer == NB_GN) {
        if (p->groups <= 0)
            return fail(err, len, NB_ERR_GROUPS, "groups must be positive, got %" PRId64,
                        p->groups);
        if (p->c % p->groups != 0)
            return fail(err, len, NB_ERR_GROUPS,
                        "channels %" PRId64 " not divisible by groups %" PRId64, p->c, p->groups);
    }
    if (!(p->eps >= 0.0) || !isfinite(p->eps))
        return fail(err, len, NB_ERR_EPS, "eps must be finite and >= 0, got %g", p->eps);
    if (nb_problem_stat_dtype(p) == NB_F32 && p->eps > 3.4e38)
        return fail(err, len, NB_ERR_EPS, "eps %g overflows f32", p->eps);
    if (nb_problem_stat_dtype(p) == NB_F32 && p->eps > 0 && (float)p->eps == 0.0f)
        return fail(err, len, NB_ERR_EPS,
                    "'eps%g' rounds to 0 with '%s' (its smallest eps is about 1.4e-45)", p->eps,
                    nb_dtype_name(p->dtype));
    nb_status hs = half_check(p, err, len);
    if (hs)
        return hs;
    if ((unsigned)p->eps_conv >= NB_EPS_CONV_COUNT)
        return fail(err, len, NB_ERR_EPS, "unknown eps convention %d", (int)p->eps_conv);
    if (p->layer == NB_BN && p->training) {
        if (nb_problem_group_size(p) < 2)
            return fail(err, len, NB_ERR_SINGLE,
                        "expected more than 1 value per channel when training (n*spatial = %" PRId64
                        ")",
                        nb_problem_group_size(p));
    }
    if (p->layer == NB_IN && nb_problem_spatial(p) < 2)
        return fail(err, len, NB_ERR_SINGLE,
                    "instancenorm expects more than 1 spatial element per instance, got %" PRId64,
                    nb_problem_spatial(p));
    if (nb_problem_has_running(p)) {
        if (p->momentum_none) {
            if (p->layer != NB_BN)
                return fail(err, len, NB_ERR_MOMENTUM, "momnone is only defined for bn");
            if (p->num_batches_tracked < 1)
                return fail(err, len, NB_ERR_MOMENTUM, "nbt must be >= 1 with momnone");
        } else if (!(p->momentum >= 0.0 && p->momentum <= 1.0)) {
            return fail(err, len, NB_ERR_MOMENTUM, "momentum must lie in [0, 1], got %g",
                        p->momentum);
        }
    }
    if ((unsigned)p->dist >= NB_DIST_COUNT)
        return fail(err, len, NB_ERR_ARG, "unknown data distribution %d", (int)p->dist);
    nb_status st = ranks_check(p, err, len);
    if (!st)
        st = direction_check(p, err, len);
    if (!st)
        st = fused_check(p, err, len);
    if (st)
        return st;
    if (!isfinite(p->dist_param))
        return fail(err, len, NB_ERR_ARG, "data parameter must be finite");
    /* The data itself must be finite in the dtype (NaN/Inf inputs come only
     * from data=nan): a parameter near the dtype's maximum is refused. */
    const double dmax = nb_dtype_max(p->dtype);
    if (p->dist != NB_DIST_TINY && fabs(p->dist_param) > 0.5 * dmax)
        return fail(err, len, NB_ERR_ARG, "data parameter %g is beyond half the %s range",
                    p->dist_param, nb_dtype_name(p->dtype));
    if (p->dist == NB_DIST_TINY && p->dist_param > 1e3)
        return fail(err, len, NB_ERR_ARG, "tiny sigma %g is not tiny", p->dist_param);
    return NB_OK;
}

/* ---- parsing ----------------------------------------------------------- */

/* Parse a whole decimal integer >= 0 from [s, end); false on garbage. */
static bool parse_i64(const char *s, const char *end, int64_t *out)
{
    if (s == end)
        return false;
    int64_t v = 0;
    for (const char *q = s; q < end; q++) {
        if (!isdigit((unsigned char)*q))
            return false;
        int d = *q - '0';
        if (v > (INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    if (!*s || isspace((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* The combined shape token: n<N>c<C>[l<L> | h<H>w<W> | d<D>h<H>w<W>]. */
static nb_status parse_shape(const char *tok, nb_problem *p, char *err, size_t len)
{
    const char *q = tok;
    char keys[9]; /* up to 8 keys and the terminator (fuzzer find: 8 keys overflowed) */
    int64_t vals[8];
    int k = 0;
    while (*q) {
        if (k == 8)
            return fail(err, len, NB_ERR_PARSE, "bad shape token '%s': too many dimensions", tok);
        char key = *q++;
        const char *s = q;
        while (isdigit((unsigned char)*q))
            q++;
        if (!parse_i64(s, q, &vals[k]))
            return fail(err, len, NB_ERR_PARSE, "bad shape token '%s': '%c' needs a number", tok,
                        key);
        keys[k++] = key;
    }
    keys[k] = 0;
    if (k < 2 || keys[0] != 'n' || keys[1] != 'c')
        return fail(err, len, NB_ERR_PARSE, "bad shape token '%s': expected n<N>c<C>...", tok);
    p->n = vals[0];
    p->c = vals[1];
    const char *rest = keys + 2;
    if (!strcmp(rest, "")) {
        p->spatial_rank = 0;
    } else if (!strcmp(rest, "l")) {
        p->spatial_rank = 1;
    } else if (!strcmp(rest, "hw")) {
        p->spatial_rank = 2;
    } else if (!strcmp(rest, "dhw")) {
        p->spatial_rank = 3;
    } else {
        return fail(err, len, NB_ERR_PARSE,
                    "bad shape token '%s': spatial dims must be l, hw or dhw", tok);
    }
    for (int i = 0; i < p->spatial_rank; i++)
        p->spatial[i] = vals[2 + i];
    return NB_OK;
}

static nb_status parse_data(const char *v, nb_problem *p, char *err, size_t len)
{
    static const struct {
        const char *name;
        nb_dist dist;
        int param; /* 0 none, 1 required, 2 optional */
        double dflt;
    } tab[] = {
        {"normal", NB_DIST_NORMAL, 0, 0}, {"offset", NB_DIST_OFFSET, 1, 0},
        {"sorted", NB_DIST_SORTED, 2, 0}, {"const", NB_DIST_CONST, 1, 0},
        {"alt", NB_DIST_ALT, 2, 0},       {"tiny", NB_DIST_TINY, 2, 1e-6},
        {"huge", NB_DIST_HUGE, 0, 0},     {"subnormal", NB_DIST_SUBNORMAL, 0, 0},
        {"nan", NB_DIST_NAN, 0, 0},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        size_t l = strlen(tab[i].name);
        if (strncmp(v, tab[i].name, l))
            continue;
        const char *arg = v + l;
        if (!*arg) {
            if (tab[i].param == 1)
                return fail(err, len, NB_ERR_PARSE,
                            "bad token 'data=%s': %s needs a value, e.g. %s1e4", v, tab[i].name,
                            tab[i].name);
            p->dist = tab[i].dist;
            p->dist_param = tab[i].dflt;
            return NB_OK;
        }
        double d;
        if (tab[i].param == 0 || !parse_double(arg, &d))
            continue;
        if (tab[i].dist == NB_DIST_TINY && !(d > 0))
            return fail(err, len, NB_ERR_PARSE, "bad token 'data=%s': tiny needs sigma > 0", v);
        p->dist = tab[i].dist;
        p->dist_param = d;
        return NB_OK;
    }
    return fail(err, len, NB_ERR_PARSE,
                "bad token 'data=%s': expected normal, offset<mu>, sorted[mu], const<v>, alt[mu], "
                "tiny[sigma], huge, subnormal or nan",
                v);
}

/* What each token sets: a problem string may set each at most once. */
typedef enum tok_kind {
    TK_SHAPE,
    TK_ROWS,
    TK_COLS,
    TK_GROUPS,
    TK_LAYOUT,
    TK_MODE,
    TK_EPS,
    TK_EPS_CONV,
    TK_DTYPE,
    TK_SEED,
    TK_DATA,
    TK_MOMENTUM,
    TK_NBT,
    TK_AFFINE,
    TK_BETA,
    TK_TRACK,
    TK_DIRECTION,
    TK_DY,
    TK_RANKS,
    TK_SPLIT,
    TK_PARAMS,
    TK_ROUND,
    TK_ADD,
    TK_ACT,
    TK_KIND_COUNT
} tok_kind;

static const char *const tok_kind_name[TK_KIND_COUNT] = {"shape",
                                                         "rows",
                                                         "cols",
                                                         "group count",
                                                         "layout",
                                                         "mode",
                                                         "eps",
                                                         "eps convention",
                                                         "dtype",
                                                         "seed",
                                                         "data distribution",
                                                         "momentum",
                                                         "batch count",
                                                         "affine flag",
                                                         "beta flag",
                                                         "running-statistics flag",
                                                         "direction",
                                                         "dy distribution",
                                                         "rank count",
                                                         "rank split",
                                                         "parameter dtype",
                                                         "rounding",
                                                         "residual add",
                                                         "activation"};

static bool is_token(const char *tok, const char *a, const char *b)
{
    return !strcmp(tok, a) || (b && !strcmp(tok, b));
}

/* `dy=<dist>`: normal, const[v], prop[s], sparse, offset<mu>. */
static nb_status parse_dy(const char *v, nb_problem *p, char *err, size_t len)
{
    static const struct {
        const char *name;
        nb_dy_dist dist;
        int param; /* 0 none, 1 required, 2 optional */
        double dflt;
    } tab[] = {
        {"normal", NB_DY_NORMAL, 0, 0}, {"const", NB_DY_CONST, 2, 1},   {"prop", NB_DY_PROP, 2, 1},
        {"sparse", NB_DY_SPARSE, 0, 0}, {"offset", NB_DY_OFFSET, 1, 0},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        size_t l = strlen(tab[i].name);
        if (strncmp(v, tab[i].name, l))
            continue;
        const char *arg = v + l;
        double d = tab[i].dflt;
        if (!*arg && tab[i].param == 1)
            return fail(err, len, NB_ERR_PARSE, "bad token 'dy=%s': %s needs a value, e.g. %s1e4",
                        v, tab[i].name, tab[i].name);
        if (*arg && (tab[i].param == 0 || !parse_double(arg, &d)))
            continue;
        p->dy_dist = tab[i].dist;
        p->dy_param = d;
        return NB_OK;
    }
    return fail(err, len, NB_ERR_PARSE,
                "bad token 'dy=%s': expected normal, const[v], prop[s], sparse or offset<mu>", v);
}

/* `eps=f64` or `eps=dtype`: how eps is added (see nb_eps_conv). */
static nb_status parse_eps_conv(const char *v, nb_problem *p, char *err, size_t len)
{
    if (!strcmp(v, "f64"))
        p->eps_conv = NB_EPS_F64;
    else if (!strcmp(v, "dtype"))
        p->eps_conv = NB_EPS_DTYPE;
    else
        return fail(err, len, NB_ERR_PARSE,
                    "bad token 'eps=%s': expected eps=f64 or eps=dtype (the value is eps<v>, e.g. "
                    "eps1e-5)",
                    v);
    return NB_OK;
}

/* `split=a,b,...`: the samples of each rank, in rank order. */
static nb_status parse_split(const char *tok, nb_problem *p, char *err, size_t len)
{
    const char *v = tok + 6;
    p->nsplit = 0;
    while (*v) {
        const char *comma = strchr(v, ',');
        const char *end = comma ? comma : v + strlen(v);
        if (p->nsplit == NB_MAX_SPLIT)
            return fail(err, len, NB_ERR_PARSE, "bad token '%s': at most %d ranks in a split", tok,
                        NB_MAX_SPLIT);
        if (!parse_i64(v, end, &p->split[p->nsplit]))
            return fail(err, len, NB_ERR_PARSE,
                        "bad token '%s': expected split=<samples>,<samples>,... (one count per "
                        "rank, e.g. split=3,0,1,4)",
                        tok);
        p->nsplit++;
        if (comma && !comma[1])
            return fail(err, len, NB_ERR_PARSE, "bad token '%s': trailing comma", tok);
        v = comma ? comma + 1 : end;
    }
    if (!p->nsplit)
        return fail(err, len, NB_ERR_PARSE, "bad token '%s': the split is empty", tok);
    return NB_OK;
}

/* Apply one token after the layer to *p and say which setting it made
 * (*kind); tokens of other layers are refused as unknown. */
static nb_status parse_token(char *tok, nb_problem *p, tok_kind *kind, char *err, size_t len)
{
    const bool rowwise = is_rowwise(p), bn = p->layer == NB_BN;
    const char *end = tok + strlen(tok);
    int64_t iv;
    double dv;
    if (!rowwise && tok[0] == 'n' && isdigit((unsigned char)tok[1])) {
        *kind = TK_SHAPE;
        return parse_shape(tok, p, err, len);
    } else if (rowwise && !strncmp(tok, "rows", 4) && parse_i64(tok + 4, end, &iv)) {
        *kind = TK_ROWS, p->n = iv;
    } else if (rowwise && !strncmp(tok, "cols", 4) && parse_i64(tok + 4, end, &iv)) {
        *kind = TK_COLS, p->c = iv;
    } else if (p->layer == NB_GN && tok[0] == 'g' && parse_i64(tok + 1, end, &iv)) {
        *kind = TK_GROUPS, p->groups = iv;
    } else if (is_token(tok, "nchw", "nhwc") && !(rowwise && tok[1] == 'h')) {
        *kind = TK_LAYOUT, p->layout = tok[1] == 'h' ? NB_NHWC : NB_NCHW;
    } else if (bn && is_token(tok, "train", "infer")) {
        *kind = TK_MODE, p->training = tok[0] == 't';
    } else if (!strncmp(tok, "eps=", 4)) {
        *kind = TK_EPS_CONV;
        return parse_eps_conv(tok + 4, p, err, len);
    } else if (!strncmp(tok, "eps", 3) && parse_double(tok + 3, &dv)) {
        *kind = TK_EPS, p->eps = dv;
    } else if (is_token(tok, "f32", "f64") || is_token(tok, "bf16", "f16")) {
        *kind = TK_DTYPE;
        p->dtype = tok[0] == 'b'   ? NB_BF16
                   : tok[1] == '1' ? NB_F16
                   : tok[1] == '3' ? NB_F32
                                   : NB_F64;
    } else if (is_token(tok, "params=f32", "params=same")) {
        *kind = TK_PARAMS, p->params = tok[7] == 'f' ? NB_PARAMS_F32 : NB_PARAMS_SAME;
    } else if (is_token(tok, "round=once", "round=before_gamma")) {
        *kind = TK_ROUND, p->rounding = tok[6] == 'o' ? NB_ROUND_ONCE : NB_ROUND_BEFORE_GAMMA;
    } else if (!strncmp(tok, "params=", 7) || !strncmp(tok, "round=", 6)) {
        return fail(err, len, NB_ERR_PARSE,
                    "bad token '%s': expected params=f32, params=same, round=once or "
                    "round=before_gamma",
                    tok);
    } else if (rowwise && !strcmp(tok, "add")) {
        *kind = TK_ADD, p->add = true;
    } else if ((bn || p->layer == NB_GN) && is_token(tok, "act=relu", "act=silu")) {
        *kind = TK_ACT, p->act = tok[4] == 'r' ? NB_ACT_RELU : NB_ACT_SILU;
    } else if ((bn || p->layer == NB_GN) && !strncmp(tok, "act=", 4)) {
        return fail(err, len, NB_ERR_PARSE, "bad token '%s': expected act=relu or act=silu", tok);
    } else if (!strncmp(tok, "seed", 4) && parse_i64(tok + 4, end, &iv)) {
        *kind = TK_SEED, p->seed = (uint64_t)iv;
    } else if (!strncmp(tok, "data=", 5)) {
        *kind = TK_DATA;
        return parse_data(tok + 5, p, err, len);
    } else if ((bn || p->layer == NB_IN) && !strncmp(tok, "mom", 3) && parse_double(tok + 3, &dv)) {
        *kind = TK_MOMENTUM, p->momentum = dv;
    } else if (bn && !strcmp(tok, "momnone")) {
        *kind = TK_MOMENTUM, p->momentum_none = true;
    } else if (bn && !strncmp(tok, "nbt", 3) && parse_i64(tok + 3, end, &iv)) {
        *kind = TK_NBT, p->num_batches_tracked = iv;
    } else if (is_token(tok, "affine", "noaffine")) {
        *kind = TK_AFFINE, p->affine = tok[0] == 'a';
    } else if (p->layer == NB_LN && !strcmp(tok, "nobeta")) {
        *kind = TK_BETA, p->has_beta = false;
    } else if (p->layer == NB_IN && is_token(tok, "track", "notrack")) {
        *kind = TK_TRACK, p->track_running = tok[0] == 't';
    } else if (is_token(tok, "fwd", "bwd") || !strcmp(tok, "bwd_d")) {
        *kind = TK_DIRECTION;
        p->dir = tok[0] == 'f' ? NB_FWD : tok[3] ? NB_BWD_D : NB_BWD;
    } else if (!strncmp(tok, "dy=", 3)) {
        *kind = TK_DY;
        return parse_dy(tok + 3, p, err, len);
    } else if (bn && !strncmp(tok, "ranks", 5) && parse_i64(tok + 5, end, &iv)) {
        if (iv < 1 || iv > NB_MAX_RANKS)
            return fail(err, len, NB_ERR_PARSE, "bad token '%s': ranks must lie in 1..%d", tok,
                        NB_MAX_RANKS);
        *kind = TK_RANKS, p->ranks = (int)iv;
    } else if (bn && !strncmp(tok, "split=", 6)) {
        *kind = TK_SPLIT;
        return parse_split(tok, p, err, len);
    } else if (rowwise && !strcmp(tok, "nhwc")) {
        return fail(err, len, NB_ERR_PARSE, "bad token '%s': %s has no channel layout", tok,
                    layer_short[p->layer]);
    } else {
        return fail(err, len, NB_ERR_PARSE, "bad token '%s'", tok);
    }
    return NB_OK;
}

/* dy= only on a backward problem; a backward problem refuses the tokens of
 * the running statistics, which it neither reads nor updates. */
static nb_status parse_finish_direction(const nb_problem *p, char *const seen[TK_KIND_COUNT],
                                        char *err, size_t len)
{
    if (p->dir == NB_FWD) {
        if (seen[TK_DY])
            return fail(err, len, NB_ERR_PARSE,
                        "'%s' needs 'bwd' or 'bwd_d' (a forward problem has no dy)", seen[TK_DY]);
        return NB_OK;
    }
    const tok_kind running[] = {TK_MOMENTUM, TK_NBT};
    for (size_t i = 0; i < sizeof running / sizeof running[0]; i++)
        if (seen[running[i]])
            return fail(err, len, NB_ERR_PARSE,
                        "'%s' and '%s' conflict (a backward pass updates no running statistics)",
                        seen[running[i]], seen[TK_DIRECTION]);
    if (p->layer == NB_IN && p->track_running)
        return fail(err, len, NB_ERR_PARSE,
                    "'%s' and '%s' conflict (a backward pass updates no running statistics)",
                    seen[TK_TRACK], seen[TK_DIRECTION]);
    return NB_OK;
}

/* params= and round= only on a bf16/f16 problem with gamma; bf16/f16 only
 * forward. */
static nb_status parse_finish_half(const nb_problem *p, char *const seen[TK_KIND_COUNT], char *err,
                                   size_t len)
{
    const char *set = seen[TK_PARAMS] ? seen[TK_PARAMS] : seen[TK_ROUND];
    if (nb_dtype_is_half(p->dtype) && p->dir != NB_FWD)
        return fail(err, len, NB_ERR_PARSE,
                    "'%s' and '%s' conflict (bf16/f16 have no backward pass yet)", seen[TK_DTYPE],
                    seen[TK_DIRECTION]);
    if (!set)
        return NB_OK;
    if (!nb_dtype_is_half(p->dtype))
        return fail(err, len, NB_ERR_PARSE, "'%s' needs 'bf16' or 'f16' (%s has one dtype)", set,
                    nb_dtype_name(p->dtype));
    if (!p->affine)
        return fail(err, len, NB_ERR_PARSE, "'%s' and '%s' conflict (no gamma or beta)", set,
                    seen[TK_AFFINE] ? seen[TK_AFFINE] : "in without affine");
    return NB_OK;
}

/* The tokens that must come together (or not at all) are consistent, and
 * eps_conv is in canonical form. seen[] holds each setting's token. */
static nb_status parse_finish(nb_problem *p, char *const seen[TK_KIND_COUNT], char *err, size_t len)
{
    const char *ls = layer_short[p->layer];
    if (is_rowwise(p) && (!seen[TK_ROWS] || !seen[TK_COLS]))
        return fail(err, len, NB_ERR_PARSE, "%s needs rows<R> and cols<C>", ls);
    if (!is_rowwise(p) && !seen[TK_SHAPE])
        return fail(err, len, NB_ERR_PARSE, "%s needs a shape such as n32c64h56w56", ls);
    if (p->layer == NB_GN && !seen[TK_GROUPS])
        return fail(err, len, NB_ERR_PARSE, "gn needs a group count g<G>");
    if (seen[TK_NBT] && !p->momentum_none)
        return fail(err, len, NB_ERR_PARSE,
                    "'%s' needs 'momnone' (the batch count is only used "
                    "by the cumulative average)",
                    seen[TK_NBT]);
    if (p->layer == NB_IN && seen[TK_MOMENTUM] && !p->track_running)
        return fail(err, len, NB_ERR_PARSE,
                    "'%s' needs 'track' (without running statistics in "
                    "has no momentum)",
                    seen[TK_MOMENTUM]);
    nb_status st = parse_finish_direction(p, seen, err, len);
    if (!st)
        st = parse_finish_half(p, seen, err, len);
    if (st)
        return st;
    if (seen[TK_SPLIT] && !seen[TK_RANKS])
        return fail(err, len, NB_ERR_PARSE, "'%s' needs a rank count ranks<K>", seen[TK_SPLIT]);
    if (seen[TK_SPLIT] && p->nsplit != p->ranks)
        return fail(err, len, NB_ERR_PARSE, "'%s' lists %d ranks, '%s' says %d", seen[TK_SPLIT],
                    p->nsplit, seen[TK_RANKS], p->ranks);
    if (seen[TK_RANKS] && !p->training)
        return fail(err, len, NB_ERR_PARSE, "'%s' needs a training problem (SyncBatchNorm: train)",
                    seen[TK_RANKS]);
    if (p->nsplit) { /* the even split is the default, not printed */
        bool even = true;
        for (int r = 0; r < p->nsplit; r++)
            even &= p->split[r] == p->n / p->ranks + (r < p->n % p->ranks);
        if (even)
            p->nsplit = 0;
    }
    /* eps=f64 and eps=dtype add the same value in f64; the layer's own
     * convention is not printed: both fold into NB_EPS_LAYER. */
    const nb_eps_conv dflt = p->layer == NB_BN || p->layer == NB_IN ? NB_EPS_F64 : NB_EPS_DTYPE;
    if (p->dtype == NB_F64 || p->eps_conv == dflt)
        p->eps_conv = NB_EPS_LAYER;
    return NB_OK;
}

/* Parse the tokens after the layer; each setting may be given once. */
static nb_status parse_tokens(char **save, nb_problem *p, char *err, size_t len)
{
    char *seen[TK_KIND_COUNT] = {0};
    char *tok;
    while ((tok = strtok_r(NULL, ":", save))) {
        tok_kind kind = TK_KIND_COUNT;
        nb_status st = parse_token(tok, p, &kind, err, len);
        if (st)
            return st;
        if (seen[kind] && !strcmp(seen[kind], tok))
            return fail(err, len, NB_ERR_PARSE, "token '%s' given twice", tok);
        if (seen[kind])
            return fail(err, len, NB_ERR_PARSE, "tokens '%s' and '%s' conflict (both set the %s)",
                        seen[kind], tok, tok_kind_name[kind]);
        seen[kind] = tok;
    }
    return parse_finish(p, seen, err, len);
}

nb_status nb_problem_parse(const char *s, nb_problem *p, char *err, size_t len)
{
    if (!s || !p)
        return fail(err, len, NB_ERR_NULL, "problem string is NULL");
    size_t sl = strlen(s);
    if (sl == 0)
        return fail(err, len, NB_ERR_PARSE, "empty problem string");
    if (sl > 4000)
        return fail(err, len, NB_ERR_PARSE, "problem string longer than 4000 characters");
    /* Empty tokens (`::`) are rejected: strtok_r would silently skip them. */
    for (const char *q = s; *q; q++)
        if (q[0] == ':' && (q[1] == ':' || q[1] == 0))
            return fail(err, len, NB_ERR_PARSE, "empty token in '%s'", s);
    char *buf = malloc(sl + 1);
    if (!buf)
        return fail(err, len, NB_ERR_NOMEM, "out of memory");
    memcpy(buf, s, sl + 1);
    char *save = NULL;
    const char *tok = strtok_r(buf, ":", &save);
    int layer = -1;
    for (int i = 0; tok && i < NB_LAYER_COUNT; i++)
        if (!strcmp(tok, layer_short[i]))
            layer = i;
    nb_status st;
    if (layer < 0) {
        st = fail(err, len, NB_ERR_PARSE,
                  "bad token '%s': problem must start with bn, in, ln, gn or rms", tok ? tok : s);
    } else {
        nb_problem_defaults(p, (nb_layer)layer);
        st = parse_tokens(&save, p, err, len);
        if (!st)
            st = nb_problem_check(p, err, len);
    }
    free(buf);
    return st;
}

/* ---- formatting -------------------------------------------------------- */

/* Shortest %g form that reads back as the same double. */
static void fmt_double(char *out, size_t len, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, len, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

int nb_problem_format(const nb_problem *p, char *buf, size_t len)
{
    char tmp[1024], num[40];
    size_t o = 0;
    if (!p) {
        if (buf && len)
            buf[0] = 0;
        return 0;
    }
#define PUT(...) o += (size_t)snprintf(tmp + o, o < sizeof tmp ? sizeof tmp - o : 0, __VA_ARGS__)
    PUT("%s", nb_layer_short(p->layer));
    if (is_rowwise(p)) {
        PUT(":rows%" PRId64 ":cols%" PRId64, p->n, p->c);
    } else {
        static const char *const dimkeys[4][3] = {{0}, {"l"}, {"h", "w"}, {"d", "h", "w"}};
        PUT(":n%" PRId64 "c%" PRId64, p->n, p->c);
        for (int i = 0; i < p->spatial_rank && i < NB_MAX_SPATIAL; i++)
            PUT("%s%" PRId64, dimkeys[p->spatial_rank][i], p->spatial[i]);
        if (p->layer == NB_GN)
            PUT(":g%" PRId64, p->groups);
        PUT(":%s", p->layout == NB_NHWC ? "nhwc" : "nchw");
    }
    if (p->layer == NB_BN)
        PUT(":%s", p->training ? "train" : "infer");
    if (p->ranks) {
        PUT(":ranks%d", p->ranks);
        for (int r = 0; r < p->nsplit && r < NB_MAX_SPLIT; r++)
            PUT("%s%" PRId64, r ? "," : ":split=", p->split[r]);
    }
    if (p->dir != NB_FWD) /* fwd, the default, is not printed */
        PUT(":%s", nb_direction_name(p->dir));
    if (p->add)
        PUT(":add");
    if (p->act != NB_ACT_NONE)
        PUT(":act=%s", nb_act_name(p->act));
    fmt_double(num, sizeof num, p->eps);
    PUT(":eps%s:%s", num, nb_dtype_name(p->dtype));
    /* The eps convention only when it differs from the layer's (f32). */
    const bool exact_by_default = p->layer == NB_BN || p->layer == NB_IN;
    if (p->dtype != NB_F64 && nb_problem_eps_exact(p) != exact_by_default)
        PUT(":eps=%s", nb_problem_eps_exact(p) ? "f64" : "dtype");
    if (nb_dtype_is_half(p->dtype) && p->affine)
        PUT(":params=%s:round=%s", p->params == NB_PARAMS_F32 ? "f32" : "same",
            p->rounding == NB_ROUND_ONCE ? "once" : "before_gamma");
    bool dflt_affine = p->layer != NB_IN;
    if (p->affine != dflt_affine)
        PUT(":%s", p->affine ? "affine" : "noaffine");
    if (p->layer == NB_LN && !p->has_beta)
        PUT(":nobeta");
    if (p->layer == NB_IN && p->track_running)
        PUT(":track");
    if (p->layer == NB_BN && p->momentum_none) {
        PUT(":momnone:nbt%" PRId64, p->num_batches_tracked);
    } else if ((p->layer == NB_BN || (p->layer == NB_IN && p->track_running)) &&
               p->momentum != 0.1) {
        fmt_double(num, sizeof num, p->momentum);
        PUT(":mom%s", num);
    }
    PUT(":seed%" PRIu64 ":data=%s", p->seed, nb_dist_name(p->dist));
    bool has_param =
        p->dist == NB_DIST_OFFSET || p->dist == NB_DIST_CONST ||
        ((p->dist == NB_DIST_SORTED || p->dist == NB_DIST_ALT) && p->dist_param != 0) ||
        (p->dist == NB_DIST_TINY && p->dist_param != 1e-6);
    if (has_param) {
        fmt_double(num, sizeof num, p->dist_param);
        PUT("%s", num);
    }
    if (p->dir != NB_FWD) {
        PUT(":dy=%s", nb_dy_dist_name(p->dy_dist));
        const bool dy_param =
            p->dy_dist == NB_DY_OFFSET ||
            ((p->dy_dist == NB_DY_CONST || p->dy_dist == NB_DY_PROP) && p->dy_param != 1);
        if (dy_param) {
            fmt_double(num, sizeof num, p->dy_param);
            PUT("%s", num);
        }
    }
#undef PUT
    if (len)
        snprintf(buf, len, "%s", tmp);
    return (int)o;
}
