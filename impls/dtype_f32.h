/* dtype_f32.h: the scalar-type macros the kernel templates (scalar_body.h,
 * simd_passes.h with simd_drive.h, blas_body.h) take for float: included
 * right before a template, which #undefs them at its end. No include
 * guard on purpose. */
#define T float
#define SFX f32
#define TMAX 3.40282347e+38f
#define SCALE_LIM 100
#define FREXP frexpf
#define LDEXP ldexpf
#define SQRT sqrtf
