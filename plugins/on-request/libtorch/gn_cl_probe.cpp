/* gn_cl_probe.cpp: a stand-alone measurement behind the libtorch plug-in's
 * channels_last GroupNorm backward (docs/DESIGN.md section 9.6), not part
 * of the plug-in. For a few small problems it prints, against ATen's own
 * NCHW GroupNorm in f64 on the same (rounded) values:
 *   (a) native_group_norm_backward called on channels_last tensors and on
 *       NCHW tensors, both given the accurate mean and rstd;
 *   (b) autograd through at::group_norm on channels_last leaves (what
 *       F.group_norm users get), and whether its dx is bitwise the dx of
 *       the NCHW entry on contiguous copies given the statistics of the
 *       channels_last forward;
 * and the relative rstd error of the forward in each layout.
 * Built on request: ninja -C build plugins/on-request/libtorch/gn_cl_probe */
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <array>
#include <cstdio>

namespace
{

double max_diff(const at::Tensor &a, const at::Tensor &b)
{
    return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

double max_rel(const at::Tensor &a, const at::Tensor &ref)
{
    return ((a.to(at::kDouble) - ref) / ref).abs().max().item<double>();
}

void probe(at::ScalarType dt, double offset, std::array<int64_t, 5> shape)
{
    const int64_t N = shape[0], C = shape[1], H = shape[2], W = shape[3], G = shape[4];
    const int64_t hxw = H * W;
    const double eps = 1e-5;
    const std::array<bool, 3> all{true, true, true};
    at::manual_seed(1);
    const at::Tensor x = (at::randn({N, C, H, W}, at::kDouble) + offset).to(dt);
    const at::Tensor dy = at::randn({N, C, H, W}, at::kDouble).to(dt);
    const at::Tensor g = (1 + 0.1 * at::randn({C}, at::kDouble)).to(dt);
    const at::Tensor b = at::zeros({C}, dt);
    const at::Tensor xcl = x.contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor dycl = dy.contiguous(at::MemoryFormat::ChannelsLast);

    const at::Tensor x64 = x.to(at::kDouble), g64 = g.to(at::kDouble);
    auto ref = at::native_group_norm(x64, g64, b.to(at::kDouble), N, C, hxw, G, eps);
    const at::Tensor ref_dx = std::get<0>(at::native_group_norm_backward(
        dy.to(at::kDouble), x64, std::get<1>(ref), std::get<2>(ref), g64, N, C, hxw, G, all));
    auto fwd_nchw = at::native_group_norm(x, g, b, N, C, hxw, G, eps);
    auto fwd_cl = at::native_group_norm(xcl, g, b, N, C, hxw, G, eps);
    std::printf("%s offset %g n%ldc%ldh%ldw%ld:g%ld: max|dx| %.3g; forward rstd rel. error "
                "NCHW %.3g, channels_last %.3g\n",
                dt == at::kFloat ? "f32" : "f64", offset, (long)N, (long)C, (long)H, (long)W,
                (long)G, ref_dx.abs().max().item<double>(),
                max_rel(std::get<2>(fwd_nchw), std::get<2>(ref)),
                max_rel(std::get<2>(fwd_cl), std::get<2>(ref)));

    const at::Tensor mean = std::get<1>(ref).to(dt), rstd = std::get<2>(ref).to(dt);
    const at::Tensor dx_cl =
        std::get<0>(at::native_group_norm_backward(dycl, xcl, mean, rstd, g, N, C, hxw, G, all));
    const at::Tensor dx_nchw =
        std::get<0>(at::native_group_norm_backward(dy, x, mean, rstd, g, N, C, hxw, G, all));
    std::printf("  (a) native_group_norm_backward, accurate statistics: max|dx - ref| "
                "channels_last tensors %.3g, NCHW tensors %.3g\n",
                max_diff(dx_cl, ref_dx), max_diff(dx_nchw, ref_dx));

    at::Tensor dx_autograd;
    {
        c10::AutoGradMode grad_mode(true);
        const at::Tensor xl = xcl.clone().requires_grad_(true);
        const at::Tensor gl = g.clone().requires_grad_(true);
        at::group_norm(xl, G, gl, b, eps, false).backward(dycl);
        dx_autograd = xl.grad();
    }
    const at::Tensor dx_nchw_clstats = std::get<0>(at::native_group_norm_backward(
        dy, x, std::get<1>(fwd_cl), std::get<2>(fwd_cl), g, N, C, hxw, G, all));
    std::printf("  (b) autograd via at::group_norm on channels_last: max|dx - ref| %.3g; "
                "NCHW entry with the channels_last forward's statistics: %s\n",
                max_diff(dx_autograd, ref_dx),
                at::equal(dx_autograd.contiguous(), dx_nchw_clstats) ? "bitwise equal"
                                                                     : "different");
}

} // namespace

int main()
{
    at::set_num_threads(1);
    for (double offset : {0.0, 100.0}) {
        probe(at::kFloat, offset, {2, 8, 5, 5, 2});
        probe(at::kDouble, offset, {2, 8, 5, 5, 2});
        probe(at::kFloat, offset, {2, 8, 4, 4, 2});
    }
    return 0;
}
