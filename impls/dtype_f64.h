/* dtype_f64.h: the scalar-type macros the kernel templates (scalar_body.h,
 * simd_passes.h with simd_drive.h, blas_body.h) take for double: included
 * right before a template, which #undefs them at its end. No include
 * guard on purpose. */
#define T double
#define SFX f64
#define TMAX 1.7976931348623157e+308
#define SCALE_LIM 1000
#define FREXP frexp
#define LDEXP ldexp
#define SQRT sqrt
