/* sets.c: the named problem sets of `normbench bench --set NAME`: a CI
 * smoke set, model-derived shape sets (ResNet-50 BatchNorm, transformer
 * LayerNorm/RMSNorm, Stable-Diffusion GroupNorm, style-transfer
 * InstanceNorm), the performance-target shapes of issue 4, and `full` (every
 * set but quick, deduplicated by the caller). All fp32 forward. */
#include "bench.h"

#include <string.h>

static const char *const quick[] = {
    "ln:rows1024:cols768:eps1e-5:f32",
    "rms:rows1024:cols768:eps1e-5:f32",
    "bn:n8c64h28w28:nchw:train:eps1e-5:f32",
    "bn:n8c64h28w28:nhwc:train:eps1e-5:f32",
    "gn:n2c256h28w28:g32:nchw:eps1e-5:f32",
    "in:n8c64h28w28:nchw:eps1e-5:f32",
    NULL};

/* ResNet-50 at minibatch 32: every BatchNorm input shape of the network. */
static const char *const resnet50_bn[] = {
    "bn:n32c64h112w112:nchw:train:eps1e-5:f32",  "bn:n32c64h112w112:nhwc:train:eps1e-5:f32",
    "bn:n32c64h56w56:nchw:train:eps1e-5:f32",    "bn:n32c64h56w56:nhwc:train:eps1e-5:f32",
    "bn:n32c256h56w56:nchw:train:eps1e-5:f32",   "bn:n32c256h56w56:nhwc:train:eps1e-5:f32",
    "bn:n32c512h28w28:nchw:train:eps1e-5:f32",   "bn:n32c512h28w28:nhwc:train:eps1e-5:f32",
    "bn:n32c1024h14w14:nchw:train:eps1e-5:f32",  "bn:n32c1024h14w14:nhwc:train:eps1e-5:f32",
    "bn:n32c2048h7w7:nchw:train:eps1e-5:f32",    "bn:n32c2048h7w7:nhwc:train:eps1e-5:f32",
    "bn:n32c256h56w56:nchw:infer:eps1e-5:f32",   "bn:n32c256h56w56:nhwc:infer:eps1e-5:f32",
    NULL};

/* BERT-base/large and LLaMA-like widths over 512..8192 tokens. */
static const char *const transformer_ln[] = {
    "ln:rows512:cols768:eps1e-5:f32",    "ln:rows2048:cols768:eps1e-5:f32",
    "ln:rows8192:cols768:eps1e-5:f32",   "ln:rows512:cols1024:eps1e-5:f32",
    "ln:rows2048:cols1024:eps1e-5:f32",  "ln:rows8192:cols1024:eps1e-5:f32",
    "ln:rows512:cols4096:eps1e-5:f32",   "ln:rows2048:cols4096:eps1e-5:f32",
    "ln:rows8192:cols4096:eps1e-5:f32",  "rms:rows512:cols768:eps1e-5:f32",
    "rms:rows2048:cols768:eps1e-5:f32",  "rms:rows8192:cols768:eps1e-5:f32",
    "rms:rows512:cols1024:eps1e-5:f32",  "rms:rows2048:cols1024:eps1e-5:f32",
    "rms:rows8192:cols1024:eps1e-5:f32", "rms:rows512:cols4096:eps1e-5:f32",
    "rms:rows2048:cols4096:eps1e-5:f32", "rms:rows8192:cols4096:eps1e-5:f32",
    NULL};

/* Stable-Diffusion UNet/VAE GroupNorm (G=32) at batch 2. */
static const char *const sd_gn[] = {
    "gn:n2c128h64w64:g32:nchw:eps1e-5:f32",  "gn:n2c128h64w64:g32:nhwc:eps1e-5:f32",
    "gn:n2c320h64w64:g32:nchw:eps1e-5:f32",  "gn:n2c320h64w64:g32:nhwc:eps1e-5:f32",
    "gn:n2c640h32w32:g32:nchw:eps1e-5:f32",  "gn:n2c640h32w32:g32:nhwc:eps1e-5:f32",
    "gn:n2c1280h16w16:g32:nchw:eps1e-5:f32", "gn:n2c1280h16w16:g32:nhwc:eps1e-5:f32",
    "gn:n2c1280h32w32:g32:nchw:eps1e-5:f32", "gn:n2c1280h32w32:g32:nhwc:eps1e-5:f32",
    NULL};

/* Fast style transfer (Johnson et al.) InstanceNorm layers at batch 4. */
static const char *const in_set[] = {
    "in:n4c32h256w256:nchw:eps1e-5:f32", "in:n4c32h256w256:nhwc:eps1e-5:f32",
    "in:n4c64h128w128:nchw:eps1e-5:f32", "in:n4c64h128w128:nhwc:eps1e-5:f32",
    "in:n4c128h64w64:nchw:eps1e-5:f32",  "in:n4c128h64w64:nhwc:eps1e-5:f32",
    NULL};

/* Issue 4's performance targets (DRAM-sized: over 48 MiB of traffic). */
static const char *const targets[] = {
    "ln:rows4096:cols4096:eps1e-5:f32",       "ln:rows8192:cols768:eps1e-5:f32",
    "rms:rows4096:cols4096:eps1e-5:f32",      "rms:rows8192:cols768:eps1e-5:f32",
    "bn:n32c64h56w56:nchw:train:eps1e-5:f32", "bn:n32c64h56w56:nhwc:train:eps1e-5:f32",
    "gn:n8c256h56w56:g32:nchw:eps1e-5:f32",   "in:n32c64h56w56:nchw:eps1e-5:f32",
    NULL};

static const char *const empty[] = {NULL};

static const nb_problem_set sets[] = {
    {"quick", "CI smoke set: one small shape per layer and layout (runs in well under 2 minutes)",
     quick},
    {"targets", "issue 4 performance-target shapes (LN/RMS 4096x4096 and 8192x768, BN "
                "n32c64h56w56 nchw+nhwc, GN g32 n8c256h56w56, IN n32c64h56w56)",
     targets},
    {"resnet50-bn", "ResNet-50 BatchNorm shapes at minibatch 32, nchw and nhwc", resnet50_bn},
    {"transformer-ln", "LayerNorm and RMSNorm, widths 768/1024/4096 over 512..8192 rows",
     transformer_ln},
    {"sd-gn", "Stable-Diffusion-like GroupNorm G=32, C 128..1280, spatial 16..64", sd_gn},
    {"in", "style-transfer InstanceNorm shapes", in_set},
    {"full", "every set above except quick", empty},
};

size_t nb_set_count(void) { return sizeof sets / sizeof sets[0]; }
const nb_problem_set *nb_set_at(size_t i) { return i < nb_set_count() ? &sets[i] : NULL; }

const nb_problem_set *nb_set_find(const char *name)
{
    for (size_t i = 0; i < nb_set_count(); i++)
        if (!strcmp(sets[i].name, name))
            return &sets[i];
    return NULL;
}
