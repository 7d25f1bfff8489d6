/* libfuzzer_probe.c: the smallest libFuzzer target. tests/fuzz/meson.build
 * links it at configure time to learn whether clang can build fuzzers here
 * (the libFuzzer and sanitizer runtimes of libclang-rt are installed). */
#include <stddef.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    (void)data;
    (void)size;
    return 0;
}
