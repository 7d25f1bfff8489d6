/* sets.c: the named problem sets of `normbench bench --set NAME`: a CI
 * smoke set, model-derived shape sets (ResNet-50 BatchNorm, transformer
 * LayerNorm/RMSNorm, Stable-Diffusion GroupNorm, style-transfer
 * InstanceNorm), the performance-target shapes of issue 4, the backward
 * sets of issue 11, and `full` (every set but the quick ones, deduplicated
 * by the caller). All fp32. The
 * problems are data: the built-in lists inputs/bench-NAME.txt. */
#include "bench.h"

#include <string.h>

static const nb_problem_set sets[] = {
    {"quick", "CI smoke set: one small shape per layer and layout (runs in well under 2 minutes)",
     "bench-quick"},
    {"targets",
     "issue 4 performance-target shapes (LN/RMS 4096x4096 and 8192x768, BN "
     "n32c64h56w56 nchw+nhwc, GN g32 n8c256h56w56, IN n32c64h56w56)",
     "bench-targets"},
    {"resnet50-bn", "ResNet-50 BatchNorm shapes at minibatch 32, nchw and nhwc",
     "bench-resnet50-bn"},
    {"transformer-ln", "LayerNorm and RMSNorm, widths 768/1024/4096 over 512..8192 rows",
     "bench-transformer-ln"},
    {"sd-gn", "Stable-Diffusion-like GroupNorm G=32, C 128..1280, spatial 16..64", "bench-sd-gn"},
    {"in", "style-transfer InstanceNorm shapes", "bench-in"},
    {"bwd-quick", "backward smoke set: the quick shapes of each layer with bwd", "bench-bwd-quick"},
    {"bwd-targets",
     "issue 11 backward targets (LN 8192x768 bwd and bwd_d, BN n32c64h56w56 train bwd nchw+nhwc)",
     "bench-bwd-targets"},
    {"full", "every set above except the two quick ones", NULL},
};

size_t nb_set_count(void)
{
    return sizeof sets / sizeof sets[0];
}
const nb_problem_set *nb_set_at(size_t i)
{
    return i < nb_set_count() ? &sets[i] : NULL;
}

const nb_problem_set *nb_set_find(const char *name)
{
    for (size_t i = 0; i < nb_set_count(); i++)
        if (!strcmp(sets[i].name, name))
            return &sets[i];
    return NULL;
}
