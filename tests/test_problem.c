/* test_problem.c: the problem-string grammar: round trips through the
 * canonical form, defaults, every token, derived sizes, and parse errors
 * that name the offending token. */
#include "normbench.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static nb_problem parse_ok(const char *s)
{
    nb_problem p;
    char err[256] = "";
    nb_status st = nb_problem_parse(s, &p, err, sizeof err);
    cr_assert_eq(st, NB_OK, "'%s' should parse: %s", s, err);
    return p;
}

static void roundtrip(const char *s)
{
    nb_problem p = parse_ok(s), q;
    char a[512], b[512];
    nb_problem_format(&p, a, sizeof a);
    cr_assert_eq(nb_problem_parse(a, &q, NULL, 0), NB_OK, "canonical '%s' of '%s' does not parse",
                 a, s);
    nb_problem_format(&q, b, sizeof b);
    cr_expect_str_eq(a, b, "format is not a fixed point for '%s'", s);
    cr_expect(memcmp(&p, &q, sizeof p) == 0, "'%s' -> '%s' changed the problem", s, a);
}

Test(problem, roundtrip)
{
    static const char *const cases[] = {
        "ln:rows8192:cols768:eps1e-5:f32",
        "ln:rows64:cols256:eps1e-5:f32:data=offset1e4",
        "ln:rows3:cols7:nobeta:f64:seed99:data=sorted-3.5",
        "rms:rows2:cols5:noaffine:eps0:data=subnormal",
        "bn:n32c64h56w56:nhwc:train:eps1e-5",
        "bn:n8c16l100:infer:eps0.001:data=nan",
        "bn:n2c8d4h4w4:momnone:nbt7:f64",
        "bn:n2c3:mom0.3:noaffine:data=alt",
        "in:n3c4h5w5:affine:track:mom0.25:data=tiny1e-7",
        "in:n1c2l9:data=const3",
        "gn:n2c6h5w5:g3:nhwc:eps1:data=huge",
        "gn:n1c32h8w8:g32:seed18446744073709551:data=alt7",
        "bn:n2c3h4w4:eps1e-3:eps=dtype",
        "in:n2c3h4w4:eps1e-3:eps=dtype:data=tiny",
        "ln:rows4:cols8:eps1e-3:eps=f64",
        "gn:n2c4h3w3:g2:eps=f64",
        "rms:rows4:cols8:eps=f64:data=tiny",
        "bn:n2c3h4w4:eps=f64",
        "ln:rows4:cols8:f64:eps=f64",
        "bn:n2c3h4w4:f64:eps=dtype",
        "ln:rows4:cols8:eps1e-45:f32",
        "ln:rows4:cols8:eps1e-50:f64",
        "ln:rows4:cols8:bwd",
        "ln:rows4:cols8:nobeta:bwd_d:dy=const",
        "bn:n2c3h4w4:infer:bwd:dy=prop2",
        "bn:n2c3h4w4:nhwc:bwd:noaffine:dy=sparse",
        "gn:n2c6h5w5:g3:bwd:f64:data=offset1e4:dy=offset-3.5",
        "in:n2c3h4w4:affine:bwd:dy=const-0.5",
        "rms:rows3:cols7:bwd:dy=prop",
        "ln:rows4:cols8:fwd",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        roundtrip(cases[i]);
}

Test(problem, defaults_and_fields)
{
    nb_problem p = parse_ok("bn:n32c64h56w56");
    cr_expect_eq(p.layer, NB_BN);
    cr_expect_eq(p.n, 32);
    cr_expect_eq(p.c, 64);
    cr_expect_eq(p.spatial_rank, 2);
    cr_expect_eq(p.spatial[0], 56);
    cr_expect_eq(p.layout, NB_NCHW);
    cr_expect_eq(p.dtype, NB_F32);
    cr_expect(p.training);
    cr_expect(p.affine);
    cr_expect_float_eq(p.eps, 1e-5, 0);
    cr_expect_float_eq(p.momentum, 0.1, 0);
    cr_expect_eq(nb_problem_numel(&p), 32 * 64 * 56 * 56);
    cr_expect_eq(nb_problem_stat_count(&p), 64);
    cr_expect_eq(nb_problem_group_size(&p), 32 * 56 * 56);

    p = parse_ok("in:n2c3d4h5w6:nhwc");
    cr_expect_eq(p.spatial_rank, 3);
    cr_expect_not(p.affine, "instancenorm is not affine by default");
    cr_expect_eq(nb_problem_stat_count(&p), 6);
    cr_expect_eq(nb_problem_group_size(&p), 120);

    p = parse_ok("gn:n2c6h5w5:g3:data=offset1e4");
    cr_expect_eq(p.groups, 3);
    cr_expect_eq(p.dist, NB_DIST_OFFSET);
    cr_expect_float_eq(p.dist_param, 1e4, 0);
    cr_expect_eq(nb_problem_stat_count(&p), 6);
    cr_expect_eq(nb_problem_group_size(&p), 50);

    p = parse_ok("ln:rows4:cols7:eps0:f64:seed42");
    cr_expect_eq(p.n, 4);
    cr_expect_eq(p.c, 7);
    cr_expect_eq(p.eps, 0.0);
    cr_expect_eq(p.dtype, NB_F64);
    cr_expect_eq(p.seed, 42u);
}

static void parse_bad(const char *s, nb_status want, const char *needle)
{
    nb_problem p;
    char err[256] = "";
    nb_status st = nb_problem_parse(s, &p, err, sizeof err);
    cr_expect_eq(st, want, "'%s': got status %d (%s), want %d", s, st, err, want);
    cr_expect(strstr(err, needle) != NULL, "'%s': message '%s' lacks '%s'", s, err, needle);
    cr_expect(strchr(err, '\n') == NULL, "message must be one line: '%s'", err);
}

Test(problem, errors_name_the_token)
{
    parse_bad("gn:n2c6h5w5:g4", NB_ERR_GROUPS, "6 not divisible by groups 4");
    parse_bad("gn:n2c6h5w5:g0", NB_ERR_GROUPS, "groups must be positive");
    parse_bad("gn:n2c6h5w5", NB_ERR_PARSE, "g<G>");
    parse_bad("ln:rows4:colz7", NB_ERR_PARSE, "colz7");
    parse_bad("ln:rows4", NB_ERR_PARSE, "cols");
    parse_bad("xx:rows4:cols4", NB_ERR_PARSE, "xx");
    parse_bad("", NB_ERR_PARSE, "empty");
    parse_bad("ln:rows4::cols4", NB_ERR_PARSE, "empty token");
    parse_bad("ln:rows4:cols4:", NB_ERR_PARSE, "empty token");
    parse_bad("bn:n2c3h4", NB_ERR_PARSE, "n2c3h4");
    parse_bad("bn:n2c3h4w4x5", NB_ERR_PARSE, "n2c3h4w4x5");
    parse_bad("bn:c3n2h4w4", NB_ERR_PARSE, "c3n2h4w4");
    parse_bad("bn:n2c3h4w4:n2c3h4w4", NB_ERR_PARSE, "twice");
    parse_bad("bn:n2c3h4w4:eps-1", NB_ERR_EPS, "eps");
    parse_bad("bn:n2c3h4w4:epsnan", NB_ERR_PARSE, "epsnan");
    parse_bad("bn:n2c3h4w4:eps1e999", NB_ERR_PARSE, "eps1e999");
    parse_bad("bn:n2c3h4w4:data=offset", NB_ERR_PARSE, "needs a value");
    parse_bad("bn:n2c3h4w4:data=banana", NB_ERR_PARSE, "banana");
    parse_bad("bn:n2c3h4w4:mom1.5", NB_ERR_MOMENTUM, "momentum");
    parse_bad("bn:n1c3:train", NB_ERR_SINGLE, "more than 1 value per channel");
    parse_bad("bn:n0c3h2w2", NB_ERR_SHAPE, "n must be positive");
    parse_bad("ln:rows0:cols3", NB_ERR_SHAPE, "rows must be positive");
    parse_bad("bn:n2c3h0w2", NB_ERR_SHAPE, "spatial");
    parse_bad("ln:rows99999999999:cols99999999999", NB_ERR_OVERFLOW, "too large");
    parse_bad("bn:n9999999c9999999h9999w9999", NB_ERR_OVERFLOW, "too large");
    parse_bad("ln:rows99999999999999999999999:cols4", NB_ERR_PARSE, "rows9999");
    parse_bad("ln:rows4:cols4:nhwc", NB_ERR_PARSE, "nhwc");
    parse_bad("ln:rows4:cols4:train", NB_ERR_PARSE, "train");
    parse_bad("in:n2c3", NB_ERR_SINGLE, "spatial element");
    parse_bad("ln:rows4:cols4:seed-1", NB_ERR_PARSE, "seed-1");
    parse_bad("ln:rows4:cols4:data=offset1e300", NB_ERR_ARG, "beyond half the f32 range");
    parse_bad("ln:rows4:cols4:data=const-1e39", NB_ERR_ARG, "beyond half the f32 range");
    parse_bad("bn:n1c1a1b1d1e1f1g1h1", NB_ERR_PARSE, "too many dimensions");
    parse_bad("bn:n2cXh2w2", NB_ERR_PARSE, "'c' needs a number");
    parse_bad("bn:n2h4w4", NB_ERR_PARSE, "expected n<N>c<C>");
    parse_bad("bn:n2c3h4w4:data=tiny0", NB_ERR_PARSE, "tiny needs sigma > 0");
    parse_bad("bn:n2c3h4w4:data=tiny-1", NB_ERR_PARSE, "tiny needs sigma > 0");
    parse_bad("bn:n2c3h4w4:data=normal5", NB_ERR_PARSE, "data=normal5");
    parse_bad("bn:train", NB_ERR_PARSE, "bn needs a shape");
    parse_bad("gn:g2", NB_ERR_PARSE, "gn needs a shape");
}

/* Item 6 of issue 9: a setting given twice, two tokens that contradict
 * each other, and a token the problem would ignore are refused, and the
 * message names the tokens. */
Test(problem, conflicting_and_repeated_tokens)
{
    parse_bad("bn:n2c3h4w4:nchw:nhwc", NB_ERR_PARSE, "'nchw' and 'nhwc' conflict");
    parse_bad("bn:n2c3h4w4:train:infer", NB_ERR_PARSE, "'train' and 'infer' conflict");
    parse_bad("ln:rows4:cols4:f32:f64", NB_ERR_PARSE, "'f32' and 'f64' conflict");
    parse_bad("gn:n2c6h5w5:g6:g3", NB_ERR_PARSE, "'g6' and 'g3' conflict");
    parse_bad("bn:n2c3h4w4:mom0.1:momnone", NB_ERR_PARSE, "'mom0.1' and 'momnone' conflict");
    parse_bad("bn:n2c3h4w4:momnone:mom0.1", NB_ERR_PARSE, "'momnone' and 'mom0.1' conflict");
    parse_bad("ln:rows4:cols4:data=normal:data=tiny", NB_ERR_PARSE,
              "'data=normal' and 'data=tiny' conflict");
    parse_bad("ln:rows4:cols4:eps1e-5:eps1e-3", NB_ERR_PARSE, "'eps1e-5' and 'eps1e-3' conflict");
    parse_bad("ln:rows4:cols4:eps=f64:eps=dtype", NB_ERR_PARSE, "'eps=f64' and 'eps=dtype'");
    parse_bad("ln:rows4:cols4:seed1:seed2", NB_ERR_PARSE, "'seed1' and 'seed2'");
    parse_bad("ln:rows4:cols4:rows5", NB_ERR_PARSE, "'rows4' and 'rows5'");
    parse_bad("ln:rows4:cols4:affine:noaffine", NB_ERR_PARSE, "'affine' and 'noaffine'");
    parse_bad("in:n2c3h4w4:track:notrack", NB_ERR_PARSE, "'track' and 'notrack'");
    parse_bad("bn:n2c3h4w4:momnone:nbt2:nbt3", NB_ERR_PARSE, "'nbt2' and 'nbt3'");
    /* the same token twice */
    parse_bad("ln:rows4:cols4:f32:f32", NB_ERR_PARSE, "token 'f32' given twice");
    parse_bad("bn:n2c3h4w4:train:train", NB_ERR_PARSE, "token 'train' given twice");
    parse_bad("ln:rows4:cols4:nobeta:nobeta", NB_ERR_PARSE, "token 'nobeta' given twice");
    parse_bad("ln:rows4:cols4:cols4", NB_ERR_PARSE, "token 'cols4' given twice");
    parse_bad("gn:n2c6h5w5:g3:g3", NB_ERR_PARSE, "token 'g3' given twice");
    parse_bad("bn:n2c3h4w4:momnone:momnone", NB_ERR_PARSE, "token 'momnone' given twice");
    parse_bad("ln:rows4:cols4:data=tiny:data=tiny", NB_ERR_PARSE, "token 'data=tiny' given twice");
    /* tokens that would be ignored */
    parse_bad("bn:n2c3h4w4:nbt4", NB_ERR_PARSE, "'nbt4' needs 'momnone'");
    parse_bad("bn:n2c3h4w4:nbt4:mom0.2", NB_ERR_PARSE, "'nbt4' needs 'momnone'");
    parse_bad("in:n2c3h4w4:mom0.2", NB_ERR_PARSE, "'mom0.2' needs 'track'");
    /* eps that vanishes in the dtype; f64 keeps it */
    parse_bad("ln:rows4:cols4:eps1e-50:f32", NB_ERR_EPS, "'eps1e-50' rounds to 0 with 'f32'");
    parse_bad("bn:n2c3h4w4:eps1e-50", NB_ERR_EPS, "rounds to 0");
    parse_bad("bn:n2c3h4w4:eps=banana", NB_ERR_PARSE, "eps=f64 or eps=dtype");
    parse_bad("bn:n2c3h4w4:eps=1e-5", NB_ERR_PARSE, "eps<v>");
    cr_expect_eq(parse_ok("ln:rows4:cols4:eps1e-50:f64").eps, 1e-50);
}

/* Issue 11: the direction tokens. fwd is the default and never printed,
 * so every forward problem string reads and prints as before; a backward
 * problem prints its direction after the mode and dy= after data=. */
Test(problem, direction_tokens)
{
    static const struct {
        const char *in, *canonical;
    } cases[] = {
        {"ln:rows64:cols1024:bwd:data=offset1e4",
         "ln:rows64:cols1024:bwd:eps1e-05:f32:seed1:data=offset1e+04:dy=normal"},
        {"ln:rows4:cols8:fwd", "ln:rows4:cols8:eps1e-05:f32:seed1:data=normal"},
        {"bn:n2c3:bwd_d:infer:dy=const",
         "bn:n2c3:nchw:infer:bwd_d:eps1e-05:f32:seed1:data=normal:dy=const"},
        {"bn:n2c3:bwd:dy=const2",
         "bn:n2c3:nchw:train:bwd:eps1e-05:f32:seed1:data=normal:dy=const2"},
        {"gn:n1c4l3:g2:dy=prop:bwd",
         "gn:n1c4l3:g2:nchw:bwd:eps1e-05:f32:seed1:data=normal:dy=prop"},
        {"rms:rows2:cols3:bwd:dy=offset0",
         "rms:rows2:cols3:bwd:eps1e-05:f32:seed1:data=normal:dy=offset0"},
        {"in:n1c2l3:bwd:dy=sparse", "in:n1c2l3:nchw:bwd:eps1e-05:f32:seed1:data=normal:dy=sparse"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nb_problem p = parse_ok(cases[i].in);
        char s[512];
        nb_problem_format(&p, s, sizeof s);
        cr_expect_str_eq(s, cases[i].canonical, "'%s'", cases[i].in);
        roundtrip(cases[i].in);
    }
    nb_problem p = parse_ok("ln:rows4:cols8:bwd_d:dy=prop0.5");
    cr_expect_eq(p.dir, NB_BWD_D);
    cr_expect_eq(p.dy_dist, NB_DY_PROP);
    cr_expect_eq(p.dy_param, 0.5);
    cr_expect_not(nb_problem_has_param_grads(&p));
    cr_expect(nb_problem_is_backward(&p));
    p = parse_ok("bn:n2c3h4w4:bwd");
    cr_expect_eq(p.dy_dist, NB_DY_NORMAL);
    cr_expect(nb_problem_has_param_grads(&p));
    cr_expect_not(nb_problem_has_running(&p), "a backward pass has no running statistics");
    cr_expect_eq(nb_problem_param_terms(&p), 32);
    p = parse_ok("bn:n2c3h4w4:bwd:noaffine");
    cr_expect_not(nb_problem_has_param_grads(&p));
    cr_expect_eq(parse_ok("ln:rows4:cols8").dir, NB_FWD);
    cr_expect_str_eq(nb_direction_name(NB_BWD_D), "bwd_d");
    cr_expect_str_eq(nb_dy_dist_name(NB_DY_SPARSE), "sparse");
    cr_expect_str_eq(nb_direction_name(NB_DIRECTION_COUNT), "?");
    cr_expect_str_eq(nb_dy_dist_name(NB_DY_COUNT), "?");
}

Test(problem, direction_errors)
{
    parse_bad("ln:rows4:cols4:fwd:bwd", NB_ERR_PARSE,
              "'fwd' and 'bwd' conflict (both set the direction)");
    parse_bad("ln:rows4:cols4:bwd:bwd_d", NB_ERR_PARSE, "'bwd' and 'bwd_d' conflict");
    parse_bad("ln:rows4:cols4:bwd:bwd", NB_ERR_PARSE, "token 'bwd' given twice");
    parse_bad("ln:rows4:cols4:dy=normal", NB_ERR_PARSE, "'dy=normal' needs 'bwd' or 'bwd_d'");
    parse_bad("ln:rows4:cols4:fwd:dy=const", NB_ERR_PARSE, "'dy=const' needs 'bwd' or 'bwd_d'");
    parse_bad("ln:rows4:cols4:bwd:dy=offset", NB_ERR_PARSE, "needs a value");
    parse_bad("ln:rows4:cols4:bwd:dy=banana", NB_ERR_PARSE, "'dy=banana'");
    parse_bad("ln:rows4:cols4:bwd:dy=sparse2", NB_ERR_PARSE, "'dy=sparse2'");
    parse_bad("ln:rows4:cols4:bwd:dy=constx", NB_ERR_PARSE, "'dy=constx'");
    parse_bad("ln:rows4:cols4:bwd:dy=const:dy=prop", NB_ERR_PARSE,
              "'dy=const' and 'dy=prop' conflict (both set the dy distribution)");
    parse_bad("ln:rows4:cols4:bwd:dy=offset1e300", NB_ERR_ARG, "dy parameter");
    parse_bad("ln:rows4:cols4:bwd_D", NB_ERR_PARSE, "bad token 'bwd_D'");
    parse_bad("bn:n2c3h4w4:bwd:mom0.2", NB_ERR_PARSE,
              "'mom0.2' and 'bwd' conflict (a backward pass updates no running statistics)");
    parse_bad("bn:n2c3h4w4:momnone:nbt3:bwd_d", NB_ERR_PARSE, "'momnone' and 'bwd_d' conflict");
    parse_bad("in:n2c3h4w4:track:bwd", NB_ERR_PARSE, "'track' and 'bwd' conflict");
    /* fields no string can set */
    nb_problem p = parse_ok("ln:rows4:cols4"), q;
    char err[256];
    q = p, q.dy_dist = NB_DY_CONST;
    cr_expect_eq(nb_problem_check(&q, err, sizeof err), NB_ERR_ARG);
    cr_expect(strstr(err, "forward problem"), "%s", err);
    q = p, q.dir = NB_DIRECTION_COUNT;
    cr_expect_eq(nb_problem_check(&q, err, sizeof err), NB_ERR_ARG);
    q = p, q.dir = NB_BWD, q.dy_dist = NB_DY_COUNT;
    cr_expect_eq(nb_problem_check(&q, err, sizeof err), NB_ERR_ARG);
    q = p, q.dir = NB_BWD, q.dy_param = NAN;
    cr_expect_eq(nb_problem_check(&q, err, sizeof err), NB_ERR_ARG);
}

/* Item 11 of issue 9: the eps convention is the problem's, defaults to
 * PyTorch's per layer and is printed only when it differs. */
Test(problem, eps_convention)
{
    const double e32 = (double)(float)1e-3;
    cr_assert_neq(e32, 1e-3);
    static const struct {
        const char *in, *canonical_tail;
        double added;
    } cases[] = {
        {"bn:n2c3h4w4:eps1e-3", ":eps0.001:f32:seed1:data=normal", 1e-3},
        {"in:n2c3h4w4:eps1e-3", ":eps0.001:f32:seed1:data=normal", 1e-3},
        {"bn:n2c3h4w4:eps1e-3:eps=f64", ":eps0.001:f32:seed1:data=normal", 1e-3},
        {"bn:n2c3h4w4:eps1e-3:eps=dtype", ":eps0.001:f32:eps=dtype:seed1:data=normal", 0},
        {"in:n2c3h4w4:eps=dtype:eps1e-3", ":eps0.001:f32:eps=dtype:seed1:data=normal", 0},
        {"ln:rows2:cols3:eps1e-3", ":eps0.001:f32:seed1:data=normal", 0},
        {"gn:n2c4h3w3:g2:eps1e-3", ":eps0.001:f32:seed1:data=normal", 0},
        {"rms:rows2:cols3:eps1e-3:eps=dtype", ":eps0.001:f32:seed1:data=normal", 0},
        {"ln:rows2:cols3:eps1e-3:eps=f64", ":eps0.001:f32:eps=f64:seed1:data=normal", 1e-3},
        {"gn:n2c4h3w3:g2:eps1e-3:eps=f64", ":eps0.001:f32:eps=f64:seed1:data=normal", 1e-3},
        {"ln:rows2:cols3:eps1e-3:f64:eps=f64", ":eps0.001:f64:seed1:data=normal", 1e-3},
        {"bn:n2c3h4w4:eps1e-3:f64:eps=dtype", ":eps0.001:f64:seed1:data=normal", 1e-3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nb_problem p = parse_ok(cases[i].in);
        char s[512];
        nb_problem_format(&p, s, sizeof s);
        const char *tail = strstr(s, ":eps0.001");
        cr_assert(tail, "'%s' printed as '%s'", cases[i].in, s);
        cr_expect_str_eq(tail, cases[i].canonical_tail, "'%s'", cases[i].in);
        const double added = cases[i].added ? cases[i].added : e32;
        cr_expect_eq(nb_problem_eps_added(&p), added, "'%s': eps added %.17g", cases[i].in,
                     nb_problem_eps_added(&p));
        cr_expect_eq(nb_problem_eps_exact(&p), added == 1e-3, "'%s'", cases[i].in);
        roundtrip(cases[i].in);
    }
    /* A problem built in code with the layer's own convention spelled out
     * prints as the default and reads back with the same eps added. */
    nb_problem p = parse_ok("bn:n2c3h4w4:eps1e-3"), q;
    p.eps_conv = NB_EPS_F64;
    char s[512];
    nb_problem_format(&p, s, sizeof s);
    cr_expect(strstr(s, "eps=") == NULL, "'%s'", s);
    q = parse_ok(s);
    cr_expect_eq(nb_problem_eps_added(&q), nb_problem_eps_added(&p));
}

/* Round trip every problem of one list: a printed string is never refused
 * on re-parse and reproduces the problem. */
static size_t roundtrip_all(char **items, size_t count)
{
    for (size_t i = 0; i < count; i++)
        roundtrip(items[i]);
    return count;
}

/* Every problem the code prints from its own lists parses back to itself:
 * the default sweep, every built-in set (inputs/NAME.txt: verify bases, bench
 * sets, stability and test sweeps) and the corpus entries. */
Test(problem, roundtrip_every_printed_problem)
{
    size_t n = 0, total = 0;
    char **sweep = nb_sweep_default(&n);
    cr_assert(sweep && n > 0);
    total += roundtrip_all(sweep, n);
    nb_sweep_free(sweep, n);
    for (size_t i = 0; i < nb_builtin_set_count(); i++) {
        nb_problem_list l = {0};
        char err[256] = "";
        cr_assert_eq(nb_problem_list_builtin(&l, nb_builtin_set_name(i), err, sizeof err), NB_OK,
                     "%s", err);
        total += roundtrip_all(l.items, l.count);
        nb_problem_list_free(&l);
    }
    char dir[4096], path[8192], line[1024];
    snprintf(dir, sizeof dir, "%s/tests/corpus", NB_SOURCE_ROOT);
    DIR *dp = opendir(dir);
    cr_assert(dp, "cannot open %s", dir);
    size_t corpus = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        size_t l = strlen(e->d_name);
        if (l < 4 || strcmp(e->d_name + l - 4, ".txt"))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        cr_assert(f, "cannot open %s", path);
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "problem ", 8)) {
                line[strcspn(line, "\r\n")] = 0;
                roundtrip(line + 8);
                corpus++;
            }
        fclose(f);
    }
    closedir(dp);
    cr_expect_gt(corpus, 0);
    cr_log_info("round trip of %zu listed problems and %zu corpus entries", total, corpus);
}

/* nb_problem_check on fields no problem string can set (a program filling
 * the struct itself): each is refused with its own status. */
Test(problem, check_refuses_bad_fields)
{
    nb_problem p, q;
    char err[256];
    cr_assert_eq(nb_problem_parse("bn:n2c3h4w5:train", &p, NULL, 0), NB_OK);
    q = p, q.layer = NB_LAYER_COUNT;
    cr_expect_eq(nb_problem_check(&q, err, sizeof err), NB_ERR_ARG);
    q = p, q.n = 1 << 20, q.c = 1 << 20, q.spatial[0] = 1 << 20;
    cr_expect_eq(nb_problem_check(&q, err, sizeof err), NB_ERR_OVERFLOW);
    q = p, q.momentum_none = true, q.num_batches_tracked = 0;
    cr_expect_eq(nb_problem_check(&q, err, sizeof err), NB_ERR_MOMENTUM);
    q = p, q.dist = NB_DIST_COUNT;
    cr_expect_eq(nb_problem_check(&q, err, sizeof err), NB_ERR_ARG);
    q = p, q.dist_param = INFINITY;
    cr_expect_eq(nb_problem_check(&q, err, sizeof err), NB_ERR_ARG);
    q = p, q.dist = NB_DIST_TINY, q.dist_param = 1e4;
    cr_expect_eq(nb_problem_check(&q, err, sizeof err), NB_ERR_ARG, "%s", err);
    q = p, q.eps_conv = NB_EPS_CONV_COUNT;
    cr_expect_eq(nb_problem_check(&q, err, sizeof err), NB_ERR_EPS);
    cr_expect(strstr(err, "unknown eps convention") != NULL, "%s", err);
    cr_assert_eq(nb_problem_parse("in:n2c3h4w5:track", &p, NULL, 0), NB_OK);
    q = p, q.momentum_none = true;
    cr_expect_eq(nb_problem_check(&q, err, sizeof err), NB_ERR_MOMENTUM);
    nb_problem_list l = {0};
    cr_expect_eq(nb_problem_list_read(&l, NULL, err, sizeof err), NB_ERR_NULL);
    cr_expect_eq(nb_problem_list_builtin(&l, NULL, err, sizeof err), NB_ERR_NULL);
    cr_expect_eq(nb_problem_list_read(&l, "/nonexistent/problems.txt", err, sizeof err), NB_ERR_IO);
    /* a problem file over the 16 MiB limit (sparse: no disk used) */
    char path[] = "/tmp/normbench-big-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)17 << 20), 0);
    close(fd);
    cr_expect_eq(nb_problem_list_read(&l, path, err, sizeof err), NB_ERR_IO);
    unlink(path);
    /* parse errors of the string itself: too long, eps beyond f32 */
    char longs[4100];
    memset(longs, 'x', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    cr_expect_eq(nb_problem_parse(longs, &p, err, sizeof err), NB_ERR_PARSE);
    cr_expect_eq(nb_problem_parse("ln:rows2:cols4:eps1e300:f32", &p, err, sizeof err), NB_ERR_EPS);
}

Test(problem, format_is_shortest_and_stable)
{
    nb_problem p = parse_ok("ln:rows2:cols3:eps1e-5");
    char a[256];
    nb_problem_format(&p, a, sizeof a);
    cr_expect_str_eq(a, "ln:rows2:cols3:eps1e-05:f32:seed1:data=normal");
    int need = nb_problem_format(&p, a, 8);
    cr_expect_eq((size_t)need, strlen("ln:rows2:cols3:eps1e-05:f32:seed1:data=normal"));
    cr_expect_eq(strlen(a), 7u, "truncated output must stay NUL-terminated");
}

Test(problem, strerror_covers_every_status)
{
    for (int s = 0; s < NB_STATUS_COUNT; s++) {
        const char *m = nb_strerror((nb_status)s);
        cr_expect(m && *m && strcmp(m, "unknown status"), "status %d has no message", s);
    }
    cr_expect_str_eq(nb_strerror((nb_status)999), "unknown status");
}

Test(problem, glob)
{
    cr_expect(nb_glob_match("*/onepass/*", "layernorm/onepass/scalar"));
    cr_expect(nb_glob_match("layernorm/*", "layernorm/welford/avx512/omp"));
    cr_expect_not(nb_glob_match("*/scalar", "layernorm/welford/avx512"));
    cr_expect(nb_glob_match("?n*", "in"));
    cr_expect_not(nb_glob_match("", "x"));
}

Test(data, seeded_and_reproducible)
{
    nb_problem p = parse_ok("ln:rows3:cols50:seed7"), q = parse_ok("ln:rows3:cols50:seed8");
    nb_data a, b, c;
    cr_assert_eq(nb_data_alloc(&a, &p), NB_OK);
    cr_assert_eq(nb_data_alloc(&b, &p), NB_OK);
    cr_assert_eq(nb_data_alloc(&c, &q), NB_OK);
    cr_expect(memcmp(a.x, b.x, 150 * sizeof(float)) == 0, "same seed, different data");
    cr_expect(memcmp(a.x, c.x, 150 * sizeof(float)) != 0, "different seeds, same data");
    /* a known value pins the generator across platforms */
    nb_data_free(&a);
    nb_data_free(&b);
    nb_data_free(&c);
}

Test(data, distributions)
{
    nb_problem p = parse_ok("ln:rows4:cols9:f64:data=alt5");
    nb_data d;
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    const double *x = d.x;
    for (int i = 0; i < 36; i++)
        cr_expect_eq(x[i], (i % 9) % 2 ? 4.0 : 6.0, "alt at %d", i);
    nb_data_free(&d);

    p = parse_ok("bn:n3c2h2w2:nhwc:f64:data=sorted");
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    x = d.x;
    for (int c = 0; c < 2; c++)
        for (int i = 1; i < 12; i++)
            cr_expect_leq(x[(i - 1) * 2 + c], x[i * 2 + c], "channel %d not sorted in memory order",
                          c);
    nb_data_free(&d);

    p = parse_ok("gn:n1c4h2w2:g4:data=nan");
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    int nans = 0, pinf = 0, ninf = 0;
    for (int i = 0; i < 16; i++) {
        float v = ((float *)d.x)[i];
        nans += isnan(v);
        pinf += isinf(v) && v > 0;
        ninf += isinf(v) && v < 0;
        if (i >= 12)
            cr_expect(isfinite(v), "group 3 must stay finite");
    }
    cr_expect_eq(nans + pinf + ninf, 3);
    cr_expect_eq(nans, 1);
    nb_data_free(&d);

    p = parse_ok("ln:rows2:cols50:data=subnormal");
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    int sub = 0;
    for (int i = 0; i < 100; i++)
        sub += fpclassify(((float *)d.x)[i]) == FP_SUBNORMAL;
    cr_expect_gt(sub, 90);
    nb_data_free(&d);

    p = parse_ok("ln:rows2:cols50:data=huge");
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    for (int i = 0; i < 100; i++) {
        float v = fabsf(((float *)d.x)[i]);
        cr_expect(v > 0.4f * sqrtf(3.4e38f) && v < sqrtf(3.4e38f), "huge value %a", v);
    }
    nb_data_free(&d);
}

/* Issue 11: a backward problem's data. x is the forward problem's; dy has
 * its own stream, seeded; the saved statistics are those of x (bn
 * inference: the running ones); the gradients start as NaN. */
Test(data, backward_inputs)
{
    nb_problem pf = parse_ok("ln:rows4:cols50:f64:data=offset3"),
               pb = parse_ok("ln:rows4:cols50:f64:bwd:data=offset3");
    nb_data f, b, b2;
    cr_assert_eq(nb_data_alloc(&f, &pf), NB_OK);
    cr_assert_eq(nb_data_alloc(&b, &pb), NB_OK);
    cr_assert_eq(nb_data_alloc(&b2, &pb), NB_OK);
    cr_expect_null(f.dy, "a forward problem has no dy");
    cr_expect(memcmp(f.x, b.x, 200 * sizeof(double)) == 0, "x must not depend on the direction");
    cr_expect(memcmp(b.dy, b2.dy, 200 * sizeof(double)) == 0, "dy is not reproducible");
    cr_expect(memcmp(b.x, b.dy, 200 * sizeof(double)) != 0);
    const double *x = b.x, *mean = b.mean, *rstd = b.rstd;
    for (int r = 0; r < 4; r++) {
        long double s = 0, q = 0;
        for (int i = 0; i < 50; i++)
            s += x[r * 50 + i];
        const long double mu = s / 50;
        for (int i = 0; i < 50; i++)
            q += (x[r * 50 + i] - mu) * (x[r * 50 + i] - mu);
        const double want_rstd = (double)(1 / sqrtl(q / 50 + 1e-5L));
        cr_expect_leq(fabs(mean[r] - (double)mu), 4e-16 * 3, "row %d mean %a", r, mean[r]);
        cr_expect_leq(fabs(rstd[r] - want_rstd), 4e-16 * want_rstd, "row %d rstd %a", r, rstd[r]);
    }
    for (int i = 0; i < 200; i++)
        cr_expect(isnan(((double *)b.dx)[i]), "dx not reset");
    for (int i = 0; i < 50; i++)
        cr_expect(isnan(((double *)b.dgamma)[i]) && isnan(((double *)b.dbeta)[i]));
    nb_args a = nb_data_args(&b);
    cr_expect(a.dy == b.dy && a.dx == b.dx && a.dgamma == b.dgamma && a.dbeta == b.dbeta);
    cr_expect(a.mean == b.mean && a.rstd == b.rstd && a.y == NULL && a.running_mean == NULL);
    cr_expect_eq(nb_args_check(&pb, &a), NB_OK);
    nb_args c = a;
    c.dy = NULL;
    cr_expect_eq(nb_args_check(&pb, &c), NB_ERR_NULL);
    c = a, c.dbeta = NULL;
    cr_expect_eq(nb_args_check(&pb, &c), NB_ERR_NULL);
    c = a, c.rstd = NULL;
    cr_expect_eq(nb_args_check(&pb, &c), NB_ERR_NULL);
    nb_data_free(&f);
    nb_data_free(&b);
    nb_data_free(&b2);
}

/* The dy distributions: const and prop are defined on g = gamma dy. */
Test(data, dy_distributions)
{
    nb_data d;
    nb_problem p = parse_ok("ln:rows3:cols40:f64:bwd:dy=const2");
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    const double *gam = d.gamma, *dy = d.dy;
    for (int i = 0; i < 120; i++)
        cr_expect_leq(fabs(gam[i % 40] * dy[i] - 2.0), 0x1p-50, "gamma dy at %d: %a", i,
                      gam[i % 40] * dy[i]);
    nb_data_free(&d);

    p = parse_ok("gn:n2c4h3w3:g2:f64:bwd:dy=prop3");
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    gam = d.gamma, dy = d.dy;
    const double *x = d.x, *mean = d.mean, *rstd = d.rstd;
    for (int i = 0; i < 72; i++) {
        const int c = (i / 9) % 4, g = (i / 36) * 2 + c / 2;
        const double xhat = (x[i] - mean[g]) * rstd[g];
        cr_expect_leq(fabs(gam[c] * dy[i] - 3 * xhat), 1e-14 * (1 + fabs(xhat)), "at %d", i);
    }
    nb_data_free(&d);

    p = parse_ok("bn:n4c3h5w5:bwd:dy=sparse");
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    int zeros = 0;
    for (int i = 0; i < 300; i++) {
        const float v = ((float *)d.dy)[i];
        cr_expect(v == floorf(v) && fabsf(v) <= 4, "sparse dy %a", v);
        zeros += v == 0;
    }
    cr_expect(zeros > 180 && zeros < 270, "%d zeros of 300", zeros);
    nb_data_free(&d);

    p = parse_ok("rms:rows10:cols100:bwd:dy=offset5");
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    double s = 0;
    for (int i = 0; i < 1000; i++)
        s += ((float *)d.dy)[i];
    cr_expect(fabs(s / 1000 - 5) < 0.2, "mean dy %g", s / 1000);
    cr_expect_eq(((float *)d.mean)[0], 0.0f, "rms saves mean 0");
    nb_data_free(&d);

    /* bn inference: the saved statistics are the running ones */
    p = parse_ok("bn:n2c3h2w2:infer:bwd:f64");
    cr_assert_eq(nb_data_alloc(&d, &p), NB_OK);
    for (int c = 0; c < 3; c++) {
        const double rv = ((double *)d.running_var0)[c];
        cr_expect_eq(((double *)d.mean)[c], ((double *)d.running_mean0)[c]);
        cr_expect_eq(((double *)d.rstd)[c], 1.0 / sqrt(rv + 1e-5));
    }
    nb_data_free(&d);
}
