/* minimal.c: the smallest useful normbench plug-in, to copy and start from.
 * One LayerNorm kernel (forward, f32 and f64, with or without gamma/beta):
 * a shifted two-pass mean and variance in double, one row at a time.
 * Build: cc -O2 -fPIC -shared minimal.c -o minimal.so $(pkg-config --cflags
 * normbench-plugin) (meson builds it as build/examples/plugin-minimal/minimal.so).
 * Use: normbench verify --plugin minimal.so --kernels 'minimal:*'
 * It registers `minimal:layernorm/twopass/scalar`. */
#include <math.h>
#include <normbench_plugin.h>

static double load(const void *a, int dtype, int64_t i)
{
    return dtype == NBP_F32 ? ((const float *)a)[i] : ((const double *)a)[i];
}

static void store(void *a, int dtype, int64_t i, double v)
{
    if (dtype == NBP_F32)
        ((float *)a)[i] = (float)v;
    else
        ((double *)a)[i] = v;
}

/* The entry: rows are p->n, columns p->c; x_strides[0] is the row stride. */
static int layernorm(const nbp_problem *p, const nbp_buffers *b, void *user)
{
    (void)user;
    const int dt = p->dtype;
    for (int64_t r = 0; r < p->n; r++) {
        const int64_t row = r * p->x_strides[0], m = p->c;
        const double shift = load(b->x, dt, row); /* exact var 0 on a constant row */
        double sum = 0, sq = 0;
        for (int64_t j = 0; j < m; j++)
            sum += load(b->x, dt, row + j) - shift;
        const double mean = shift + sum / (double)m;
        for (int64_t j = 0; j < m; j++) {
            const double d = load(b->x, dt, row + j) - mean;
            sq += d * d;
        }
        const double var = sq / (double)m, rstd = 1.0 / sqrt(var + p->eps);
        for (int64_t j = 0; j < m; j++) {
            double y = (load(b->x, dt, row + j) - mean) * rstd;
            if (b->gamma)
                y = y * load(b->gamma, dt, j) + (b->beta ? load(b->beta, dt, j) : 0.0);
            store(b->y, dt, row + j, y);
        }
        if (b->mean) { /* the statistics are optional outputs */
            store(b->mean, dt, r, mean);
            store(b->var, dt, r, var);
            store(b->rstd, dt, r, rstd);
        }
    }
    return NBP_OK;
}

static const nbp_kernel kernels[] = {{
    .algo = "twopass",
    .isa = "scalar",
    .layer = NBP_LAYERNORM,
    .directions = NBP_DIR_FWD,
    .dtypes = NBP_DTYPE_F32 | NBP_DTYPE_F64,
    .layouts = NBP_LAYOUT_NCHW,
    .modes = NBP_MODE_BATCH_STATS | NBP_MODE_AFFINE | NBP_MODE_PLAIN | NBP_MODE_NO_BETA,
    .reduction = NBP_RED_SEQUENTIAL,
    .flags = NBP_KF_DETERMINISTIC,
    .run = layernorm,
}};

static const nbp_plugin plugin = {
    .abi_version = NBP_ABI_VERSION,
    .name = "minimal",
    .version = "1.0",
    .kernels = kernels,
    .kernel_count = 1,
    .kernel_size = sizeof(nbp_kernel),
};

const nbp_plugin *normbench_plugin_init(uint32_t host_abi)
{
    (void)host_abi;
    return &plugin;
}
