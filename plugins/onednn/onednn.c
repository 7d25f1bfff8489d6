/* onednn.c: the oneDNN plug-in (issue 13): oneDNN's batch and layer
 * normalization (Debian libdnnl-dev, C API dnnl.h) as the kernels
 * `onednn:batchnorm/onednn/native` and `onednn:layernorm/onednn/native`,
 * built against include/normbench_plugin.h alone, so that neither the
 * normbench command nor libnormbench links oneDNN. normbench loads it from
 * its default plug-in directories (docs/DESIGN.md section 9).
 *
 * f32, and bf16 and f16 forward (plug-in ABI 1.2: x and y in the storage
 * type, statistics and scale/shift f32, y rounded once: oneDNN's own
 * semantics, so problems with round=before_gamma are not declared; with
 * params=same gamma and beta are widened to f32 first, exactly; where
 * oneDNN has no implementation for the dtype on this CPU, creating the
 * primitive fails and the call answers NBP_UNSUPPORTED: SKIP with the
 * reason); NCHW and NHWC (and their 1d/3d forms); BatchNorm forward
 * training (batch statistics, with or without the running update) and
 * inference (running statistics); LayerNorm forward with statistics written
 * out. Backward: `bwd` (dx, dgamma, dbeta: oneDNN's backward) and `bwd_d`
 * (dx: backward_data) for both, from x, dy, gamma and the saved mean and
 * variance (oneDNN takes the variance, not rstd; when a caller gives only
 * rstd, var = 1 / rstd^2 - eps is rebuilt per group, in double, rounded to
 * f32, as a framework holding rstd would have to). Not BatchNorm inference
 * backward: there oneDNN recomputes rstd from the variance in f32, two
 * roundings more than the checker's model of dx = gamma rstd dy given rstd
 * allows (measured: bound use 1.23 on bn:n4c8h5w5:nhwc:infer:bwd:dy=offset2),
 * so it answers NBP_UNSUPPORTED.
 *
 * What oneDNN does not do is done here, outside any timing-relevant loop:
 * the BatchNorm running-statistics update (O(C), unbiased variance as in
 * PyTorch) and rstd = 1 / sqrt(var + eps) per group (O(groups)).
 *
 * Primitive creation costs far more than a small execution, so primitives
 * are cached per (shape, layout, flags, eps, thread count); the cache is
 * process-wide, guarded by a mutex and released at exit. */
#include <math.h>
#include <normbench_plugin.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* BatchNorm training: normalised with the batch's own statistics. */
static bool training_of(const nbp_problem *p)
{
    return (p->modes & NBP_MODE_BATCH_STATS) != 0;
}

static bool affine_of(const nbp_problem *p)
{
    return (p->modes & NBP_MODE_AFFINE) != 0;
}

/* Values per channel and sample: the product of the spatial sizes. */
static double spatial_count(const nbp_problem *p)
{
    double s = 1;
    for (int i = 0; i < p->spatial_rank; i++)
        s *= (double)p->spatial[i];
    return s;
}

typedef struct onednn_key {
    int32_t layer;
    int32_t dtype; /* of x and y */
    int32_t layout;
    bool training, scale, shift;
    int32_t dir;
    int spatial_rank;
    int64_t n, c, spatial[3];
    float eps;
    int threads;
} onednn_key;

typedef struct onednn_entry {
    bool used;
    onednn_key key;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_t src, dst, mean, var, scale, shift;
    dnnl_memory_t diff_scale, diff_shift; /* backward: dst is diff_dst, src's twin diff_src */
    dnnl_memory_t diff_src;
    float *mean_buf, *var_buf; /* used when the caller passes no statistics buffers */
    float *zero_shift;         /* backward: oneDNN 2.6 asks for the shift it does not use */
    float *dparams;            /* bwd_d: the dgamma, dbeta oneDNN computes anyway (2 C) */
    float *params;             /* params=same: gamma and beta widened to f32 (2 C) */
} onednn_entry;

#define CACHE_SIZE 8
static onednn_entry cache[CACHE_SIZE];
static int cache_next;
static dnnl_engine_t engine;
static dnnl_stream_t stream;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool init_failed;

static void entry_free(onednn_entry *e)
{
    if (!e->used)
        return;
    dnnl_memory_t *mems[] = {&e->src,   &e->dst,        &e->mean,       &e->var,     &e->scale,
                             &e->shift, &e->diff_scale, &e->diff_shift, &e->diff_src};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (*mems[i])
            dnnl_memory_destroy(*mems[i]);
    if (e->prim)
        dnnl_primitive_destroy(e->prim);
    if (e->pd)
        dnnl_primitive_desc_destroy(e->pd);
    free(e->mean_buf);
    free(e->var_buf);
    free(e->zero_shift);
    free(e->dparams);
    free(e->params);
    memset(e, 0, sizeof *e);
}

static void release_all(void)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < CACHE_SIZE; i++)
        entry_free(&cache[i]);
    if (stream)
        dnnl_stream_destroy(stream);
    if (engine)
        dnnl_engine_destroy(engine);
    stream = NULL;
    engine = NULL;
    pthread_mutex_unlock(&lock);
}

static bool engine_ready(void)
{
    if (engine)
        return true;
    if (init_failed)
        return false;
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        init_failed = true;
        return false;
    }
    atexit(release_all);
    return true;
}

static dnnl_format_tag_t data_tag(int ndims, int32_t layout)
{
    static const dnnl_format_tag_t cf[6] = {0, 0, dnnl_nc, dnnl_ncw, dnnl_nchw, dnnl_ncdhw};
    static const dnnl_format_tag_t cl[6] = {0, 0, dnnl_nc, dnnl_nwc, dnnl_nhwc, dnnl_ndhwc};
    return layout == NBP_NHWC ? cl[ndims] : cf[ndims];
}

static bool mem_1d(dnnl_memory_t *m, int64_t len)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {len};
    return dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_f32, dnnl_a) == dnnl_success &&
           dnnl_memory_create(m, &md, engine, DNNL_MEMORY_NONE) == dnnl_success;
}

static dnnl_data_type_t data_type(int32_t dtype)
{
    return dtype == NBP_BF16 ? dnnl_bf16 : dtype == NBP_F16 ? dnnl_f16 : dnnl_f32;
}

/* The data's memory descriptor and the statistics' length of one key. */
static bool data_md(const onednn_key *k, dnnl_memory_desc_t *md, int64_t *nstat)
{
    const dnnl_data_type_t dt = data_type(k->dtype);
    dnnl_dims_t dims;
    dims[0] = k->n;
    dims[1] = k->c;
    if (k->layer == NBP_LAYERNORM) {
        *nstat = k->n;
        return dnnl_memory_desc_init_by_tag(md, 2, dims, dt, dnnl_ab) == dnnl_success;
    }
    const int nd = 2 + k->spatial_rank;
    for (int i = 0; i < k->spatial_rank; i++)
        dims[2 + i] = k->spatial[i];
    *nstat = k->c;
    return dnnl_memory_desc_init_by_tag(md, nd, dims, dt, data_tag(nd, k->layout)) == dnnl_success;
}

/* The forward primitive descriptor (a backward one's hint: training). */
static dnnl_status_t forward_pd(const onednn_key *k, const dnnl_memory_desc_t *md, unsigned flags,
                                bool hint, dnnl_primitive_desc_t *pd)
{
    dnnl_status_t st;
    const dnnl_prop_kind_t prop = hint || k->layer == NBP_LAYERNORM || k->training
                                      ? dnnl_forward_training
                                      : dnnl_forward_inference;
    if (k->layer == NBP_LAYERNORM) {
        dnnl_layer_normalization_desc_t d;
        st = dnnl_layer_normalization_forward_desc_init(&d, prop, md, NULL, k->eps, flags);
        return st == dnnl_success ? dnnl_primitive_desc_create(pd, &d, NULL, engine, NULL) : st;
    }
    dnnl_batch_normalization_desc_t d;
    st = dnnl_batch_normalization_forward_desc_init(&d, prop, md, k->eps, flags);
    return st == dnnl_success ? dnnl_primitive_desc_create(pd, &d, NULL, engine, NULL) : st;
}

/* The backward primitive descriptor: dnnl_backward with scale (oneDNN 2.6
 * implements dnnl_backward_data only without it, so bwd_d of an affine
 * problem computes dgamma/dbeta too, into the entry's scratch), else
 * dnnl_backward_data. */
static dnnl_status_t backward_pd(const onednn_key *k, const dnnl_memory_desc_t *md, unsigned flags,
                                 dnnl_primitive_desc_t *pd)
{
    dnnl_primitive_desc_t hint = NULL;
    dnnl_status_t st = forward_pd(k, md, flags, true, &hint);
    if (st != dnnl_success)
        return st;
    const dnnl_prop_kind_t prop = k->scale ? dnnl_backward : dnnl_backward_data;
    if (k->layer == NBP_LAYERNORM) {
        dnnl_layer_normalization_desc_t d;
        st = dnnl_layer_normalization_backward_desc_init(&d, prop, md, md, NULL, k->eps, flags);
        if (st == dnnl_success)
            st = dnnl_primitive_desc_create(pd, &d, NULL, engine, hint);
    } else {
        dnnl_batch_normalization_desc_t d;
        st = dnnl_batch_normalization_backward_desc_init(&d, prop, md, md, k->eps, flags);
        if (st == dnnl_success)
            st = dnnl_primitive_desc_create(pd, &d, NULL, engine, hint);
    }
    dnnl_primitive_desc_destroy(hint);
    return st;
}

/* Build the primitive and memory objects of one key; false if oneDNN
 * rejects it. */
static bool entry_make(onednn_entry *e, const onednn_key *k)
{
    memset(e, 0, sizeof *e);
    e->used = true;
    e->key = *k;
    dnnl_memory_desc_t md;
    int64_t nstat;
    if (!data_md(k, &md, &nstat))
        return false;
    unsigned flags = (k->scale ? dnnl_use_scale : 0u) | (k->shift ? dnnl_use_shift : 0u);
    if (k->layer == NBP_BATCHNORM && !k->training)
        flags |= dnnl_use_global_stats;
    const dnnl_status_t st = k->dir == NBP_FWD ? forward_pd(k, &md, flags, false, &e->pd)
                                               : backward_pd(k, &md, flags, &e->pd);
    if (st != dnnl_success || dnnl_primitive_create(&e->prim, e->pd) != dnnl_success)
        return false;
    if (dnnl_memory_create(&e->src, &md, engine, DNNL_MEMORY_NONE) != dnnl_success ||
        dnnl_memory_create(&e->dst, &md, engine, DNNL_MEMORY_NONE) != dnnl_success ||
        dnnl_memory_create(&e->diff_src, &md, engine, DNNL_MEMORY_NONE) != dnnl_success ||
        !mem_1d(&e->mean, nstat) || !mem_1d(&e->var, nstat) || !mem_1d(&e->scale, k->c) ||
        !mem_1d(&e->shift, k->c) || !mem_1d(&e->diff_scale, k->c) || !mem_1d(&e->diff_shift, k->c))
        return false;
    e->mean_buf = malloc((size_t)nstat * sizeof(float));
    e->var_buf = malloc((size_t)nstat * sizeof(float));
    e->zero_shift = calloc((size_t)k->c, sizeof(float));
    e->dparams = malloc(2 * (size_t)k->c * sizeof(float));
    e->params = malloc(2 * (size_t)k->c * sizeof(float));
    return e->mean_buf && e->var_buf && e->zero_shift && e->dparams && e->params;
}

static onednn_entry *entry_get(const onednn_key *k)
{
    for (int i = 0; i < CACHE_SIZE; i++)
        if (cache[i].used && !memcmp(&cache[i].key, k, sizeof *k))
            return &cache[i];
    onednn_entry *e = &cache[cache_next];
    cache_next = (cache_next + 1) % CACHE_SIZE;
    entry_free(e);
    if (!entry_make(e, k)) {
        entry_free(e);
        return NULL;
    }
    return e;
}

static onednn_key key_of(const nbp_problem *p)
{
    onednn_key k;
    memset(&k, 0, sizeof k); /* padding too: the key is compared with memcmp */
    k.layer = p->layer;
    k.dtype = p->dtype;
    k.layout = p->layer == NBP_LAYERNORM ? NBP_NCHW : p->layout;
    k.training = p->layer == NBP_LAYERNORM || training_of(p);
    k.scale = affine_of(p);
    k.shift = affine_of(p) && (p->layer == NBP_BATCHNORM || !(p->modes & NBP_MODE_NO_BETA));
    k.dir = p->direction;
    k.spatial_rank = p->layer == NBP_LAYERNORM ? 0 : p->spatial_rank;
    k.n = p->n;
    k.c = p->c;
    for (int i = 0; i < k.spatial_rank; i++)
        k.spatial[i] = p->spatial[i];
    k.eps = (float)p->eps;
    k.threads = p->threads;
    return k;
}

/* A storage value (bf16 or f16 bits) as f32, exactly. */
static float half_to_f32(int32_t dtype, uint16_t h)
{
    uint32_t bits;
    if (dtype == NBP_BF16) {
        bits = (uint32_t)h << 16;
    } else { /* f16: sign, 5-bit exponent, 10-bit fraction */
        const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, f = h & 0x3ffu;
        if (e == 0x1f) {
            bits = sign | 0x7f800000u | (f << 13); /* Inf, NaN */
        } else if (e) {
            bits = sign | ((e + 112u) << 23) | (f << 13);
        } else { /* zero or subnormal: f 2^-24, exact in f32 */
            const float v = (float)f * 0x1p-24f;
            memcpy(&bits, &v, sizeof bits);
            bits |= sign;
        }
    }
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* gamma and beta as oneDNN takes them (f32): the caller's, or under
 * params=same widened into the entry's buffer. */
static const float *param_f32(onednn_entry *e, const nbp_problem *p, const void *v, int which)
{
    if (!(p->modes & NBP_MODE_PARAMS_SAME))
        return v;
    float *out = e->params + which * p->c;
    for (int64_t c = 0; c < p->c; c++)
        out[c] = half_to_f32(p->dtype, ((const uint16_t *)v)[c]);
    return out;
}

/* One execution of e's primitive on its arguments; the lock is held. */
static int execute(onednn_entry *e, dnnl_exec_arg_t *args, int nargs)
{
    if (dnnl_primitive_execute(e->prim, stream, nargs, args) != dnnl_success ||
        dnnl_stream_wait(stream) != dnnl_success)
        return NBP_UNSUPPORTED;
    return NBP_OK;
}

/* The forward pass into y and the statistics (var into var). */
static int run_forward(onednn_entry *e, const nbp_problem *p, const nbp_buffers *a, float *mean,
                       float *var)
{
    const int64_t nstat = p->layer == NBP_LAYERNORM ? p->n : p->c;
    if (p->layer == NBP_BATCHNORM && !training_of(p)) {
        memcpy(mean, a->running_mean, (size_t)nstat * sizeof(float));
        memcpy(var, a->running_var, (size_t)nstat * sizeof(float));
    }
    dnnl_memory_set_data_handle(e->src, (void *)a->x);
    dnnl_memory_set_data_handle(e->dst, a->y);
    dnnl_memory_set_data_handle(e->mean, mean);
    dnnl_memory_set_data_handle(e->var, var);
    dnnl_exec_arg_t args[6] = {{DNNL_ARG_SRC, e->src},
                               {DNNL_ARG_DST, e->dst},
                               {DNNL_ARG_MEAN, e->mean},
                               {DNNL_ARG_VARIANCE, e->var}};
    int nargs = 4;
    if (e->key.scale) {
        dnnl_memory_set_data_handle(e->scale, (void *)param_f32(e, p, a->gamma, 0));
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCALE, e->scale};
    }
    if (e->key.shift) {
        dnnl_memory_set_data_handle(e->shift, (void *)param_f32(e, p, a->beta, 1));
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SHIFT, e->shift};
    }
    return execute(e, args, nargs);
}

/* The backward pass: dx (and dgamma, dbeta for bwd) from x, dy, gamma and
 * the saved mean and rstd, the variance rebuilt from rstd. */
static int run_backward(onednn_entry *e, const nbp_problem *p, const nbp_buffers *a)
{
    const int64_t nstat = p->layer == NBP_LAYERNORM ? p->n : p->c;
    float *var = a->var;
    if (!var) {
        const float *rstd = a->rstd;
        for (int64_t i = 0; i < nstat; i++) {
            const double r = (double)rstd[i];
            e->var_buf[i] = (float)(1.0 / (r * r) - p->eps);
        }
        var = e->var_buf;
    }
    dnnl_memory_set_data_handle(e->src, (void *)a->x);
    dnnl_memory_set_data_handle(e->dst, (void *)a->dy);
    dnnl_memory_set_data_handle(e->diff_src, a->dx);
    dnnl_memory_set_data_handle(e->mean, a->mean);
    dnnl_memory_set_data_handle(e->var, var);
    dnnl_exec_arg_t args[9] = {{DNNL_ARG_SRC, e->src},
                               {DNNL_ARG_DIFF_DST, e->dst},
                               {DNNL_ARG_DIFF_SRC, e->diff_src},
                               {DNNL_ARG_MEAN, e->mean},
                               {DNNL_ARG_VARIANCE, e->var}};
    int nargs = 5;
    if (e->key.scale) {
        dnnl_memory_set_data_handle(e->scale, (void *)a->gamma);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCALE, e->scale};
    }
    if (e->key.shift) {
        dnnl_memory_set_data_handle(e->shift, e->zero_shift);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SHIFT, e->shift};
    }
    if (e->key.scale) {
        const bool grads = e->key.dir == NBP_BWD;
        dnnl_memory_set_data_handle(e->diff_scale, grads ? a->dgamma : e->dparams);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SCALE, e->diff_scale};
        if (e->key.shift) {
            dnnl_memory_set_data_handle(e->diff_shift, grads ? a->dbeta : e->dparams + p->c);
            args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SHIFT, e->diff_shift};
        }
    }
    return execute(e, args, nargs);
}

/* What oneDNN's forward leaves out: rstd per group and BatchNorm's
 * running-statistics update. */
static void forward_extras(const nbp_problem *p, const nbp_buffers *a, const float *mean,
                           const float *var)
{
    const int64_t nstat = p->layer == NBP_LAYERNORM ? p->n : p->c;
    if (a->rstd)
        for (int64_t i = 0; i < nstat; i++)
            ((float *)a->rstd)[i] = (float)(1.0 / sqrt((double)var[i] + p->eps));
    if (training_of(p) && a->running_mean && a->running_var) { /* RUNNING_UPDATE */
        /* running = (1 - m) * running + m * batch, running_var unbiased. */
        const double m = p->momentum;
        const double cnt = (double)p->n * spatial_count(p);
        float *rm = a->running_mean, *rv = a->running_var;
        for (int64_t c = 0; c < p->c; c++) {
            rm[c] = (float)((1.0 - m) * rm[c] + m * mean[c]);
            rv[c] = (float)((1.0 - m) * rv[c] + m * (double)var[c] * cnt / (cnt - 1.0));
        }
    }
}

/* The kernel entry of both layers. */
static int onednn_run(const nbp_problem *p, const nbp_buffers *a, void *user)
{
    (void)user;
    if (p->dtype == NBP_F64 || (p->dtype != NBP_F32 && p->direction != NBP_FWD))
        return NBP_UNSUPPORTED;
    if (p->layer != NBP_BATCHNORM && p->layer != NBP_LAYERNORM)
        return NBP_UNSUPPORTED;
    if (p->direction != NBP_FWD && !training_of(p))
        return NBP_UNSUPPORTED; /* see the top of the file */
    const onednn_key k = key_of(p);
    pthread_mutex_lock(&lock);
    onednn_entry *e = engine_ready() ? entry_get(&k) : NULL;
    if (!e) {
        pthread_mutex_unlock(&lock);
        return NBP_UNSUPPORTED;
    }
    float *mean = a->mean ? (float *)a->mean : e->mean_buf;
    float *var = a->var ? (float *)a->var : e->var_buf;
    const int ret =
        p->direction == NBP_FWD ? run_forward(e, p, a, mean, var) : run_backward(e, p, a);
    pthread_mutex_unlock(&lock);
    if (!ret && p->direction == NBP_FWD)
        forward_extras(p, a, mean, var);
    return ret;
}

#define ONEDNN_DIRS (NBP_DIR_FWD | NBP_DIR_BWD | NBP_DIR_BWD_D)
/* bf16/f16: forward only (normbench has no bf16/f16 backward problem yet) */
#define ONEDNN_DTYPES (NBP_DTYPE_F32 | NBP_DTYPE_BF16 | NBP_DTYPE_F16)

static const nbp_kernel kernels[] = {
    {.algo = "onednn",
     .isa = "native",
     .layer = NBP_BATCHNORM,
     .directions = ONEDNN_DIRS,
     .dtypes = ONEDNN_DTYPES,
     .layouts = NBP_LAYOUT_NCHW | NBP_LAYOUT_NHWC,
     .modes = NBP_MODE_BATCH_STATS | NBP_MODE_RUNNING_STATS | NBP_MODE_RUNNING_UPDATE |
              NBP_MODE_AFFINE | NBP_MODE_PLAIN | NBP_MODE_PARAMS_SAME,
     .reduction = NBP_RED_SEQUENTIAL,
     .flags = NBP_KF_THREADED, /* oneDNN's OpenMP threads */
     .run = onednn_run},
    {.algo = "onednn",
     .isa = "native",
     .layer = NBP_LAYERNORM,
     .directions = ONEDNN_DIRS,
     .dtypes = ONEDNN_DTYPES,
     .layouts = NBP_LAYOUT_NCHW,
     .modes = NBP_MODE_BATCH_STATS | NBP_MODE_AFFINE | NBP_MODE_PLAIN | NBP_MODE_NO_BETA |
              NBP_MODE_PARAMS_SAME,
     .reduction = NBP_RED_SEQUENTIAL,
     .flags = NBP_KF_THREADED, /* oneDNN's OpenMP threads */
     .run = onednn_run},
};

/* The version: oneDNN's own, as the runtime library reports it. */
static char version[96];

static const nbp_plugin plugin = {
    .abi_version = NBP_ABI_VERSION,
    .name = "onednn",
    .version = version,
    .kernels = kernels,
    .kernel_count = sizeof kernels / sizeof kernels[0],
    .kernel_size = sizeof(nbp_kernel),
};

const nbp_plugin *normbench_plugin_init(uint32_t host_abi)
{
    (void)host_abi;
    const dnnl_version_t *dv = dnnl_version();
    snprintf(version, sizeof version, "%d.%d.%d (%.12s, cpu runtime %s)", dv->major, dv->minor,
             dv->patch, dv->hash ? dv->hash : "?",
             dv->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other");
    return &plugin;
}
