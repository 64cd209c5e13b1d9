#include "dptrain/driver/cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef DPTRAIN_VERSION
#define DPTRAIN_VERSION "0.1.0"
#endif

/* Defaults reach >= 99.0% MNIST test accuracy with the reference model (README). */
#define DEFAULT_EPOCHS 5
#define DEFAULT_LR 0.05
#define DEFAULT_WARMUP_EPOCHS 0.1

void cli_usage(FILE *out)
{
    if (!out)
        return;
    fprintf(out,
"Usage: mpirun -n RANKS dptrain [OPTIONS]\n"
"Data-parallel training of a CNN on image-classification data in HDF5 shards. Every rank\n"
"holds a full replica and reads its own share of the training data; gradients are\n"
"summed with MPI_Allreduce and averaged over the global batch every step.\n"
"\n"
"Data:\n"
"  --train PATH        training data: a directory of *.h5 shards, one .h5 file, or a\n"
"                      comma-separated list of files (default data/mnist/train)\n"
"  --test PATH|none    test data, same forms; evaluated after every epoch\n"
"                      (default data/mnist/test.h5; 'none' skips evaluation)\n"
"  --no-shuffle        keep file order (default: reshuffle each rank's share every pass)\n"
"  --normalize M,S     feed (pixel/255 - M) / S instead of pixel/255 (e.g. 0.1307,0.3081)\n"
"\n"
"Model:\n"
"  --model M           a name (reference, nopool), a spec file, or a spec such as\n"
"                      \"conv(32,3) relu maxpool(2) fc(classes)\" (default reference)\n"
"  --init-from FILE    start from weights saved with --save (or written from PyTorch)\n"
"  --save FILE         write the final weights (HDF5, PyTorch state_dict names)\n"
"  --seed N            seed for initialisation and shuffling (default 1)\n"
"  --reinit LAYERS     after --init-from, re-initialise these layers (e.g. fc2)\n"
"  --freeze LAYERS     do not train these layers (e.g. conv1,conv2)\n"
"\n"
"Checkpoints (README: Checkpoints, resume and fine-tuning):\n"
"  --checkpoint-dir DIR       write checkpoints to DIR (created if missing)\n"
"  --checkpoint-every N       a checkpoint every N optimizer steps\n"
"  --checkpoint-every-epoch   a checkpoint at the end of every epoch\n"
"  --keep K                   keep the newest K checkpoints (default 3)\n"
"  --resume DIR               continue from the newest complete checkpoint in DIR (and\n"
"                             keep writing checkpoints there unless --checkpoint-dir)\n"
"  SIGTERM, SIGUSR1 or SIGINT: checkpoint at the next step, then exit with status 75;\n"
"  a second SIGINT exits at once (130)\n"
"\n"
"Optimisation (SGD with momentum, as torch.optim.SGD):\n"
"  --epochs N          passes over the training set (default %d)\n"
"  --steps N           stop after N optimizer steps (may end mid-epoch; 0 saves the\n"
"                      initial weights without training)\n"
"  --batch N           global batch, split over the ranks (default 100)\n"
"  --lr X              peak learning rate (default %g)\n"
"  --momentum X        momentum (default 0.9)\n"
"  --weight-decay X    L2 weight decay (default 0)\n"
"  --nesterov          Nesterov momentum\n"
"  --lr-schedule S     constant, cosine (to 0 at the end; default) or step\n"
"  --warmup-epochs X   linear warm-up over X epochs (default %g)\n"
"  --lr-scaling S      none (default) or linear: peak lr = --lr x batch / --lr-base-batch\n"
"                      (Goyal et al. 2017; combine with --warmup-epochs for large batches)\n"
"  --lr-base-batch N   the global batch --lr is meant for (default 100)\n"
"  --lr-step-epochs X  step schedule: multiply by --lr-gamma every X epochs (default 1)\n"
"  --lr-gamma X        step schedule factor (default 0.7)\n"
"  --tutorial          the PyTorch tutorial's settings: lr 0.001, momentum 0.9, constant,\n"
"                      10 epochs (options after it still apply)\n"
"\n"
"Run:\n"
"  --no-overlap        reduce the gradients after backward instead of bucket by bucket\n"
"                      while backward goes on (the same bits either way)\n"
"  --bucket-kb N       gradient bucket size for the reduction (default 256)\n"
"  --threads N         OpenMP threads per rank (default: OMP_NUM_THREADS, else the cores\n"
"                      this rank may use divided among the ranks on its node, at least 1)\n"
"  --metrics FILE      JSON Lines, one record per epoch (rank 0 writes)\n"
"  --progress          force the live progress bar; --no-progress turns it off\n"
"                      (default: on when stderr is a terminal)\n"
"  --quiet             only errors\n"
"  --clip-grad-norm X  scale the averaged gradients to global L2 norm X when larger\n"
"                      (as torch.nn.utils.clip_grad_norm_; default off)\n"
"  --watchdog SECONDS  abort the job, naming the rank and step, when a rank spends\n"
"                      longer than SECONDS in one step (default off)\n"
"  --help, --version\n"
"\n"
"Exit status: 0 done, 1 runtime error (data, files, numerics), 2 bad options,\n"
"75 stopped by a signal (checkpoint written when a directory was given: requeue and\n"
"resume), 130 second interrupt.\n",
            DEFAULT_EPOCHS, DEFAULT_LR, DEFAULT_WARMUP_EPOCHS);
}

static int parse_long(const char *opt, const char *s, long lo, long hi, long *out, dp_err *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end)
        return dp_fail(err, "%s: expected an integer, got '%s'", opt, s);
    if (v < lo || v > hi)
        return dp_fail(err, "%s: %ld is out of range [%ld, %ld]", opt, v, lo, hi);
    *out = v;
    return 0;
}

static int parse_double(const char *opt, const char *s, double lo, double hi, double *out,
                        dp_err *err)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return dp_fail(err, "%s: expected a number, got '%s'", opt, s);
    if (v < lo || v > hi)
        return dp_fail(err, "%s: %g is out of range [%g, %g]", opt, v, lo, hi);
    *out = v;
    return 0;
}

enum {
    OPT_EPOCHS = 256, OPT_STEPS, OPT_BATCH, OPT_LR, OPT_MOMENTUM, OPT_WD, OPT_NESTEROV,
    OPT_SCHEDULE, OPT_WARMUP, OPT_STEP_EPOCHS, OPT_GAMMA, OPT_TUTORIAL, OPT_SEED, OPT_MODEL,
    OPT_TRAIN, OPT_TEST, OPT_NO_SHUFFLE, OPT_THREADS, OPT_NORMALIZE, OPT_METRICS, OPT_SAVE,
    OPT_INIT_FROM, OPT_PROGRESS, OPT_NO_PROGRESS, OPT_QUIET, OPT_HELP, OPT_VERSION, OPT_OVERLAP,
    OPT_NO_OVERLAP, OPT_BUCKET_KB, OPT_CKPT_DIR, OPT_CKPT_EVERY, OPT_CKPT_EPOCH, OPT_KEEP,
    OPT_RESUME, OPT_REINIT, OPT_FREEZE, OPT_CLIP_GRAD_NORM, OPT_WATCHDOG, OPT_LR_SCALING,
    OPT_LR_BASE_BATCH
};

static const struct option options[] = {
    {"epochs", required_argument, 0, OPT_EPOCHS},
    {"steps", required_argument, 0, OPT_STEPS},
    {"batch", required_argument, 0, OPT_BATCH},
    {"lr", required_argument, 0, OPT_LR},
    {"momentum", required_argument, 0, OPT_MOMENTUM},
    {"weight-decay", required_argument, 0, OPT_WD},
    {"nesterov", no_argument, 0, OPT_NESTEROV},
    {"lr-schedule", required_argument, 0, OPT_SCHEDULE},
    {"warmup-epochs", required_argument, 0, OPT_WARMUP},
    {"lr-scaling", required_argument, 0, OPT_LR_SCALING},
    {"lr-base-batch", required_argument, 0, OPT_LR_BASE_BATCH},
    {"lr-step-epochs", required_argument, 0, OPT_STEP_EPOCHS},
    {"lr-gamma", required_argument, 0, OPT_GAMMA},
    {"tutorial", no_argument, 0, OPT_TUTORIAL},
    {"seed", required_argument, 0, OPT_SEED},
    {"model", required_argument, 0, OPT_MODEL},
    {"train", required_argument, 0, OPT_TRAIN},
    {"test", required_argument, 0, OPT_TEST},
    {"no-shuffle", no_argument, 0, OPT_NO_SHUFFLE},
    {"threads", required_argument, 0, OPT_THREADS},
    {"normalize", required_argument, 0, OPT_NORMALIZE},
    {"metrics", required_argument, 0, OPT_METRICS},
    {"save", required_argument, 0, OPT_SAVE},
    {"init-from", required_argument, 0, OPT_INIT_FROM},
    {"progress", no_argument, 0, OPT_PROGRESS},
    {"no-progress", no_argument, 0, OPT_NO_PROGRESS},
    {"quiet", no_argument, 0, OPT_QUIET},
    {"overlap", no_argument, 0, OPT_OVERLAP},
    {"no-overlap", no_argument, 0, OPT_NO_OVERLAP},
    {"bucket-kb", required_argument, 0, OPT_BUCKET_KB},
    {"help", no_argument, 0, OPT_HELP},
    {"version", no_argument, 0, OPT_VERSION},
    {"checkpoint-dir", required_argument, 0, OPT_CKPT_DIR},
    {"checkpoint-every", required_argument, 0, OPT_CKPT_EVERY},
    {"checkpoint-every-epoch", no_argument, 0, OPT_CKPT_EPOCH},
    {"keep", required_argument, 0, OPT_KEEP},
    {"resume", required_argument, 0, OPT_RESUME},
    {"reinit", required_argument, 0, OPT_REINIT},
    {"freeze", required_argument, 0, OPT_FREEZE},
    {"clip-grad-norm", required_argument, 0, OPT_CLIP_GRAD_NORM},
    {"watchdog", required_argument, 0, OPT_WATCHDOG},
    {0, 0, 0, 0},
};

int cli_parse(int argc, char **argv, dp_config *cfg, FILE *out, dp_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->epochs = DEFAULT_EPOCHS;
    cfg->steps = -1;
    cfg->batch = 100;
    cfg->lr = DEFAULT_LR;
    cfg->momentum = 0.9;
    cfg->schedule = LR_COSINE;
    cfg->warmup_epochs = DEFAULT_WARMUP_EPOCHS;
    cfg->step_epochs = 1.0;
    cfg->lr_base_batch = 100;
    cfg->gamma = 0.7;
    cfg->seed = 1;
    cfg->model = "reference";
    cfg->train = "data/mnist/train";
    cfg->test = "data/mnist/test.h5";
    cfg->shuffle = 1;
    cfg->progress = -1;
    cfg->overlap = 1;
    cfg->bucket_kb = 256;
    cfg->std = 1.0f;
    cfg->keep = 3;
    int epochs_given = 0;

    optind = 0; /* reset getopt (also makes GNU getopt re-initialise) */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        const char *name = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        long l = 0;
        switch (c) {
        case OPT_EPOCHS:
            if (parse_long("--epochs", optarg, 1, 1000000, &l, err))
                return -1;
            cfg->epochs = (int)l;
            epochs_given = 1;
            break;
        case OPT_STEPS:
            if (parse_long("--steps", optarg, 0, 1L << 40, &l, err))
                return -1;
            cfg->steps = l;
            break;
        case OPT_BATCH:
            if (parse_long("--batch", optarg, 1, 1L << 24, &l, err))
                return -1;
            cfg->batch = (int)l;
            break;
        case OPT_LR:
            if (parse_double("--lr", optarg, 0.0, 1e6, &cfg->lr, err))
                return -1;
            break;
        case OPT_MOMENTUM:
            if (parse_double("--momentum", optarg, 0.0, 0.999999, &cfg->momentum, err))
                return -1;
            break;
        case OPT_WD:
            if (parse_double("--weight-decay", optarg, 0.0, 1.0, &cfg->weight_decay, err))
                return -1;
            break;
        case OPT_NESTEROV:
            cfg->nesterov = 1;
            break;
        case OPT_SCHEDULE:
            if (!strcmp(optarg, "constant"))
                cfg->schedule = LR_CONSTANT;
            else if (!strcmp(optarg, "cosine"))
                cfg->schedule = LR_COSINE;
            else if (!strcmp(optarg, "step"))
                cfg->schedule = LR_STEP;
            else
                return dp_fail(err, "--lr-schedule: expected constant, cosine or step, got '%s'",
                               optarg);
            break;
        case OPT_WARMUP:
            if (parse_double("--warmup-epochs", optarg, 0.0, 1e6, &cfg->warmup_epochs, err))
                return -1;
            break;
        case OPT_LR_SCALING:
            if (!strcmp(optarg, "none"))
                cfg->lr_scaling = 0;
            else if (!strcmp(optarg, "linear"))
                cfg->lr_scaling = 1;
            else
                return dp_fail(err, "--lr-scaling: expected none or linear, got '%s'", optarg);
            break;
        case OPT_LR_BASE_BATCH:
            if (parse_long("--lr-base-batch", optarg, 1, 1L << 24, &l, err))
                return -1;
            cfg->lr_base_batch = (int)l;
            break;
        case OPT_STEP_EPOCHS:
            if (parse_double("--lr-step-epochs", optarg, 1e-6, 1e6, &cfg->step_epochs, err))
                return -1;
            break;
        case OPT_GAMMA:
            if (parse_double("--lr-gamma", optarg, 0.0, 1.0, &cfg->gamma, err))
                return -1;
            break;
        case OPT_TUTORIAL:
            cfg->lr = 0.001;
            cfg->momentum = 0.9;
            cfg->batch = 100;
            cfg->schedule = LR_CONSTANT;
            cfg->warmup_epochs = 0;
            if (!epochs_given)
                cfg->epochs = 10;
            break;
        case OPT_SEED:
            if (parse_long("--seed", optarg, 0, 0x7fffffffffffffffL, &l, err))
                return -1;
            cfg->seed = (uint64_t)l;
            break;
        case OPT_MODEL:
            if (!*optarg)
                return dp_fail(err, "--model: empty");
            cfg->model = optarg;
            break;
        case OPT_TRAIN:
            if (!*optarg)
                return dp_fail(err, "--train: empty path");
            cfg->train = optarg;
            break;
        case OPT_TEST:
            if (!*optarg)
                return dp_fail(err, "--test: empty path (use 'none' to skip evaluation)");
            cfg->test = optarg;
            break;
        case OPT_NO_SHUFFLE:
            cfg->shuffle = 0;
            break;
        case OPT_THREADS:
            if (parse_long("--threads", optarg, 1, 1024, &l, err))
                return -1;
            cfg->threads = (int)l;
            break;
        case OPT_NORMALIZE: {
            char *end;
            double mean = strtod(optarg, &end), sd;
            if (end == optarg || *end != ',' || parse_double("--normalize (std)", end + 1, 1e-6,
                                                             1e6, &sd, err))
                return dp_fail(err, "--normalize: expected MEAN,STD with STD > 0 (e.g. "
                                    "0.1307,0.3081), got '%s'", optarg);
            if (!isfinite(mean))
                return dp_fail(err, "--normalize: the mean must be finite, got '%s'", optarg);
            cfg->normalize = 1;
            cfg->mean = (float)mean;
            cfg->std = (float)sd;
            break;
        }
        case OPT_METRICS:
            cfg->metrics = optarg;
            break;
        case OPT_SAVE:
            cfg->save = optarg;
            break;
        case OPT_INIT_FROM:
            cfg->init_from = optarg;
            break;
        case OPT_PROGRESS:
            cfg->progress = 1;
            break;
        case OPT_NO_PROGRESS:
            cfg->progress = 0;
            break;
        case OPT_QUIET:
            cfg->quiet = 1;
            break;
        case OPT_OVERLAP:
            cfg->overlap = 1;
            break;
        case OPT_NO_OVERLAP:
            cfg->overlap = 0;
            break;
        case OPT_BUCKET_KB:
            if (parse_long("--bucket-kb", optarg, 1, 1 << 20, &l, err))
                return -1;
            cfg->bucket_kb = (int)l;
            break;
        case OPT_CLIP_GRAD_NORM:
            if (parse_double("--clip-grad-norm", optarg, 1e-12, 1e12, &cfg->clip_grad_norm, err))
                return -1;
            break;
        case OPT_WATCHDOG:
            if (parse_double("--watchdog", optarg, 0.1, 1e7, &cfg->watchdog, err))
                return -1;
            break;
        case OPT_HELP:
            cli_usage(out);
            return 1;
        case OPT_VERSION:
            if (out)
                fprintf(out, "dptrain %s\n", DPTRAIN_VERSION);
            return 1;
        case OPT_CKPT_DIR:
            if (!*optarg)
                return dp_fail(err, "--checkpoint-dir: empty path");
            cfg->checkpoint_dir = optarg;
            break;
        case OPT_CKPT_EVERY:
            if (parse_long("--checkpoint-every", optarg, 1, 1L << 40, &l, err))
                return -1;
            cfg->checkpoint_every = l;
            break;
        case OPT_CKPT_EPOCH:
            cfg->checkpoint_every_epoch = 1;
            break;
        case OPT_KEEP:
            if (parse_long("--keep", optarg, 1, 1000000, &l, err))
                return -1;
            cfg->keep = (int)l;
            break;
        case OPT_RESUME:
            if (!*optarg)
                return dp_fail(err, "--resume: empty path");
            cfg->resume = optarg;
            break;
        case OPT_REINIT:
            cfg->reinit = optarg;
            break;
        case OPT_FREEZE:
            cfg->freeze = optarg;
            break;
        case ':':
            return dp_fail(err, "%s: needs a value (see --help)", name);
        default:
            return dp_fail(err, "unknown option '%s' (see --help)", name);
        }
    }
    if (optind < argc)
        return dp_fail(err, "unexpected argument '%s' (options start with --; see --help)",
                       argv[optind]);
    if (cfg->steps >= 0 && !epochs_given)
        cfg->epochs = 0; /* --steps alone decides the length */
    if ((cfg->checkpoint_every || cfg->checkpoint_every_epoch) && !cfg->checkpoint_dir &&
        !cfg->resume)
        return dp_fail(err, "--checkpoint-every/--checkpoint-every-epoch: need "
                            "--checkpoint-dir DIR (or --resume DIR) to write to");
    if (cfg->resume && cfg->init_from)
        return dp_fail(err, "--resume and --init-from: give one (a resume restores the weights "
                            "from the checkpoint)");
    if (cfg->reinit && !cfg->init_from)
        return dp_fail(err, "--reinit %s: only with --init-from (without it every layer is "
                            "freshly initialised anyway)", cfg->reinit);
    return 0;
}

double cli_peak_lr(const dp_config *cfg)
{
    if (!cfg->lr_scaling)
        return cfg->lr;
    return cfg->lr * (double)cfg->batch / (double)cfg->lr_base_batch;
}
