/* cli_options: dptrain's options, one row each (cli_table.h says what a row holds), with
 * the few that parse their own values and the rules between options. --help,
 * --help-markdown (docs/options.md) and the parsing all read this table. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli_table.h"

#ifndef DPTRAIN_VERSION
#define DPTRAIN_VERSION "0.1.0"
#endif

enum { SEC_DATA, SEC_MODEL, SEC_CKPT, SEC_OPTIM, SEC_RUN, SEC_HELP, NSECTIONS };

const cli_section cli_sections[NSECTIONS] = {
    {"Data", NULL},
    {"Model", NULL},
    {"Checkpoints",
     "SIGTERM, SIGUSR1 or SIGINT: checkpoint at the next step, then exit with status 75; a "
     "second SIGINT exits at once (130)."},
    {"Optimisation",
     "Optimizers (formulas, defaults, when to use which: docs/optimizers.md): sgd is "
     "torch.optim.SGD, adamw torch.optim.AdamW; lars (You et al. 2017) and lamb (You et al. "
     "2019) adapt the step per tensor, for large global batches. Options that the chosen "
     "optimizer does not read are refused."},
    {"Run", NULL},
    {"Help", NULL},
};
const int cli_nsections = NSECTIONS;

const char cli_intro[] =
    "Data-parallel training of a CNN on image-classification data in HDF5 shards. Every "
    "rank holds a full replica and reads its own share of the training data; gradients are "
    "summed exactly over the ranks every step, so the result does not depend on how many "
    "ranks or threads computed it.";
const char cli_exit_status[] =
    "Exit status: 0 done, 1 runtime error (data, files, numerics), 2 bad options, 75 "
    "stopped by a signal (checkpoint written when a directory was given: requeue and "
    "resume), 130 second interrupt.";

/* Defaults of lars and lamb, from the large-batch search of issue 12 (docs/large-batch.md:
 * one set for every global batch, reaching 99% at 4,096 and 98.5% at 8,192 in 10 epochs),
 * as numbers for the table of defaults and as text for the help. sgd and adamw keep the
 * short warm-up that suits their small-batch defaults. */
#define LARS_LR 3
#define LARS_WD 5e-4
#define LARS_TRUST 0.008
#define LARS_WARMUP 1
#define LAMB_LR 0.03
#define LAMB_WARMUP 1
#define WARMUP 0.1
#define TEXT(x) TEXT_(x)
#define TEXT_(x) #x

/* ---- options with their own parsing ------------------------------------------------- */

static int set_normalize(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err)
{
    (void)o;
    char *end;
    double mean = strtod(value, &end), sd = 0;
    if (end == value || *end != ',' ||
        cli_double_value("--normalize (std)", end + 1, 1e-6, 1e6, &sd, err))
        return dp_fail(err, "--normalize: expected MEAN,STD with STD > 0 (e.g. "
                            "0.1307,0.3081), got '%s'", value);
    if (!isfinite(mean))
        return dp_fail(err, "--normalize: the mean must be finite, got '%s'", value);
    ctx->cfg->normalize = 1;
    ctx->cfg->mean = (float)mean;
    ctx->cfg->std = (float)sd;
    return 0;
}

static int set_tutorial(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err)
{
    (void)o, (void)value, (void)err;
    dp_config *cfg = ctx->cfg;
    cfg->lr = 0.001;
    cfg->momentum = 0.9;
    cfg->batch = 100;
    cfg->schedule = LR_CONSTANT;
    cfg->warmup_epochs = 0;
    if (!cli_given(ctx, "epochs"))
        cfg->epochs = 10;
    return 0;
}

enum { TRACE_MAX_STEPS = 10000 };

static int set_trace_steps(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err)
{
    (void)o;
    char first[32];
    const char *colon = strchr(value, ':');
    long a = 0, b = 0;
    size_t n = colon ? (size_t)(colon - value) : 0;
    if (!colon || n == 0 || n >= sizeof first)
        return dp_fail(err, "--trace-steps: expected A:B (steps A to B, e.g. 10:20), got '%s'",
                       value);
    memcpy(first, value, n);
    first[n] = 0;
    if (cli_long_value("--trace-steps (A)", first, 1, 1L << 40, &a, err) ||
        cli_long_value("--trace-steps (B)", colon + 1, a, a + TRACE_MAX_STEPS - 1, &b, err))
        return -1;
    ctx->cfg->trace_first = a;
    ctx->cfg->trace_last = b;
    return 0;
}

static int show_help(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err)
{
    (void)o, (void)value, (void)err;
    cli_usage(ctx->out);
    return 1;
}

static int show_markdown(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err)
{
    (void)o, (void)value, (void)err;
    cli_markdown(ctx->out);
    return 1;
}

static int show_version(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err)
{
    (void)o, (void)value, (void)err;
    if (ctx->out)
        fprintf(ctx->out, "dptrain %s\n", DPTRAIN_VERSION);
    return 1;
}

/* ---- the table --------------------------------------------------------------------- */

/* CHOICE stores the index of the word: the enums must follow the words' order. */
_Static_assert(LR_CONSTANT == 0 && LR_COSINE == 1 && LR_STEP == 2, "--lr-schedule's words");
_Static_assert(OPT_SGD == 0 && OPT_LARS == 1 && OPT_LAMB == 2 && OPT_ADAMW == 3,
               "--optimizer's words (DP_OPTIMIZER_KINDS)");
static const char *const optimizer_names[] = {"sgd", "lars", "lamb", "adamw"};

const char *cli_optimizer_name(const dp_config *cfg) { return optimizer_names[cfg->optimizer]; }

/* --isa's words, in its row's order (dp_isa_select takes them). */
#define ISA_CHOICES "avx512|avx2|scalar|auto"
static const char *const isa_words[] = {"avx512", "avx2", "scalar", "auto"};

const char *cli_isa_name(const dp_config *cfg)
{
    return cfg->isa < 0 ? NULL : isa_words[cfg->isa];
}

#define PRECISION_CHOICES "fp32|bf16"
static const char *const precision_words[] = {"fp32", "bf16"};

const char *cli_precision_name(const dp_config *cfg) { return precision_words[cfg->precision]; }

#define CONV_ALGORITHM_CHOICES "direct|winograd"
static const char *const conv_algorithm_words[] = {"direct", "winograd"};

const char *cli_conv_algorithm_name(const dp_config *cfg)
{
    return conv_algorithm_words[cfg->conv_algorithm];
}

int cli_set_conv_algorithm(dp_config *cfg, const char *word)
{
    for (int i = 0; i < (int)(sizeof conv_algorithm_words / sizeof *conv_algorithm_words); i++)
        if (!strcmp(word, conv_algorithm_words[i])) {
            cfg->conv_algorithm = i;
            return 0;
        }
    return -1;
}

const cli_opt cli_options[] = {
    {"train", "PATH", CLI_STRING(train), .if_empty = "empty path", .init = "data/mnist/train",
     .section = SEC_DATA, .help = "training data: a directory of *.h5 shards, one .h5 file, "
                                  "or a comma-separated list of files"},
    {"test", "PATH|none", CLI_STRING(test), .if_empty = "empty path (use 'none' to skip "
                                                        "evaluation)",
     .init = "data/mnist/test.h5", .section = SEC_DATA,
     .help = "test data, same forms, evaluated after every epoch; none skips evaluation"},
    {"no-shuffle", NULL, CLI_FLAG(shuffle, 0), .section = SEC_DATA,
     .help = "take each file's samples in stored order instead of a new permutation every "
             "epoch (batches still draw from every file in proportion)"},
    {"normalize", "M,S", .parse = set_normalize, .shown = "off", .section = SEC_DATA,
     .help = "feed (pixel/255 - M) / S instead of pixel/255, e.g. 0.1307,0.3081"},

    {"model", "M", CLI_STRING(model), .if_empty = "empty", .init = "reference",
     .section = SEC_MODEL, .help = "a name (reference, nopool), a spec file, or a spec such "
                                   "as \"conv(32,3) relu maxpool(2) fc(classes)\""},
    {"classes", "N", CLI_INT(classes, 1, 256), .shown = "from the data", .section = SEC_MODEL,
     .help = "the model's classes (fc(classes) outputs); default: the data's num_classes "
             "attribute, else its largest label + 1, refused when that leaves a class without "
             "a sample or differs from what --test declares"},
    {"init-from", "FILE", CLI_STRING(init_from), .section = SEC_MODEL,
     .help = "start from weights saved with --save, a checkpoint, or a file written from "
             "PyTorch"},
    {"save", "FILE", CLI_STRING(save), .section = SEC_MODEL,
     .help = "write the final weights (HDF5, PyTorch state_dict names)"},
    {"seed", "N", CLI_INT(seed, 0, INT64_MAX), .init = "1", .section = SEC_MODEL,
     .help = "seed for initialisation and shuffling"},
    {"reinit", "LAYERS", CLI_STRING(reinit), .section = SEC_MODEL,
     .help = "after --init-from, re-initialise these layers (e.g. fc2)"},
    {"freeze", "LAYERS", CLI_STRING(freeze), .section = SEC_MODEL,
     .help = "do not train these layers (e.g. conv1,conv2)"},

    {"checkpoint-dir", "DIR", CLI_STRING(checkpoint_dir), .if_empty = "empty path",
     .section = SEC_CKPT, .help = "write checkpoints to DIR (created if missing)"},
    {"checkpoint-every", "N", CLI_INT(checkpoint_every, 1, 1L << 40), .shown = "off",
     .section = SEC_CKPT, .help = "a checkpoint every N optimizer steps"},
    {"checkpoint-every-epoch", NULL, CLI_FLAG(checkpoint_every_epoch, 1), .section = SEC_CKPT,
     .help = "a checkpoint at the end of every epoch"},
    {"keep", "K", CLI_INT(keep, 1, 1000000), .init = "3", .section = SEC_CKPT,
     .help = "keep the newest K complete checkpoints of this run (other runs' are never deleted)"},
    {"resume", "DIR", CLI_STRING(resume), .if_empty = "empty path", .section = SEC_CKPT,
     .help = "continue from the newest complete checkpoint in DIR (and keep writing "
             "checkpoints there unless --checkpoint-dir)"},
    {"overwrite-checkpoints", NULL, CLI_FLAG(overwrite_checkpoints, 1), .section = SEC_CKPT,
     .help = "start over in a checkpoint directory that holds another run's checkpoints: "
             "delete them (without it such a directory is refused, naming that run)"},

    {"epochs", "N", CLI_INT(epochs, 1, 1000000), .init = "5", .section = SEC_OPTIM,
     .help = "passes over the training set"},
    {"steps", "N", CLI_INT(steps, 0, 1L << 40), .shown = "no limit", .section = SEC_OPTIM,
     .help = "stop after N optimizer steps, possibly mid-epoch; 0 saves the initial weights "
             "without training"},
    {"batch", "N", CLI_INT(batch, 1, 1L << 24), .init = "100", .section = SEC_OPTIM,
     .help = "global batch, split over the ranks (per pass with --accumulate)"},
    {"accumulate", "N", CLI_INT(accumulate, 1, 1L << 16), .init = "1", .section = SEC_OPTIM,
     .help = "N passes per optimizer step, each over 1/N of every rank's groups: the global "
             "batch is N x --batch, bitwise the same training as --batch N x B, in 1/N of "
             "the memory"},
    {"group-size", "N", CLI_INT(group_size, 1, 1L << 20), .init = "8", .section = SEC_OPTIM,
     .help = "at most N samples per group: each file's share of a batch is cut into groups "
             "whose gradients are summed exactly, so that any number of ranks gives the same "
             "bits; the unit of work a rank takes (changes the bits: part of the training)"},
    {"optimizer", "S", CLI_CHOICE(optimizer, DP_OPTIMIZER_KINDS), .init = "sgd",
     .section = SEC_OPTIM, .help = "sgd, lars, lamb or adamw"},
    {"lr", "X", CLI_DOUBLE(lr, 0.0, 1e6), .shown = "per optimizer", .section = SEC_OPTIM,
     .help = "peak learning rate; sgd 0.05, lars " TEXT(LARS_LR) ", lamb " TEXT(LAMB_LR) ", adamw "
             "0.001"},
    {"momentum", "X", CLI_DOUBLE(momentum, 0.0, 0.999999), .init = "0.9", .section = SEC_OPTIM,
     .help = "momentum (sgd, lars)"},
    {"weight-decay", "X", CLI_DOUBLE(weight_decay, 0.0, 1.0), .shown = "per optimizer",
     .section = SEC_OPTIM, .help = "sgd, lars: L2 weight decay added to the gradient (sgd 0, "
                                   "lars " TEXT(LARS_WD) "); lamb, adamw: decoupled weight decay "
                                   "(0.01)"},
    {"nesterov", NULL, CLI_FLAG(nesterov, 1), .section = SEC_OPTIM,
     .help = "Nesterov momentum (sgd, lars)"},
    {"trust-coefficient", "X", CLI_DOUBLE(trust_coefficient, 1e-12, 1e6), .init = TEXT(LARS_TRUST),
     .section = SEC_OPTIM, .help = "lars: eta in the trust ratio eta ||w|| / (||g|| + "
                                   "weight decay ||w||)"},
    {"beta1", "X", CLI_DOUBLE(beta1, 0.0, 0.999999), .init = "0.9", .section = SEC_OPTIM,
     .help = "lamb, adamw: decay of the first moment"},
    {"beta2", "X", CLI_DOUBLE(beta2, 0.0, 0.999999), .init = "0.999", .section = SEC_OPTIM,
     .help = "lamb, adamw: decay of the second moment"},
    {"eps", "X", CLI_DOUBLE(eps, 0.0, 1.0), .shown = "per optimizer", .section = SEC_OPTIM,
     .help = "lamb, adamw: added to the root of the second moment (lamb 1e-6, adamw 1e-8)"},
    {"exclude-bias-from-adaptation", NULL, CLI_FLAG(exclude_bias, 1), .shown = "on",
     .section = SEC_OPTIM, .help = "lars, lamb: biases (1-D tensors) take the plain step, "
                                   "without trust ratio and weight decay"},
    {"no-exclude-bias-from-adaptation", NULL, CLI_FLAG(exclude_bias, 0), .section = SEC_OPTIM,
     .help = "lars, lamb: biases are adapted and decayed like the weights"},
    {"lr-schedule", "S", CLI_CHOICE(schedule, "constant|cosine|step"), .init = "cosine",
     .section = SEC_OPTIM, .help = "constant, cosine (to 0 at the end) or step"},
    {"warmup-epochs", "X", CLI_DOUBLE(warmup_epochs, 0.0, 1e6), .shown = "per optimizer",
     .section = SEC_OPTIM, .help = "linear warm-up over X epochs; sgd " TEXT(WARMUP) ", lars "
                                   TEXT(LARS_WARMUP) ", lamb " TEXT(LAMB_WARMUP) ", adamw "
                                   TEXT(WARMUP)},
    {"lr-scaling", "S", CLI_CHOICE(lr_scaling, "none|linear"), .init = "none",
     .section = SEC_OPTIM,
     .help = "none, or linear: peak lr = --lr x batch / --lr-base-batch (Goyal et al. 2017); "
             "with large batches combine it with --warmup-epochs"},
    {"lr-base-batch", "N", CLI_INT(lr_base_batch, 1, 1L << 24), .init = "100",
     .section = SEC_OPTIM, .help = "the global batch --lr is meant for"},
    {"lr-step-epochs", "X", CLI_DOUBLE(step_epochs, 1e-6, 1e6), .init = "1",
     .section = SEC_OPTIM, .help = "step schedule: multiply by --lr-gamma every X epochs"},
    {"lr-gamma", "X", CLI_DOUBLE(gamma, 0.0, 1.0), .init = "0.7", .section = SEC_OPTIM,
     .help = "step schedule factor"},
    {"tutorial", NULL, .parse = set_tutorial, .section = SEC_OPTIM,
     .help = "the PyTorch tutorial's settings: lr 0.001, momentum 0.9, constant, no warm-up, "
             "batch 100, 10 epochs unless --epochs is given (options after it still apply)"},

    {"overlap", NULL, CLI_FLAG(overlap, 1), .shown = "when the ranks span several nodes",
     .section = SEC_RUN,
     .help = "reduce the gradients bucket by bucket (MPI_Iallreduce) while backward goes on"},
    {"no-overlap", NULL, CLI_FLAG(overlap, 0), .shown = "when all ranks share one node",
     .section = SEC_RUN,
     .help = "reduce the gradients after backward instead, in one MPI_Allreduce: the "
             "same bits; within a node the copies are the cores' own work, which nothing "
             "overlaps, and the blocking reduction costs half as much"},
    {"bucket-kb", "N", CLI_INT(bucket_kb, 1, 1L << 20), .init = "256", .section = SEC_RUN,
     .help = "gradient bucket size for the reduction, in KiB"},
    {"reduction", "R", CLI_CHOICE(reduction, "auto|mpi|shm"), .init = "auto",
     .section = SEC_RUN,
     .help = "how the ranks sum the gradients after backward: shm, through memory the "
             "ranks share (all on one node; the ranks sum every rank's sums piece by piece, "
             "each piece as soon as its layer is done on all ranks, by whichever rank is "
             "free first, and round them: 2-2.8x less time than MPI_Allreduce and its "
             "rounding on 2 ranks), or mpi, one MPI_Allreduce; auto: shm when every "
             "rank is on one node, without --overlap, and MPI's shared-memory directory "
             "(/dev/shm) has room, else mpi. The same bits every way"},
    {"balance", "B", CLI_CHOICE(balance, "auto|off|on"), .init = "auto", .section = SEC_RUN,
     .help = "on: each rank also holds the data file next to its part on either side, and "
             "every 8 steps the ranks' shares of the batch move towards their measured "
             "speeds, a group of samples at a time (unequal cores, busy or throttled nodes); "
             "with 2 or more threads a rank's threads' shares of its samples and rows follow "
             "their speeds too, reviewed about every 8 steps; "
             "off: the shares of the files and even shares for the threads (the end still "
             "reports each rank's own speed); "
             "auto: on unless a node has more ranks x threads "
             "than cores (they take turns on the cores: no rank is lastingly slower). The "
             "same bits every way"},
    {"threads", "N", CLI_INT(threads, 1, 1024), .shown = "automatic", .section = SEC_RUN,
     .help = "OpenMP threads per rank; automatic: OMP_NUM_THREADS, else the cores this rank "
             "may use divided among the ranks on its node, at least 1"},
    {"isa", "NAME", CLI_CHOICE(isa, ISA_CHOICES), .shown = "DPTRAIN_ISA, else auto",
     .section = SEC_RUN,
     .help = "the instruction set of the kernels: avx512, avx2, scalar (fmaf, ~80x slower) or "
             "auto, the widest this CPU offers; without --isa, DPTRAIN_ISA if set, else auto. "
             "Every path gives the same bits; one this CPU lacks is refused"},
    {"precision", "P", CLI_CHOICE(precision, PRECISION_CHOICES), .init = "fp32",
     .section = SEC_RUN,
     .help = "fp32, or bf16: the fc layers and the convolutions with 16 or more columns "
             "(all but conv1 in the reference model) multiply bf16 operands and sum in fp32 "
             "(AVX512-BF16 dot products); weights, gradients, the update and the other "
             "layers stay fp32. "
             "Deterministic for any rank and thread count, but other bits than fp32's. "
             "Its convolutions stay direct, so on AMD Zen 5 it is slower than the default "
             "fp32 with Winograd (0.63-0.80x); against fp32 with direct convolutions "
             "faster on AMD Zen 4 (a step 1.15-1.4x) and on Zen 5's reference model "
             "(1.14-1.25x), slower on Intel CPUs without AMX, whose VDPBF16PS runs at "
             "half the FMA rate (0.64-0.88x). "
             "Refused where the CPU lacks AVX512-BF16 (docs/performance.md#bf16)"},
    {"conv-algorithm", "A", CLI_CHOICE(conv_algorithm, CONV_ALGORITHM_CHOICES),
     .init = "winograd", .section = SEC_RUN,
     .help = "winograd: Winograd's F(4x4, 3x3) for the 3x3 convolutions with stride 1, no "
             "padding and 2 or more input channels (conv2 of the models here), 4x fewer "
             "multiply-adds in their products; the others stay direct, as do all under "
             "--precision bf16. Or direct: im2col and the products for every convolution, "
             "the default before 2026-12-06. Without this option --resume keeps the "
             "checkpoint's algorithm. Either is deterministic for any rank and thread "
             "count and the same on every instruction set; their rounding differs by a few "
             "units in the sixth digit (docs/performance.md#winograd-by-default)"},
    {"metrics", "FILE", CLI_STRING(metrics), .section = SEC_RUN,
     .help = "JSON Lines, one record per epoch, appended (rank 0 writes)"},
    {"log-every", "N", CLI_INT(log_every, 1, 1L << 40), .shown = "off", .section = SEC_RUN,
     .help = "also a step record in --metrics every N optimizer steps (and at an epoch's "
             "end): loss, accuracy, lr, images/s and the step's time split, mean and max "
             "over ranks"},
    {"trace", "FILE", CLI_STRING(trace), .if_empty = "empty path", .section = SEC_RUN,
     .help = "write a timeline of every rank (Chrome trace-event JSON, for Perfetto or "
             "chrome://tracing) over the --trace-steps window (rank 0 writes)"},
    {"trace-steps", "A:B", .parse = set_trace_steps, .init = "1:20", .section = SEC_RUN,
     .help = "the steps --trace records, A to B (1-based, at most 10000 steps), with the "
             "evaluation and checkpoints between them"},
    {"progress", NULL, CLI_FLAG(progress, 1), .shown = "on when the output is a terminal",
     .section = SEC_RUN,
     .help = "the live progress bar on stderr (rank 0), also when stderr is no terminal; by "
             "default it is drawn when rank 0's stderr reaches a terminal, directly or "
             "through the launcher beside it (mpirun, srun --pty), else a plain line every "
             "quarter of an epoch longer than 30 s"},
    {"no-progress", NULL, CLI_FLAG(progress, 0), .section = SEC_RUN,
     .help = "no progress bar and no progress lines"},
    {"quiet", NULL, CLI_FLAG(quiet, 1), .section = SEC_RUN, .help = "only errors"},
    {"clip-grad-norm", "X", CLI_DOUBLE(clip_grad_norm, 1e-12, 1e12), .shown = "off",
     .section = SEC_RUN, .help = "scale the averaged gradients to global L2 norm X when "
                                 "larger, as torch.nn.utils.clip_grad_norm_"},
    {"watchdog", "SECONDS", CLI_DOUBLE(watchdog, 0.1, 1e7), .shown = "off", .section = SEC_RUN,
     .help = "abort the job, naming the rank and step, when a rank spends longer than "
             "SECONDS in one step"},
    {"watchdog-io", "SECONDS", CLI_DOUBLE(watchdog_io, 0.1, 1e7),
     .shown = "10 x --watchdog, at least 120; off without --watchdog", .section = SEC_RUN,
     .help = "the same for the slow phases: evaluation, rank 0's checkpoint write, the "
             "checkpoint read of --resume, --save and the metrics record; the job ends "
             "naming the phase"},

    {"help", NULL, .parse = show_help, .section = SEC_HELP, .help = "print this help and exit"},
    {"help-markdown", NULL, .parse = show_markdown, .section = SEC_HELP,
     .help = "print the options as Markdown (docs/options.md) and exit"},
    {"version", NULL, .parse = show_version, .section = SEC_HELP,
     .help = "print the version and exit"},
};
const size_t cli_noptions = sizeof cli_options / sizeof cli_options[0];

/* ---- defaults and rules between options --------------------------------------------- */

void cli_special_defaults(dp_config *cfg)
{
    cfg->steps = -1;    /* no limit */
    cfg->progress = -1; /* on when stderr is a terminal */
    cfg->shuffle = 1;
    cfg->overlap = -1; /* not given: on across nodes, off within one (setup) */
    cfg->std = 1.0f;
    cfg->exclude_bias = 1;
    cfg->lr = cfg->weight_decay = cfg->eps = -1.0; /* per optimizer, once it is known */
    cfg->isa = -1; /* not given: DPTRAIN_ISA, else auto */
    cfg->warmup_epochs = -1.0;
}

/* Defaults that depend on --optimizer, in DP_OPTIMIZER_KINDS order; where they come from:
 * docs/optimizers.md. eps is read by lamb and adamw only. */
static const struct {
    double lr, weight_decay, eps, warmup_epochs;
} optimizer_defaults[] = {
    [OPT_SGD] = {0.05, 0.0, 0.0, WARMUP},
    [OPT_LARS] = {LARS_LR, LARS_WD, 0.0, LARS_WARMUP},
    [OPT_LAMB] = {LAMB_LR, 0.01, 1e-6, LAMB_WARMUP},
    [OPT_ADAMW] = {0.001, 0.01, 1e-8, WARMUP}, /* torch.optim.AdamW's, but the warm-up */
};

/* Options that only some optimizers read: given to another, they are refused rather than
 * ignored. kinds: bit 1 << dp_optimizer_choice. */
static const struct {
    const char *option;
    unsigned kinds;
    const char *names;
} optimizer_options[] = {
    {"momentum", 1u << OPT_SGD | 1u << OPT_LARS, "sgd and lars"},
    {"nesterov", 1u << OPT_SGD | 1u << OPT_LARS, "sgd and lars"},
    {"trust-coefficient", 1u << OPT_LARS, "lars"},
    {"beta1", 1u << OPT_LAMB | 1u << OPT_ADAMW, "lamb and adamw"},
    {"beta2", 1u << OPT_LAMB | 1u << OPT_ADAMW, "lamb and adamw"},
    {"eps", 1u << OPT_LAMB | 1u << OPT_ADAMW, "lamb and adamw"},
    {"exclude-bias-from-adaptation", 1u << OPT_LARS | 1u << OPT_LAMB, "lars and lamb"},
    {"no-exclude-bias-from-adaptation", 1u << OPT_LARS | 1u << OPT_LAMB, "lars and lamb"},
};

static int settle_optimizer(dp_config *cfg, const cli_ctx *ctx, dp_err *err)
{
    for (size_t i = 0; i < sizeof optimizer_options / sizeof optimizer_options[0]; i++)
        if (cli_given(ctx, optimizer_options[i].option) &&
            !(optimizer_options[i].kinds & 1u << cfg->optimizer))
            return dp_fail(err, "--%s: read by --optimizer %s only, this run uses %s",
                           optimizer_options[i].option, optimizer_options[i].names,
                           cli_optimizer_name(cfg));
    if (cfg->lr < 0) /* not given, nor set by --tutorial */
        cfg->lr = optimizer_defaults[cfg->optimizer].lr;
    if (cfg->weight_decay < 0)
        cfg->weight_decay = optimizer_defaults[cfg->optimizer].weight_decay;
    if (cfg->eps < 0)
        cfg->eps = optimizer_defaults[cfg->optimizer].eps;
    if (cfg->warmup_epochs < 0) /* not given, nor set by --tutorial */
        cfg->warmup_epochs = optimizer_defaults[cfg->optimizer].warmup_epochs;
    return 0;
}

int cli_check_combinations(dp_config *cfg, const cli_ctx *ctx, dp_err *err)
{
    if (settle_optimizer(cfg, ctx, err))
        return -1;
    if (cfg->steps >= 0 && !cli_given(ctx, "epochs"))
        cfg->epochs = 0; /* --steps alone decides the length */
    cfg->conv_algorithm_given = cli_given(ctx, "conv-algorithm");
    if ((cfg->checkpoint_every || cfg->checkpoint_every_epoch) && !cfg->checkpoint_dir &&
        !cfg->resume)
        return dp_fail(err, "--checkpoint-every/--checkpoint-every-epoch: need "
                            "--checkpoint-dir DIR (or --resume DIR) to write to");
    if (cfg->resume && cfg->init_from)
        return dp_fail(err, "--resume and --init-from: give one (a resume restores the weights "
                            "from the checkpoint)");
    if (cfg->log_every && !cfg->metrics)
        return dp_fail(err, "--log-every %ld: needs --metrics FILE to write the step records to",
                       cfg->log_every);
    if (cli_given(ctx, "trace-steps") && !cfg->trace)
        return dp_fail(err, "--trace-steps: only with --trace FILE");
    if (cfg->reinit && !cfg->init_from)
        return dp_fail(err, "--reinit %s: only with --init-from (without it every layer is "
                            "freshly initialised anyway)", cfg->reinit);
    return 0;
}
