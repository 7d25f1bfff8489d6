/* peer_onednn.c: oneDNN (Debian libdnnl-dev, C API dnnl.h) batch and layer
 * normalization registered as peer kernels (`batchnorm/onednn/native/omp`,
 * `layernorm/onednn/native/omp`), so verify, the tests and bench treat them
 * like our own kernels. fp32 only; NCHW and NHWC (and their 1d/3d forms);
 * BatchNorm forward training (batch statistics) and inference (global
 * statistics); LayerNorm forward with statistics written out.
 *
 * What oneDNN does not do is done here, outside any timing-relevant loop:
 * the BatchNorm running-statistics update (O(C), unbiased variance as in
 * PyTorch) and rstd = 1 / sqrt(var + eps) per group (O(groups)). Problems
 * oneDNN cannot express (f64) return NB_ERR_UNSUPPORTED.
 *
 * Primitive creation costs far more than a small execution, so primitives
 * are cached per (shape, layout, flags, eps, thread count); the cache is
 * process-wide, guarded by a mutex and released at exit. */
#include "kernels.h"

#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct onednn_key {
    nb_layer layer;
    nb_layout layout;
    bool training, scale, shift;
    int spatial_rank;
    int64_t n, c, spatial[NB_MAX_SPATIAL];
    float eps;
    int threads;
} onednn_key;

typedef struct onednn_entry {
    bool used;
    onednn_key key;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_t src, dst, mean, var, scale, shift;
    float *mean_buf, *var_buf; /* used when the caller passes no statistics buffers */
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
    dnnl_memory_t *mems[] = {&e->src, &e->dst, &e->mean, &e->var, &e->scale, &e->shift};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (*mems[i])
            dnnl_memory_destroy(*mems[i]);
    if (e->prim)
        dnnl_primitive_destroy(e->prim);
    if (e->pd)
        dnnl_primitive_desc_destroy(e->pd);
    free(e->mean_buf);
    free(e->var_buf);
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

static dnnl_format_tag_t data_tag(int ndims, nb_layout layout)
{
    static const dnnl_format_tag_t cf[6] = {0, 0, dnnl_nc, dnnl_ncw, dnnl_nchw, dnnl_ncdhw};
    static const dnnl_format_tag_t cl[6] = {0, 0, dnnl_nc, dnnl_nwc, dnnl_nhwc, dnnl_ndhwc};
    return layout == NB_NHWC ? cl[ndims] : cf[ndims];
}

static bool mem_1d(dnnl_memory_t *m, int64_t len)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {len};
    return dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_f32, dnnl_a) == dnnl_success &&
           dnnl_memory_create(m, &md, engine, DNNL_MEMORY_NONE) == dnnl_success;
}

/* Build the primitive and memory objects of one key; false if oneDNN
 * rejects it. */
static bool entry_make(onednn_entry *e, const onednn_key *k)
{
    memset(e, 0, sizeof *e);
    e->used = true;
    e->key = *k;
    dnnl_memory_desc_t md;
    dnnl_dims_t dims;
    int64_t nstat;
    if (k->layer == NB_LN) {
        dims[0] = k->n;
        dims[1] = k->c;
        nstat = k->n;
        if (dnnl_memory_desc_init_by_tag(&md, 2, dims, dnnl_f32, dnnl_ab) != dnnl_success)
            return false;
    } else {
        const int nd = 2 + k->spatial_rank;
        dims[0] = k->n;
        dims[1] = k->c;
        for (int i = 0; i < k->spatial_rank; i++)
            dims[2 + i] = k->spatial[i];
        nstat = k->c;
        if (dnnl_memory_desc_init_by_tag(&md, nd, dims, dnnl_f32, data_tag(nd, k->layout)) !=
            dnnl_success)
            return false;
    }
    unsigned flags = (k->scale ? dnnl_use_scale : 0u) | (k->shift ? dnnl_use_shift : 0u);
    dnnl_status_t st;
    if (k->layer == NB_LN) {
        dnnl_layer_normalization_desc_t d;
        st = dnnl_layer_normalization_forward_desc_init(&d, dnnl_forward_training, &md, NULL,
                                                        k->eps, flags);
        if (st == dnnl_success)
            st = dnnl_primitive_desc_create(&e->pd, &d, NULL, engine, NULL);
    } else {
        if (!k->training)
            flags |= dnnl_use_global_stats;
        dnnl_batch_normalization_desc_t d;
        st = dnnl_batch_normalization_forward_desc_init(
            &d, k->training ? dnnl_forward_training : dnnl_forward_inference, &md, k->eps, flags);
        if (st == dnnl_success)
            st = dnnl_primitive_desc_create(&e->pd, &d, NULL, engine, NULL);
    }
    if (st != dnnl_success || dnnl_primitive_create(&e->prim, e->pd) != dnnl_success)
        return false;
    if (dnnl_memory_create(&e->src, &md, engine, DNNL_MEMORY_NONE) != dnnl_success ||
        dnnl_memory_create(&e->dst, &md, engine, DNNL_MEMORY_NONE) != dnnl_success ||
        !mem_1d(&e->mean, nstat) || !mem_1d(&e->var, nstat) || !mem_1d(&e->scale, k->c) ||
        !mem_1d(&e->shift, k->c))
        return false;
    e->mean_buf = malloc((size_t)nstat * sizeof(float));
    e->var_buf = malloc((size_t)nstat * sizeof(float));
    return e->mean_buf && e->var_buf;
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

nb_status nb_onednn_entry(const nb_kernel *kern, const nb_problem *p, const nb_args *a)
{
    (void)kern;
    if (p->dtype != NB_F32)
        return NB_ERR_UNSUPPORTED;
    if (p->layer != NB_BN && p->layer != NB_LN)
        return NB_ERR_UNSUPPORTED;
    onednn_key k;
    memset(&k, 0, sizeof k); /* padding too: the key is compared with memcmp */
    k.layer = p->layer;
    k.layout = p->layer == NB_LN ? NB_NCHW : p->layout;
    k.training = p->layer == NB_LN || p->training;
    k.scale = p->affine;
    k.shift = p->affine && (p->layer == NB_BN || p->has_beta);
    k.spatial_rank = p->layer == NB_LN ? 0 : p->spatial_rank;
    k.n = p->n;
    k.c = p->c;
    for (int i = 0; i < k.spatial_rank; i++)
        k.spatial[i] = p->spatial[i];
    k.eps = (float)p->eps;
    k.threads = nb_get_threads();

    pthread_mutex_lock(&lock);
    nb_status ret = NB_OK;
    onednn_entry *e = engine_ready() ? entry_get(&k) : NULL;
    if (!e) {
        pthread_mutex_unlock(&lock);
        return NB_ERR_UNSUPPORTED;
    }
    const int64_t nstat = p->layer == NB_LN ? p->n : p->c;
    float *mean = a->mean ? (float *)a->mean : e->mean_buf;
    float *var = a->var ? (float *)a->var : e->var_buf;
    const bool global = p->layer == NB_BN && !p->training;
    if (global) {
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
    if (k.scale) {
        dnnl_memory_set_data_handle(e->scale, (void *)a->gamma);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCALE, e->scale};
    }
    if (k.shift) {
        dnnl_memory_set_data_handle(e->shift, (void *)a->beta);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SHIFT, e->shift};
    }
    if (dnnl_primitive_execute(e->prim, stream, nargs, args) != dnnl_success ||
        dnnl_stream_wait(stream) != dnnl_success)
        ret = NB_ERR_UNSUPPORTED;
    pthread_mutex_unlock(&lock);
    if (ret)
        return ret;

    if (a->rstd)
        for (int64_t i = 0; i < nstat; i++)
            ((float *)a->rstd)[i] = (float)(1.0 / sqrt((double)var[i] + p->eps));
    if (p->layer == NB_BN && p->training) {
        /* running = (1 - m) * running + m * batch, running_var unbiased. */
        const double m = nb_running_factor(p);
        const double cnt = (double)p->n * (double)nb_problem_spatial(p);
        float *rm = a->running_mean, *rv = a->running_var;
        for (int64_t c = 0; c < p->c; c++) {
            rm[c] = (float)((1.0 - m) * rm[c] + m * mean[c]);
            rv[c] = (float)((1.0 - m) * rv[c] + m * (double)var[c] * cnt / (cnt - 1.0));
        }
    }
    return NB_OK;
}
