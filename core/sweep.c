/* sweep.c: the named problem sweeps used by `normbench verify` when no
 * problems are given. The default sweep crosses, per layer, a handful of
 * base shapes (odd sizes, singleton and prime dimensions, both layouts and
 * modes) with every data distribution and both dtypes. */
#include "normbench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const bases[] = {
    /* layernorm / rmsnorm: single row, odd widths, a width of 1 */
    "ln:rows7:cols256", "ln:rows3:cols1000:nobeta", "ln:rows5:cols33:noaffine", "ln:rows2:cols1",
    "rms:rows7:cols256", "rms:rows3:cols999", "rms:rows4:cols17:noaffine",
    /* batchnorm: rank 0..3, both layouts, training and inference */
    "bn:n4c8h5w5:nchw:train", "bn:n4c8h5w5:nhwc:train", "bn:n3c5d2h3w3:nchw:train:momnone:nbt4",
    "bn:n2c3l7:nhwc:train:noaffine", "bn:n7c3:train:mom0.3", "bn:n4c8h5w5:nhwc:infer",
    /* instancenorm */
    "in:n3c4h7w7:nchw", "in:n2c5h3w5:nhwc:affine:track", "in:n1c3l17:nchw:track:mom0.2",
    /* groupnorm: G = 1, a non-power-of-two, C/2, C */
    "gn:n2c6h5w5:g3:nchw", "gn:n2c6h5w5:g1:nhwc", "gn:n3c8l9:g4:nchw", "gn:n1c6h4w3:g6:nhwc",
    "gn:n2c12h3w3:g2:nhwc",
};

static const char *const dists[] = {
    "data=normal", "data=offset1e3", "data=sorted3", "data=const2.5", "data=alt7",
    "data=tiny1e-4", "data=huge", "data=subnormal", "data=nan",
};

static const char *const extras[] = {
    /* eps sweep on normal data, including eps = 0 */
    "ln:rows4:cols64:eps0", "ln:rows4:cols64:eps1e-12", "ln:rows4:cols64:eps1e-3", "ln:rows4:cols64:eps1",
    "bn:n3c4h3w3:eps0", "gn:n2c4h3w3:g2:eps1", "rms:rows3:cols50:eps0", "in:n2c3h4w4:eps1e-12",
    /* eps = 0 on constant groups: every group is NaN */
    "ln:rows3:cols16:eps0:data=const1.5", "bn:n2c3h2w2:eps0:data=const-4",
    "gn:n2c4h2w2:g2:nhwc:eps0:data=const3", "in:n2c2h3w3:eps0:data=const0.1",
    /* offset large enough to break the one-pass formula */
    "ln:rows64:cols256:data=offset1e4", "bn:n8c4h8w8:nhwc:data=offset1e4",
    "gn:n2c8h8w8:g4:data=offset1e4", "in:n4c4h8w8:data=offset1e4",
};

/* Build the default sweep: bases x dists x dtypes, then the extras in both
 * dtypes. Returns a malloc'd array of malloc'd strings. */
char **nb_sweep_default(size_t *count)
{
    const size_t nb = sizeof bases / sizeof bases[0], nd = sizeof dists / sizeof dists[0];
    const size_t ne = sizeof extras / sizeof extras[0];
    const size_t total = (nb * nd + ne) * 2;
    char **out = calloc(total, sizeof *out);
    if (!out)
        return NULL;
    size_t k = 0;
    for (int t = 0; t < 2; t++) {
        const char *dt = t ? "f64" : "f32";
        for (size_t b = 0; b < nb; b++)
            for (size_t d = 0; d < nd; d++) {
                size_t len = strlen(bases[b]) + strlen(dists[d]) + 8;
                if (!(out[k] = malloc(len)))
                    goto oom;
                snprintf(out[k++], len, "%s:%s:%s", bases[b], dt, dists[d]);
            }
        for (size_t e = 0; e < ne; e++) {
            size_t len = strlen(extras[e]) + 8;
            if (!(out[k] = malloc(len)))
                goto oom;
            snprintf(out[k++], len, "%s:%s", extras[e], dt);
        }
    }
    *count = k;
    return out;
oom:
    for (size_t i = 0; i < k; i++)
        free(out[i]);
    free(out);
    return NULL;
}

void nb_sweep_free(char **s, size_t count)
{
    for (size_t i = 0; s && i < count; i++)
        free(s[i]);
    free(s);
}
