/* test_checkpoint_files: the checkpoint file format's run identity (issue 13 item 3).
 * Two runs write into one directory: pruning to --keep deletes only the writing run's
 * own checkpoints (before, it kept the highest step numbers whoever wrote them, and a new
 * run's ckpt-00000005.h5 went at once beside an old run's steps 10-30); the listing
 * names each checkpoint's run; the metadata reads back the identity and the samples per
 * training file. A checkpoint damaged after it was written (a bit flipped in a chunk, which
 * no longer matches its checksum) is passed over for the newest intact one, and named. A
 * directory not made yet holds no checkpoint; one under a file cannot be read. */
#include <stdlib.h>
#include <unistd.h>

#include "data_check.h"
#include "dptrain/driver/model_views.h"
#include "dptrain/net/model.h"
#include "dptrain/optim/optim.h"
#include "dptrain/persist/checkpoint.h"
#include "dptrain/persist/weights.h"
#include "h5_damage.h"

static char *dir;

static int exists(long step)
{
    char name[64];
    snprintf(name, sizeof name, "ckpt-%08ld.h5", step);
    return access(check_path(dir, name), F_OK) == 0;
}

/* One checkpoint of `step` steps by run `run_id`, pruned to `keep` of its own. */
static void write_one(const dp_model *m, const dp_optimizer *opt, const char *run_id, long step,
                      int keep)
{
    int64_t counts[2] = {7, 5};
    int32_t exponents[1] = {0};
    char *paths[2] = {"a.h5", "b.h5"};
    dp_ckpt_meta meta = {.format = DP_CKPT_FORMAT, .step = step, .steps_per_epoch = 4,
                         .total_steps = 100, .ranks = 1, .threads = 1, .nsync = 1,
                         .global_batch = 3, .train_total = 12, .c = 1, .h = 2,
                         .w = 2, .num_classes = 3, .nfiles = 2, .file_paths = paths,
                         .file_counts = counts};
    snprintf(meta.model_spec, sizeof meta.model_spec, "%s", m->spec);
    snprintf(meta.run_id, sizeof meta.run_id, "%s", run_id);
    meta.sync_state = exponents; /* borrowed: not freed here */
    dp_err err;
    CHECK_OK(checkpoint_write(dir, m, opt, &meta, keep, NULL, 0, &err), &err);
}

int main(void)
{
    dir = check_tempdir("ckptfiles");
    dp_model m;
    dp_err err;
    CHECK_OK(model_build(&m, "fc(classes)", 1, 2, 2, 3, &err), &err);
    model_init(&m, 1);
    dp_param_view *views = model_param_views(&m, &err);
    dp_optim_config oc = {.kind = "sgd", .momentum = 0.9};
    dp_optimizer *opt = NULL;
    CHECK_OK(optimizer_create(&opt, &oc, views, m.nparams, &err), &err);

    /* an earlier run's steps 10, 20, 30; then a new run, --keep 3, writes step 5 */
    for (long s = 10; s <= 30; s += 10)
        write_one(&m, opt, "00000000000000aa", s, 3);
    write_one(&m, opt, "00000000000000bb", 5, 3);
    CHECK(exists(5) && exists(10) && exists(20) && exists(30));
    /* the new run goes on: its own step 5 goes when it has three newer; the other's stay */
    for (long s = 15; s <= 35; s += 10)
        write_one(&m, opt, "00000000000000bb", s, 3);
    CHECK(!exists(5) && exists(15) && exists(25) && exists(35));
    CHECK(exists(10) && exists(20) && exists(30));

    /* the listing: complete checkpoints, newest first, each with its run */
    write_one(&m, opt, "00000000000000bb", 45, 3); /* and 15 goes */
    FILE *junk = fopen(check_path(dir, "ckpt-00000099.h5"), "w"); /* not a checkpoint */
    if (junk) {
        fputs("garbage\n", junk);
        fclose(junk);
    }
    dp_ckpt_entry *e = NULL;
    int n = 0;
    CHECK_OK(checkpoint_list(dir, &e, &n, &err), &err);
    static const long steps[] = {45, 35, 30, 25, 20, 10};
    static const char *const runs[] = {"bb", "bb", "aa", "bb", "aa", "aa"};
    CHECK(n == 6);
    for (int i = 0; i < n && i < 6; i++) {
        CHECK(e[i].step == steps[i]);
        CHECK(strcmp(e[i].run_id + 14, runs[i]) == 0);
    }
    free(e);
    CHECK(exists(99)); /* never ours to judge */

    /* the metadata: the identity and the samples per file come back */
    dp_ckpt_meta meta;
    CHECK_OK(checkpoint_read_meta(check_path(dir, "ckpt-00000045.h5"), &meta, &err), &err);
    CHECK(strcmp(meta.run_id, "00000000000000bb") == 0);
    CHECK(meta.nfiles == 2 && meta.saved_counts && meta.saved_counts[0] == 7 &&
          meta.saved_counts[1] == 5);
    checkpoint_meta_free(&meta);

    /* a bit flipped in the newest checkpoint: --resume takes the one before, and says why */
    char found[4096], damaged[1024];
    CHECK(checkpoint_find_latest(dir, found, sizeof found, damaged, sizeof damaged, &err) == 0);
    CHECK(strstr(found, "ckpt-00000045.h5") && damaged[0] == '\0');
    const char *newest = check_path(dir, "ckpt-00000045.h5");
    CHECK(h5_damage_chunk(newest, m.params[0].name, 3) == 0);
    CHECK(checkpoint_find_latest(dir, found, sizeof found, damaged, sizeof damaged, &err) == 0);
    CHECK(strstr(found, "ckpt-00000035.h5") != NULL);
    CHECK(strstr(damaged, "ckpt-00000045.h5") && strstr(damaged, m.params[0].name) &&
          strstr(damaged, "do not match the checksum stored with them"));
    printf("  damaged, passed over: %s\n", damaged);
    CHECK(exists(45)); /* left in place */
    CHECK_FAILS(weights_load(&m, newest, &err), &err, "ckpt-00000045.h5",
                "do not match the checksum stored with them");
    /* and a damaged optimizer state counts as much as damaged weights */
    CHECK(h5_damage_chunk(check_path(dir, "ckpt-00000035.h5"),
                          "dptrain/optimizer/fc1.weight.momentum_buffer", 0) == 0);
    CHECK(checkpoint_find_latest(dir, found, sizeof found, damaged, sizeof damaged, &err) == 0);
    CHECK(strstr(found, "ckpt-00000030.h5") && strstr(damaged, "ckpt-00000045.h5"));

    /* a directory not made yet holds no checkpoint (1); one under a file cannot be read */
    CHECK(checkpoint_find_latest(check_path(dir, "notyet"), found, sizeof found, NULL, 0,
                                 &err) == 1);
    CHECK(strstr(err.msg, "no checkpoint (the directory does not exist yet)") != NULL);
    CHECK(checkpoint_find_latest(check_path(dir, "ckpt-00000030.h5/sub"), found, sizeof found,
                                 NULL, 0, &err) == -1);
    CHECK(strstr(err.msg, "cannot read the checkpoint directory (Not a directory)") != NULL);

    optimizer_free(opt);
    free(views);
    model_free(&m);
    check_rmtree(dir);
    free(dir);
    return check_finish("test_checkpoint_files");
}
