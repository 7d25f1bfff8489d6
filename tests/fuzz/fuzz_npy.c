/* fuzz_npy.c: libFuzzer target for the .npy reader (nb_npy_parse, the code
 * path of nb_npy_read after the file is sized). Any crash, sanitizer report
 * or accepted array whose data would not fit in the input is a bug. */
#include "normbench.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    nb_npy a;
    char err[256];
    if (nb_npy_parse(data, size, &a, err, sizeof err) == NB_OK) {
        if (a.count < 0 || (size_t)a.count * nb_dtype_size(a.dtype) > size)
            abort();
        /* touch every byte of the data */
        volatile unsigned char sink = 0;
        for (size_t i = 0; i < (size_t)a.count * nb_dtype_size(a.dtype); i++)
            sink ^= ((unsigned char *)a.data)[i];
        (void)sink;
        nb_npy_free(&a);
    }
    return 0;
}
