/* dispatch.c: the policy of the `<layer>/default/auto` kernels: from the
 * candidate kernels it is given (the registry passes its table), the
 * shifted, prescaled two-pass algorithm in its /omp form (so the result is
 * the same at every thread count) at the available instruction set of
 * highest priority in include/normbench_isa.def (avx512, avx2, neon, else
 * the portable one-lane build), under the NORMBENCH_ISA cap. It knows nothing of where
 * the candidates come from, so it imports no registry. */
#include "kernels.h"

const nb_kernel *nb_dispatch_pick(const nb_kernel *k, const nb_kernel *candidates, size_t n)
{
    if (!k)
        return NULL;
    const nb_kernel *best = NULL;
    for (size_t i = 0; i < n; i++) {
        const nb_kernel *c = &candidates[i];
        if (c == k || c->layer != k->layer || c->algo != NB_ALGO_TWOPASS || !c->omp ||
            nb_isa_priority(c->isa) < 0 || !nb_isa_runs(c->isa))
            continue;
        if (!best || nb_isa_priority(c->isa) > nb_isa_priority(best->isa))
            best = c;
    }
    return best;
}
