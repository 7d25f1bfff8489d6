/* report.c: the reports of a bench run: one text line per case and per
 * roof measurement, the JSON document (settings, sysinfo, load, roof and
 * every case) and the CSV table, each case with the command that reruns it. */
#include "bench.h"
#include "nb_config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const bench_traffic_model_text =
    "GB/s counts compulsory traffic: x read once and y written once when the working set of "
    "a statistics group (ln/rms: a row; in/gn nchw: a group; bn nchw: a channel, N x S; "
    "in/gn nhwc: an image, C x S; bn nhwc: the whole tensor) fits in one core's L2, x read "
    "twice when it does not (none for bn inference), plus gamma/beta read, mean/var/rstd "
    "written and running statistics read and written. Backward: x and dy read once, or twice "
    "when a group's x and dy exceed the L2 (bn inference: dy once, x only for dgamma), dx "
    "written, gamma, mean and rstd read, dgamma/dbeta written. Fractions divide by the same run's "
    "STREAM copy (2 x bytes per element copied, best of regular and non-temporal stores) and "
    "read bandwidth at the same thread count (best pass, the higher of the measurements at the "
    "start and the end of the run). warm: the same x/y every call (caches as the "
    "previous call left them); cold: x/y (backward: x, dy, dx) rotated through copies spanning "
    "over 2 x the "
    "last-level cache, so every call starts from memory.";

static const char *status_name(nb_timed_status s)
{
    return s == NB_TIMED_OK ? "ok" : s == NB_TIMED_SKIPPED ? "skipped" : "error";
}

static const char *source_name(const nb_kernel *k)
{
    const char *plugin = nb_kernel_plugin(k);
    return plugin ? plugin : k->algo == NB_ALGO_ONEDNN ? "onednn" : "normbench";
}

/* ---- text ------------------------------------------------------------------ */

static void format_time(double s, char *buf, size_t len)
{
    if (s >= 1)
        snprintf(buf, len, "%.3f s", s);
    else if (s >= 1e-3)
        snprintf(buf, len, "%.3f ms", s * 1e3);
    else
        snprintf(buf, len, "%.2f us", s * 1e6);
}

void bench_repro(const bench_record *r, char *buf, size_t len)
{
    const char *plugin = nb_kernel_plugin_path(r->m.kernel);
    snprintf(buf, len, "normbench bench%s%s --kernels %s --problems %s --threads %d%s",
             plugin ? " --plugin " : "", plugin ? plugin : "", r->m.kernel->name, r->problem,
             r->m.threads, r->m.cold ? " --cold-only" : "");
}

void bench_print_record(const bench_record *r)
{
    const nb_timed_result *m = &r->m;
    char rp[900];
    bench_repro(r, rp, sizeof rp);
    if (m->status != NB_TIMED_OK) {
        printf("  %-4s T=%d %-34s %s | repro: %s\n", m->cold ? "cold" : "warm", m->threads,
               m->kernel->name, m->reason, rp);
        return;
    }
    char med[32];
    format_time(m->t.median, med, sizeof med);
    char batch[32] = "";
    if (m->batch > 1)
        snprintf(batch, sizeof batch, " of %ld calls", m->batch);
    printf("  %-4s T=%d %-34s median %-10s [min %.4g max %.4g ms, MAD %.1f%%, n=%ld%s] "
           "%6.2f GB/s  %.2f copy  %.2f read  %.3f el/ns | repro: %s\n",
           m->cold ? "cold" : "warm", m->threads, m->kernel->name, med, m->t.min * 1e3,
           m->t.max * 1e3, m->t.median > 0 ? 100 * m->t.mad / m->t.median : 0, m->reps, batch,
           m->gbps, r->frac_copy, r->frac_read, m->elem_per_ns, rp);
}

void bench_print_roof(const char *what, const nb_roof *r, size_t bytes)
{
    printf("%s T=%d: copy %.2f GB/s (%s stores; regular %.2f, non-temporal %.2f), read "
           "%.2f GB/s  [best of reps, arrays %zu MiB, MAD %.1f%%/%.1f%%]\n",
           what, r->threads, r->copy_gbps, r->copy_store, r->copy_regular_gbps, r->copy_nt_gbps,
           r->read_gbps, bytes >> 20, 100 * r->copy_spread, 100 * r->read_spread);
}

/* ---- CSV ------------------------------------------------------------------- */

static void csv_field(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_row(FILE *f, const bench_record *r, const char *target_id)
{
    const nb_timed_result *m = &r->m;
    char rp[900];
    bench_repro(r, rp, sizeof rp);
    fprintf(f, "%s,%s,", target_id, source_name(m->kernel));
    csv_field(f, r->set);
    fprintf(f, ",%s,%s,", nb_layer_name(m->kernel->layer), m->kernel->name);
    csv_field(f, r->problem);
    fprintf(f, ",%d,%s,%s,", m->threads, m->cold ? "cold" : "warm", status_name(m->status));
    csv_field(f, m->reason);
    if (m->status == NB_TIMED_OK)
        fprintf(f, ",%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%ld,%ld,%.0f,%d,%.4g,%.4g,%.4g,%.4g,",
                m->t.median, m->t.min, m->t.max, m->t.mad, m->t.q1, m->t.q3, m->reps, m->batch,
                m->bytes, m->x_passes, m->gbps, r->frac_copy, r->frac_read, m->elem_per_ns);
    else
        fputs(",,,,,,,,,,,,,,", f);
    csv_field(f, rp);
    fputc('\n', f);
}

void bench_write_csv(FILE *f, const bench_run *run)
{
    fputs("target_id,source,set,layer,kernel,problem,threads,mode,status,reason,median_s,min_s,"
          "max_s,mad_s,q1_s,q3_s,reps,batch,bytes,x_passes,gbps,frac_copy,frac_read,elem_per_ns,"
          "repro\n",
          f);
    for (size_t i = 0; i < run->nrecords; i++)
        csv_row(f, &run->records[i], run->si->target_id);
}

/* ---- JSON ------------------------------------------------------------------ */

static void json_settings(nb_json_writer *w, const bench_run *run)
{
    nb_json_object(w, "settings");
    nb_json_string(w, "timer", "clock_gettime(CLOCK_MONOTONIC)");
    nb_json_number(w, "min_time_s", run->timing.min_time);
    nb_json_int(w, "min_reps", run->timing.min_reps);
    nb_json_string(w, "warmup",
                   ">= 2 calls and >= min_time/4 (and one pass over the cold rotation)");
    nb_json_string(w, "sample", "one call, or a batch of calls when one call is under 50 us");
    nb_json_array(w, "modes");
    if (run->warm)
        nb_json_string(w, NULL, "warm");
    if (run->cold)
        nb_json_string(w, NULL, "cold");
    nb_json_end_array(w);
    nb_json_int(w, "cold_rotation_bytes", (long long)run->cold_bytes);
    nb_json_array(w, "threads");
    for (int i = 0; i < run->nthreads; i++)
        nb_json_int(w, NULL, run->threads[i]);
    nb_json_end_array(w);
    nb_json_int(w, "cpus_available", run->cpus_available);
    nb_json_bool(w, "oversubscribed", run->oversubscribed);
    nb_json_end_object(w);
}

/* One roof entry: the figures used, and the start and end measurements. */
static void json_roof_entry(nb_json_writer *w, const bench_run *run, int i)
{
    const nb_roof *r = &run->roofs[i];
    nb_json_object(w, NULL);
    nb_json_int(w, "threads", r->threads);
    nb_json_number(w, "copy_gbps", r->copy_gbps);
    nb_json_string(w, "copy_store", r->copy_store);
    nb_json_number(w, "copy_regular_gbps", r->copy_regular_gbps);
    nb_json_number(w, "copy_nt_gbps", r->copy_nt_gbps);
    nb_json_number(w, "read_gbps", r->read_gbps);
    nb_json_number(w, "copy_spread", r->copy_spread);
    nb_json_number(w, "read_spread", r->read_spread);
    for (int e = 0; e < 2; e++) {
        if (e && !run->have_end_roofs)
            continue;
        const nb_roof *x = e ? &run->roofs_end[i] : &run->roofs_start[i];
        nb_json_object(w, e ? "end" : "start");
        nb_json_number(w, "copy_regular_gbps", x->copy_regular_gbps);
        nb_json_number(w, "copy_nt_gbps", x->copy_nt_gbps);
        nb_json_number(w, "read_gbps", x->read_gbps);
        nb_json_end_object(w);
    }
    nb_json_end_object(w);
}

static void json_roof(nb_json_writer *w, const bench_run *run)
{
    nb_json_object(w, "roof");
    nb_json_string(w, "method",
                   "STREAM-style copy (regular and non-temporal stores; 2 x bytes) and read "
                   "(sum; 1 x bytes), best of repetitions, OpenMP threads, measured at the "
                   "start and at the end of the run; each figure is the higher of the two, "
                   "and at least the figure at fewer threads");
    nb_json_int(w, "array_bytes", (long long)run->roof_bytes);
    nb_json_int(w, "reps", run->roof_reps);
    nb_json_array(w, "results");
    for (int i = 0; i < run->nroofs; i++)
        json_roof_entry(w, run, i);
    nb_json_end_array(w);
    nb_json_end_object(w);
}

/* The measurements of a case that ran. */
static void json_measurement(nb_json_writer *w, const bench_record *r)
{
    const nb_timed_result *m = &r->m;
    nb_json_object(w, "time_s");
    nb_json_number(w, "median", m->t.median);
    nb_json_number(w, "min", m->t.min);
    nb_json_number(w, "max", m->t.max);
    nb_json_number(w, "mean", m->t.mean);
    nb_json_number(w, "mad", m->t.mad);
    nb_json_number(w, "q1", m->t.q1);
    nb_json_number(w, "q3", m->t.q3);
    nb_json_end_object(w);
    nb_json_number(w, "spread", m->t.median > 0 ? m->t.mad / m->t.median : 0);
    nb_json_int(w, "reps", m->reps);
    nb_json_int(w, "batch", m->batch);
    nb_json_number(w, "numel", m->numel);
    nb_json_number(w, "bytes", m->bytes);
    nb_json_int(w, "x_passes", m->x_passes);
    nb_json_int(w, "group_working_set_bytes", m->group_bytes);
    nb_json_number(w, "gbps", m->gbps);
    nb_json_number(w, "frac_copy", r->frac_copy);
    nb_json_number(w, "frac_read", r->frac_read);
    nb_json_number(w, "elem_per_ns", m->elem_per_ns);
}

static void json_record(nb_json_writer *w, const bench_run *run, const bench_record *r)
{
    const nb_timed_result *m = &r->m;
    const nb_kernel *k = m->kernel;
    char rp[900];
    bench_repro(r, rp, sizeof rp);
    nb_json_object(w, NULL);
    nb_json_string(w, "source", source_name(k));
    nb_json_string(w, "set", r->set);
    nb_json_string(w, "layer", nb_layer_name(k->layer));
    nb_json_string(w, "kernel", k->name);
    nb_json_string(w, "algo", nb_kernel_algo(k));
    nb_json_string(w, "isa", nb_kernel_isa(k));
    nb_json_bool(w, "omp", k->omp);
    nb_json_bool(w, "threaded", bench_kernel_threaded(k));
    nb_json_string(w, "problem", r->problem);
    nb_json_int(w, "threads", m->threads);
    nb_json_string(w, "mode", m->cold ? "cold" : "warm");
    nb_json_string(w, "status", status_name(m->status));
    if (m->status != NB_TIMED_OK)
        nb_json_string(w, "reason", m->reason);
    else
        json_measurement(w, r);
    nb_json_string(w, "repro", rp);
    if (run->shard_ranks)
        nb_json_int(w, "rank", r->rank); /* where it was timed: part of its timing */
    nb_json_end_object(w);
}

/* kind, schema, tool, date, command, sets, target, sysinfo, load, seconds. */
static void json_header(nb_json_writer *w, const bench_run *run)
{
    nb_json_string(w, "kind", "bench");
    nb_json_int(w, "schema", 1);
    nb_json_string(w, "source", "normbench");
    nb_json_string(w, "tool", "normbench " NB_VERSION);
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    nb_json_string(w, "date", date);
    nb_json_string(w, "command", run->command);
    nb_json_string(w, "sets", run->sets);
    nb_json_string(w, "target_id", run->si->target_id);
    nb_sysinfo_json(w, "sysinfo", run->si);
    nb_json_object(w, "load");
    nb_json_number(w, "loadavg1_start", run->load_start);
    nb_json_number(w, "loadavg1_end", run->load_end);
    nb_json_int(w, "logical_cpus", run->si->logical_cpus);
    nb_json_end_object(w);
    nb_json_number(w, "seconds", run->seconds);
    if (run->shard_ranks) {
        nb_json_object(w, "shard");
        nb_json_int(w, "ranks", run->shard_ranks);
        nb_json_int(w, "ranks_on_rank0_host", run->ranks_per_host);
        nb_json_string(w, "timing",
                       "each rank timed its own problems (the record's rank) against its own "
                       "roof; the roof above is rank 0's. Ranks on one machine share its cores "
                       "and memory bandwidth: their timings are not comparable with a "
                       "single-process run's");
        nb_json_array(w, "missing"); /* problems no rank returned: none in a whole run */
        for (size_t i = 0; run->outcome && i < run->nproblems; i++)
            if (run->outcome[i] == BENCH_PROBLEM_MISSING) {
                char ps[512];
                nb_problem_format(&run->problems[i].p, ps, sizeof ps);
                nb_json_string(w, NULL, ps);
            }
        nb_json_end_array(w);
        nb_json_end_object(w);
    }
}

void bench_write_json(FILE *f, const bench_run *run)
{
    nb_json_writer w;
    nb_json_begin(&w, f);
    nb_json_object(&w, NULL);
    json_header(&w, run);
    json_settings(&w, run);
    nb_json_string(&w, "traffic_model", bench_traffic_model_text);
    json_roof(&w, run);
    nb_json_array(&w, "results");
    for (size_t i = 0; i < run->nrecords; i++)
        json_record(&w, run, &run->records[i]);
    nb_json_end_array(&w);
    nb_json_end_object(&w);
    nb_json_finish(&w);
}
