/* cli: dptrain's options, parsed and validated into one config struct, --help and the
 * options page (docs/options.md), all from one option table (cli.c: adding an option is
 * one row there plus its field here).
 *
 * Parsing touches neither MPI nor files, so every rank parses the same argv to the
 * same result. Strings point into argv (or are the table's default literals). */
#ifndef DPTRAIN_CLI_H
#define DPTRAIN_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "dptrain/util/error.h"
#include "dptrain/optim/optim.h"

/* --optimizer's words, in DP_OPTIMIZER_KINDS order (optim.h). */
typedef enum { OPT_SGD, OPT_LARS, OPT_LAMB, OPT_ADAMW } dp_optimizer_choice;

typedef struct {
    int epochs;          /* 0 with --steps: as many as the steps need */
    long steps;          /* stop after this many optimizer steps; -1: no limit */
    int batch;           /* global batch */
    int accumulate;      /* passes per optimizer step: the global batch is batch x accumulate */
    int group_size;      /* at most this many samples per group of the exact gradient sum */
    int optimizer;       /* dp_optimizer_choice: --optimizer */
    double lr, momentum, weight_decay; /* lr, weight_decay: defaults per optimizer */
    int nesterov;
    double beta1, beta2, eps;          /* lamb, adamw (eps: default per optimizer) */
    double trust_coefficient;          /* lars */
    int exclude_bias;                  /* lars, lamb: biases take the plain step */
    dp_lr_kind schedule;
    double warmup_epochs;
    int lr_scaling;       /* 1: --lr-scaling linear (lr x batch / lr_base_batch) */
    int lr_base_batch;    /* the batch --lr was tuned for (default 100) */
    double step_epochs, gamma; /* for the step schedule */
    uint64_t seed;
    const char *model;
    int classes;          /* the model's outputs; 0: from the data */
    const char *train, *test; /* test may be "none" */
    int shuffle;
    int threads;          /* 0: automatic */
    int isa;              /* --isa: index in its choices; -1: not given (cli_isa_name) */
    int precision;        /* --precision: 0 fp32, 1 bf16 (cli_precision_name) */
    int conv_algorithm;   /* --conv-algorithm: 0 direct, 1 winograd (cli_conv_algorithm_name) */
    int conv_algorithm_given; /* 0: the default, which a resumed run takes from its checkpoint */
    int normalize;
    float mean, std;
    const char *metrics, *save, *init_from;
    int progress;         /* -1 auto (terminal), 0 off, 1 on */
    int overlap;          /* reduce gradient buckets while backward goes on; -1: not given,
                             so on when the ranks span several nodes, else off (setup) */
    int bucket_kb;
    int reduction;        /* --reduction: 0 auto, 1 mpi, 2 shm */
    int balance;          /* --balance: 0 auto, 1 off, 2 on (shares follow the ranks' speeds) */
    int quiet;
    /* checkpoints and fine-tuning (README "Checkpoints, resume and fine-tuning") */
    const char *checkpoint_dir; /* NULL: --resume's directory, if any */
    long checkpoint_every;      /* steps; 0: off */
    int checkpoint_every_epoch;
    int keep;                   /* complete checkpoints kept */
    const char *resume;         /* directory to resume from */
    int overwrite_checkpoints;  /* delete other runs' checkpoints in the directory */
    const char *reinit, *freeze; /* comma lists of layer names */
    double clip_grad_norm; /* 0: off */
    double watchdog;       /* seconds; 0: off */
    /* seeing training as it happens (docs/training.md, docs/trace.md) */
    long log_every;        /* step records every N steps in --metrics; 0: off */
    const char *trace;     /* Chrome trace-event JSON file; NULL: off */
    long trace_first, trace_last; /* --trace-steps A:B, 1-based steps, inclusive */
    double watchdog_io;    /* seconds for evaluation, checkpoints, --save, metrics; 0: default */
} dp_config;

/* 0: run; 1: --help/--version printed, exit 0; -1: error in err (exit 2). */
int cli_parse(int argc, char **argv, dp_config *cfg, FILE *out, dp_err *err);
/* --help: the options by section, from the option table in cli.c. */
void cli_usage(FILE *out);
/* --help-markdown: the same table as docs/options.md. */
void cli_markdown(FILE *out);
/* The optimizer's name as optimizer_create takes it ("sgd", "lars", "lamb", "adamw"). */
const char *cli_optimizer_name(const dp_config *cfg);
/* The peak learning rate the run uses: --lr, times batch / --lr-base-batch under
 * --lr-scaling linear (Goyal et al. 2017). */
double cli_peak_lr(const dp_config *cfg);
/* --isa's word for dp_isa_select (isa.h), or NULL without --isa (DPTRAIN_ISA, else auto). */
const char *cli_isa_name(const dp_config *cfg);
/* --precision's word for dp_precision_select (isa.h): "fp32" or "bf16". */
const char *cli_precision_name(const dp_config *cfg);
/* --conv-algorithm's word for dp_conv_algorithm_select (isa.h): "direct" or "winograd". */
const char *cli_conv_algorithm_name(const dp_config *cfg);
/* Sets cfg->conv_algorithm to the algorithm a word names ("direct" or "winograd", as a
 * checkpoint records it): 0, or -1 for another word, cfg unchanged. */
int cli_set_conv_algorithm(dp_config *cfg, const char *word);
/* The samples per optimizer step: --batch x --accumulate. */
int cli_global_batch(const dp_config *cfg);

#endif
