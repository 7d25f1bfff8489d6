/* dispatch.c: the `<layer>/default/auto` kernels. Each call picks the best
 * variant this CPU runs, honouring the NORMBENCH_ISA cap (through
 * nb_kernel_available): the shifted, prescaled two-pass algorithm at the
 * highest available ISA (avx512, avx2, neon, else the portable one-lane
 * build), in its /omp form so the result is the same at every thread count.
 * nb_default_resolve is also used by nb_kernel_depth, so the tolerance of a
 * default kernel is that of the kernel it actually runs. */
#include "kernels.h"

#include <stdio.h>

const nb_kernel *nb_default_resolve(const nb_kernel *k)
{
    static const char *const order[] = {"avx512", "avx2", "neon", "scalar"};
    if (!k)
        return NULL;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s/twopass/%s/omp", nb_layer_name(k->layer), order[i]);
        const nb_kernel *r = nb_kernel_find(name);
        if (r && r != k && nb_kernel_available(r))
            return r;
    }
    return NULL;
}

nb_status nb_default_entry(const nb_kernel *k, const nb_problem *p, const nb_args *a)
{
    const nb_kernel *r = nb_default_resolve(k);
    if (!r)
        return NB_ERR_UNAVAILABLE;
    return r->fn(r, p, a);
}
