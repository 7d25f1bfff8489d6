/* plugin.c: the plug-in loader (docs/DESIGN.md section 9): dlopen a shared
 * library, call its normbench_plugin_init, check the ABI version and every
 * kernel descriptor, and register the kernels as
 * `<plugin>:<layer>/<algo>/<isa>` after the built-in ones in the one kernel
 * registry (impls/registry.c asks nb_plugin_kernel_count/_at); and the entry
 * every plug-in kernel runs through, which turns a problem and its nb_args
 * into the plain-C call of include/normbench_plugin.h. */
#include "nb_plugin.h"
#include "normbench_plugin.h"

#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The ABI's enums are normbench's values: checked here once. */
#define SAME(a, b) ((int)(a) == (int)(b))
_Static_assert(SAME(NBP_BATCHNORM, NB_BN) && SAME(NBP_INSTANCENORM, NB_IN) &&
                   SAME(NBP_LAYERNORM, NB_LN) && SAME(NBP_GROUPNORM, NB_GN) &&
                   SAME(NBP_RMSNORM, NB_RMS) && SAME(NBP_LAYER_COUNT, NB_LAYER_COUNT),
               "plug-in layers are normbench's");
_Static_assert(SAME(NBP_F32, NB_F32) && SAME(NBP_F64, NB_F64) && SAME(NBP_BF16, NB_BF16) &&
                   SAME(NBP_F16, NB_F16),
               "plug-in dtypes are normbench's");
_Static_assert(SAME(NBP_FWD, NB_FWD) && SAME(NBP_BWD, NB_BWD) && SAME(NBP_BWD_D, NB_BWD_D),
               "plug-in directions are normbench's");
_Static_assert(SAME(NBP_NCHW, NB_NCHW) && SAME(NBP_NHWC, NB_NHWC),
               "plug-in layouts are normbench's");

#define TOKEN_MAX 31
#define MAX_PLUGINS 64
#define MAX_KERNELS_PER_PLUGIN 4096

typedef struct plugin {
    char *path;
    char name[TOKEN_MAX + 1];
    char version[64];
    void *handle;
} plugin;

/* A registered plug-in kernel: the registry's record first, so the entry
 * finds its descriptor from the nb_kernel pointer it is given. */
typedef struct plugin_kernel {
    nb_kernel k;
    nbp_kernel desc;
    const plugin *owner;
    char name[2 * TOKEN_MAX + 32];
    char algo[TOKEN_MAX + 1], isa[TOKEN_MAX + 1];
    char *ws_region; /* guard page, data pages, guard page (workspace_get) */
    size_t ws_region_bytes;
    void *workspace; /* in the region, ending within 63 bytes of its last guard */
    size_t workspace_bytes;
} plugin_kernel;

static plugin *plugins[MAX_PLUGINS];
static size_t nplugins;
static plugin_kernel **kernels; /* every plug-in's, in load order */
static size_t nkernels;

static nb_status plugin_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a);

static const plugin_kernel *as_plugin_kernel(const nb_kernel *k)
{
    return k && k->fn == plugin_entry ? (const plugin_kernel *)k : NULL;
}

size_t nb_plugin_count(void)
{
    return nplugins;
}

size_t nb_plugin_kernel_count(void)
{
    return nkernels;
}

const nb_kernel *nb_plugin_kernel_at(size_t i)
{
    return i < nkernels ? &kernels[i]->k : NULL;
}

const char *nb_plugin_kernel_algo(const nb_kernel *k)
{
    const plugin_kernel *pk = as_plugin_kernel(k);
    return pk ? pk->algo : NULL;
}

const char *nb_plugin_kernel_isa(const nb_kernel *k)
{
    const plugin_kernel *pk = as_plugin_kernel(k);
    return pk ? pk->isa : NULL;
}

const char *nb_plugin_version(const char *name)
{
    for (size_t i = 0; i < nplugins; i++)
        if (!strcmp(plugins[i]->name, name))
            return plugins[i]->version;
    return NULL;
}

const char *nb_kernel_plugin(const nb_kernel *k)
{
    const plugin_kernel *pk = as_plugin_kernel(k);
    return pk ? pk->owner->name : NULL;
}

const char *nb_kernel_plugin_path(const nb_kernel *k)
{
    const plugin_kernel *pk = as_plugin_kernel(k);
    return pk ? pk->owner->path : NULL;
}

bool nb_plugin_kernel_skips_stats(const nb_kernel *k)
{
    const plugin_kernel *pk = as_plugin_kernel(k);
    return pk && (pk->desc.flags & NBP_KF_NO_STATS);
}

bool nb_plugin_kernel_skips_var(const nb_kernel *k)
{
    const plugin_kernel *pk = as_plugin_kernel(k);
    return pk && (pk->desc.flags & NBP_KF_NO_VAR);
}

/* ---- validation ------------------------------------------------------------ */

static nb_status load_error(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static nb_status load_error(char *err, size_t len, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return NB_ERR_PLUGIN;
}

/* A name token: 1..31 characters of [a-z0-9_.+-], plus upper case when
 * upper (plug-in names). */
static bool valid_token(const char *s, bool upper)
{
    if (!s || !*s || strlen(s) > TOKEN_MAX)
        return false;
    for (; *s; s++) {
        const char c = *s;
        const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                        c == '-' || (c == '+' && !upper) || (upper && c >= 'A' && c <= 'Z');
        if (!ok)
            return false;
    }
    return true;
}

/* Why descriptor d is impossible, or NULL when it is fine. */
static const char *descriptor_problem(const nbp_kernel *d)
{
    const uint32_t dirs = NBP_DIR_FWD | NBP_DIR_BWD | NBP_DIR_BWD_D;
    if (!valid_token(d->algo, false))
        return "algo is not a token of 1-31 characters [a-z0-9_.+-]";
    if (!valid_token(d->isa, false))
        return "isa is not a token of 1-31 characters [a-z0-9_.+-]";
    if (d->layer < 0 || d->layer >= NBP_LAYER_COUNT)
        return "layer is not one of enum nbp_layer";
    if (!d->directions || (d->directions & ~dirs))
        return "directions is empty or has bits of no direction";
    if (!d->dtypes ||
        (d->dtypes & ~(NBP_DTYPE_F32 | NBP_DTYPE_F64 | NBP_DTYPE_BF16 | NBP_DTYPE_F16)))
        return "dtypes is empty or has bits of no dtype";
    if (!d->layouts || (d->layouts & ~(NBP_LAYOUT_NCHW | NBP_LAYOUT_NHWC)))
        return "layouts is empty or has bits of no layout";
    if ((d->layer == NBP_LAYERNORM || d->layer == NBP_RMSNORM) && !(d->layouts & NBP_LAYOUT_NCHW))
        return "layernorm and rmsnorm are rows x cols: layouts must hold NBP_LAYOUT_NCHW";
    if (!d->modes || (d->modes & ~NBP_MODES_ALL))
        return "modes is empty or has bits of no mode";
    if (d->reduction < NBP_RED_UNKNOWN || d->reduction > NBP_RED_LANES)
        return "reduction is not one of enum nbp_reduction";
    if ((d->reduction == NBP_RED_BLOCKED || d->reduction == NBP_RED_LANES) && d->block < 1)
        return "a blocked or lane-striped reduction needs block >= 1";
    if (d->flags & ~NBP_KF_ALL)
        return "flags has bits of no flag";
    if (!d->run)
        return "run (the entry point) is NULL";
    return NULL;
}

/* ---- registration ------------------------------------------------------------ */

static nb_reduction reduction_of(int32_t r)
{
    switch (r) {
    case NBP_RED_PAIRWISE: return NB_RED_PAIRWISE;
    case NBP_RED_BLOCKED: return NB_RED_BLOCKED;
    case NBP_RED_LANES: return NB_RED_LANES;
    default: return NB_RED_SEQUENTIAL; /* unknown: the loosest bound */
    }
}

static unsigned flags_of(uint32_t f)
{
    return ((f & NBP_KF_DETERMINISTIC) ? NB_KF_DETERMINISTIC : 0u) |
           ((f & NBP_KF_NEGATIVE_CONTROL) ? NB_KF_NEGATIVE_CONTROL : 0u) |
           ((f & NBP_KF_PRESCALED) ? NB_KF_PRESCALED : 0u);
}

/* Fill pk from descriptor d of plug-in owner (d already valid). */
static void kernel_make(plugin_kernel *pk, const nbp_kernel *d, const plugin *owner)
{
    pk->desc = *d;
    pk->owner = owner;
    snprintf(pk->algo, sizeof pk->algo, "%s", d->algo);
    snprintf(pk->isa, sizeof pk->isa, "%s", d->isa);
    snprintf(pk->name, sizeof pk->name, "%s:%s/%s/%s", owner->name,
             nb_layer_name((nb_layer)d->layer), d->algo, d->isa);
    pk->k = (nb_kernel){.name = pk->name,
                        .layer = (nb_layer)d->layer,
                        .algo = NB_ALGO_PLUGIN,
                        .isa = NB_ISA_NATIVE,
                        .omp = (d->flags & NBP_KF_THREADED) != 0,
                        .reduction = reduction_of(d->reduction),
                        .block = d->block,
                        .flags = flags_of(d->flags),
                        .dtypes = d->dtypes,
                        .directions = d->directions,
                        .fn = plugin_entry};
}

/* Read, check and build the kernels of info into *out (count of them). */
static nb_status kernels_make(const nbp_plugin *info, const plugin *owner, plugin_kernel **out,
                              char *err, size_t len)
{
    const size_t min_size = offsetof(nbp_kernel, run) + sizeof(nbp_kernel_fn);
    if (info->kernel_count < 1 || info->kernel_count > MAX_KERNELS_PER_PLUGIN || !info->kernels)
        return load_error(err, len, "declares %zu kernels (1 to %d, and a table)",
                          info->kernel_count, MAX_KERNELS_PER_PLUGIN);
    if (info->kernel_size < min_size || info->kernel_size > 65536)
        return load_error(err, len, "kernel_size %zu is not a descriptor's size (ABI 1.0: %zu)",
                          info->kernel_size, sizeof(nbp_kernel));
    plugin_kernel *pk = calloc(info->kernel_count, sizeof *pk);
    if (!pk)
        return load_error(err, len, "out of memory");
    for (size_t i = 0; i < info->kernel_count; i++) {
        nbp_kernel d = {0}; /* fields a descriptor of an older minor lacks stay zero */
        const size_t n = info->kernel_size < sizeof d ? info->kernel_size : sizeof d;
        memcpy(&d, (const char *)info->kernels + i * info->kernel_size, n);
        const char *why = descriptor_problem(&d);
        if (why) {
            free(pk);
            return load_error(err, len, "kernel %zu: %s", i, why);
        }
        kernel_make(&pk[i], &d, owner);
        /* names are unique across plug-ins (their names are) and across
         * built-in kernels (which have no ':'): within the plug-in then */
        bool twice = false;
        for (size_t j = 0; j < i && !twice; j++)
            twice = !strcmp(pk[j].name, pk[i].name);
        if (twice) {
            load_error(err, len, "kernel %zu: the name %s is declared twice", i, pk[i].name);
            free(pk);
            return NB_ERR_PLUGIN;
        }
    }
    *out = pk;
    return NB_OK;
}

/* Check the ABI version and the plug-in's name. */
static nb_status info_check(const nbp_plugin *info, char *err, size_t len)
{
    const uint32_t v = info->abi_version;
    if (NBP_ABI_MAJOR_OF(v) != NBP_ABI_MAJOR || NBP_ABI_MINOR_OF(v) > NBP_ABI_MINOR)
        return load_error(err, len,
                          "built against plug-in ABI %u.%u, this normbench has %u.%u (%s)",
                          NBP_ABI_MAJOR_OF(v), NBP_ABI_MINOR_OF(v), NBP_ABI_MAJOR, NBP_ABI_MINOR,
                          NBP_ABI_MAJOR_OF(v) != NBP_ABI_MAJOR ? "the major versions differ"
                                                               : "a newer minor version");
    if (!valid_token(info->name, true) || strchr(info->name, '+'))
        return load_error(err, len, "its name is not 1-31 characters [A-Za-z0-9_.-]");
    for (size_t i = 0; i < nplugins; i++)
        if (!strcmp(plugins[i]->name, info->name))
            return load_error(err, len, "a plug-in named %s is loaded already (from %s)",
                              info->name, plugins[i]->path);
    return NB_OK;
}

/* Append plug-in pl and its n kernels pk to the registry. */
static nb_status register_plugin(plugin *pl, plugin_kernel *pk, size_t n, char *err, size_t len)
{
    plugin_kernel **grown = realloc(kernels, (nkernels + n) * sizeof *grown);
    if (!grown || nplugins == MAX_PLUGINS) {
        if (grown)
            kernels = grown;
        return load_error(err, len,
                          nplugins == MAX_PLUGINS ? "more than %d plug-ins"
                                                  : "out of memory (%d plug-ins)",
                          MAX_PLUGINS);
    }
    kernels = grown;
    for (size_t i = 0; i < n; i++)
        kernels[nkernels++] = &pk[i];
    plugins[nplugins++] = pl;
    return NB_OK;
}

nb_status nb_plugin_add(const nbp_plugin *info, const char *path, void *handle, char *err,
                        size_t len)
{
    if (err && len)
        err[0] = 0;
    nb_status st = info_check(info, err, len);
    if (st)
        return st;
    plugin *pl = calloc(1, sizeof *pl);
    char *copy = strdup(path ? path : "");
    if (!pl || !copy) {
        free(pl);
        free(copy);
        return load_error(err, len, "out of memory");
    }
    *pl = (plugin){.path = copy, .handle = handle};
    snprintf(pl->name, sizeof pl->name, "%s", info->name);
    snprintf(pl->version, sizeof pl->version, "%s", info->version ? info->version : "");
    plugin_kernel *pk = NULL;
    st = kernels_make(info, pl, &pk, err, len);
    if (!st && (st = register_plugin(pl, pk, info->kernel_count, err, len)))
        free(pk);
    if (st) {
        free(pl->path);
        free(pl);
    }
    return st;
}

/* The plug-in's description from its init symbol, or NULL (err set). */
static const nbp_plugin *plugin_info(void *handle, char *err, size_t len)
{
    typedef const nbp_plugin *(*init_fn)(uint32_t);
    init_fn init;
    void *sym = dlsym(handle, NBP_INIT_SYMBOL);
    memcpy(&init, &sym, sizeof init); /* object to function pointer, as POSIX allows */
    if (!sym) {
        load_error(err, len, "does not export " NBP_INIT_SYMBOL " (not a normbench plug-in)");
        return NULL;
    }
    const nbp_plugin *info = init(NBP_ABI_VERSION);
    if (!info)
        load_error(err, len, NBP_INIT_SYMBOL " returned NULL (the plug-in refused to load)");
    return info;
}

nb_status nb_plugin_load(const char *path, char *err, size_t len)
{
    return nb_plugin_load_from(path, false, NULL, err, len);
}

/* Whether info asks to be loaded only when named (ABI 1.1 and later: an
 * older plug-in's struct ends before flags). */
static bool on_request_only(const nbp_plugin *info)
{
    return NBP_ABI_MINOR_OF(info->abi_version) >= 1 && (info->flags & NBP_PF_ON_REQUEST);
}

nb_status nb_plugin_load_from(const char *path, bool from_default, bool *skipped, char *err,
                              size_t len)
{
    if (skipped)
        *skipped = false;
    if (err && len)
        err[0] = 0;
    if (!path || !*path)
        return load_error(err, len, "empty plug-in path");
    /* dlopen searches the library path for a name without a slash */
    char where[4096];
    snprintf(where, sizeof where, "%s%s", strchr(path, '/') ? "" : "./", path);
    void *handle = dlopen(where, RTLD_NOW | RTLD_LOCAL);
    if (!handle)
        return load_error(err, len, "cannot load: %s", dlerror());
    const nbp_plugin *info = plugin_info(handle, err, len);
    if (info && from_default && NBP_ABI_MAJOR_OF(info->abi_version) == NBP_ABI_MAJOR &&
        on_request_only(info)) {
        dlclose(handle);
        if (skipped)
            *skipped = true;
        return NB_OK;
    }
    const nb_status st = info ? nb_plugin_add(info, path, handle, err, len) : NB_ERR_PLUGIN;
    if (st)
        dlclose(handle);
    return st;
}

/* ---- the call ---------------------------------------------------------------- */

/* The NBP_MODE_* bits of problem p. */
static uint32_t problem_modes(const nb_problem *p)
{
    uint32_t m = nb_problem_uses_batch_stats(p) ? NBP_MODE_BATCH_STATS : NBP_MODE_RUNNING_STATS;
    if (nb_problem_has_running(p) && nb_problem_uses_batch_stats(p))
        m |= NBP_MODE_RUNNING_UPDATE;
    if (!p->affine)
        return m | NBP_MODE_PLAIN;
    m |= NBP_MODE_AFFINE;
    if (p->layer == NB_LN && !p->has_beta)
        m |= NBP_MODE_NO_BETA;
    if (nb_dtype_is_half(p->dtype) && p->params == NB_PARAMS_SAME)
        m |= NBP_MODE_PARAMS_SAME;
    if (nb_dtype_is_half(p->dtype) && p->rounding == NB_ROUND_BEFORE_GAMMA)
        m |= NBP_MODE_ROUND_BEFORE_GAMMA;
    return m;
}

/* Element strides of n, c and each spatial dimension (ln/rms: row, col). */
static void problem_strides(const nb_problem *p, int64_t st[5])
{
    const int64_t C = p->c, S = nb_problem_spatial(p);
    const bool nhwc = p->layout == NB_NHWC;
    memset(st, 0, 5 * sizeof *st);
    st[0] = C * S;
    st[1] = nhwc ? 1 : S;
    int64_t inner = nhwc ? C : 1;
    for (int k = p->spatial_rank - 1; k >= 0; k--) {
        st[2 + k] = inner;
        inner *= p->spatial[k];
    }
}

static void problem_make(const nb_problem *p, nbp_problem *q)
{
    memset(q, 0, sizeof *q);
    q->size = sizeof *q;
    q->layer = (int32_t)p->layer;
    q->dtype = (int32_t)p->dtype;
    q->direction = (int32_t)p->dir;
    q->layout = (int32_t)p->layout;
    q->n = p->n;
    q->c = p->c;
    q->spatial_rank = p->spatial_rank;
    memcpy(q->spatial, p->spatial, sizeof q->spatial);
    q->groups = p->layer == NB_GN ? p->groups : 0;
    q->numel = nb_problem_numel(p);
    q->stat_count = nb_problem_stat_count(p);
    q->group_size = nb_problem_group_size(p);
    q->param_count = nb_problem_param_count(p);
    problem_strides(p, q->x_strides);
    q->eps = nb_problem_eps_added(p);
    q->momentum = p->momentum_none ? 1.0 / (double)p->num_batches_tracked : p->momentum;
    q->modes = problem_modes(p);
    q->threads = nb_get_threads();
}

static void buffers_make(const nb_args *a, bool stats, bool var, nbp_buffers *b)
{
    *b = (nbp_buffers){.size = sizeof *b,
                       .x = a->x,
                       .y = a->y,
                       .gamma = a->gamma,
                       .beta = a->beta,
                       .mean = a->mean,
                       /* backward: the saved var is an input (given when the
                          caller has it, NO_VAR or not) */
                       .var = (stats && var) || a->dy ? a->var : NULL,
                       .rstd = a->rstd,
                       .running_mean = a->running_mean,
                       .running_var = a->running_var,
                       .dy = a->dy,
                       .dx = a->dx,
                       .dgamma = a->dgamma,
                       .dbeta = a->dbeta};
    if (!stats && !a->dy) /* forward statistics are outputs the kernel does not write */
        b->mean = b->rstd = NULL;
}

/* The workspace of the call running now, for the fault handler of an
 * isolated call (nb_plugin_workspace_fault); set before the kernel runs. */
static const plugin_kernel *volatile ws_current;

static void workspace_release(plugin_kernel *pk)
{
    if (pk->ws_region)
        munmap(pk->ws_region, pk->ws_region_bytes);
    pk->ws_region = NULL;
    pk->workspace = NULL;
    pk->workspace_bytes = 0;
}

/* The kernel's workspace of bytes, between two inaccessible pages: 64-byte
 * aligned and ending within 63 bytes of the page after it, so a read or
 * write past its end (or before its start) faults and, in an isolated
 * call, is named. Kept for the next call of the same size. */
static nb_status workspace_get(plugin_kernel *pk, size_t bytes)
{
    if (pk->ws_region && bytes == pk->workspace_bytes)
        return NB_OK;
    workspace_release(pk);
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), held = (bytes + 63) / 64 * 64;
    const size_t data_pages = (held + page - 1) / page;
    const size_t region_bytes = (data_pages + 2) * page;
    char *m = mmap(NULL, region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NB_ERR_NOMEM;
    if (mprotect(m, page, PROT_NONE) || mprotect(m + page + data_pages * page, page, PROT_NONE)) {
        munmap(m, region_bytes);
        return NB_ERR_NOMEM;
    }
    pk->ws_region = m;
    pk->ws_region_bytes = region_bytes;
    pk->workspace = m + page + data_pages * page - held;
    pk->workspace_bytes = bytes;
    return NB_OK;
}

bool nb_plugin_workspace_fault(const void *addr, bool *after, intptr_t *distance)
{
    const plugin_kernel *pk = ws_current;
    const char *a = addr;
    if (!pk || !pk->ws_region || a < pk->ws_region || a >= pk->ws_region + pk->ws_region_bytes)
        return false;
    const char *w = pk->workspace;
    *after = a >= w + pk->workspace_bytes;
    *distance = *after ? a - (w + pk->workspace_bytes) : w - a;
    return true;
}

static nb_status plugin_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    plugin_kernel *pk = (plugin_kernel *)as_plugin_kernel(k);
    nbp_problem q;
    problem_make(p, &q);
    if (!(pk->desc.layouts & (1u << p->layout)) || (q.modes & ~pk->desc.modes))
        return NB_ERR_UNSUPPORTED;
    nbp_buffers b;
    buffers_make(a, !(pk->desc.flags & NBP_KF_NO_STATS), !(pk->desc.flags & NBP_KF_NO_VAR), &b);
    if (pk->desc.workspace) {
        const size_t bytes = pk->desc.workspace(&q, pk->desc.user);
        if (bytes && workspace_get(pk, bytes))
            return NB_ERR_NOMEM;
        b.workspace = bytes ? pk->workspace : NULL;
        b.workspace_bytes = bytes;
    }
    ws_current = pk;
    const int rc = pk->desc.run(&q, &b, pk->desc.user);
    ws_current = NULL;
    return rc == NBP_OK ? NB_OK : rc == NBP_UNSUPPORTED ? NB_ERR_UNSUPPORTED : NB_ERR_KERNEL;
}

/* ---- statistics a kernel does not write --------------------------------------- */

static void put_value(void *buf, nb_dtype t, int64_t i, double v)
{
    if (t == NB_F32)
        ((float *)buf)[i] = (float)v;
    else
        ((double *)buf)[i] = v;
}

void nb_plugin_fill_var(nb_data *d, const nb_ref *r)
{
    for (int64_t g = 0; g < r->groups; g++)
        put_value(d->var, nb_problem_stat_dtype(&d->prob), g, r->var[g].hi + r->var[g].lo);
}

void nb_plugin_fill_stats(nb_data *d, const nb_ref *r)
{
    const nb_dtype t = nb_problem_stat_dtype(&d->prob); /* f32 for bf16/f16 */
    for (int64_t g = 0; g < r->groups; g++) {
        put_value(d->mean, t, g, r->mean[g].hi + r->mean[g].lo);
        put_value(d->var, t, g, r->var[g].hi + r->var[g].lo);
        put_value(d->rstd, t, g, r->rstd[g].hi + r->rstd[g].lo);
    }
}
