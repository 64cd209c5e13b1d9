/* Hardening: regressions for what the fuzzers found, the gradient guard (NaN/Inf per
 * tensor, clipping against a hand computation) and the new options' ranges. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dptrain/driver/cli.h"
#include "dptrain/data/idx.h"
#include "dptrain/net/model.h"
#include "dptrain/net/numerics.h"

/* Specs the fuzzing of model_build turned up (fuzz/corpus/model_spec/regress-*). */
static void test_spec_limits(void)
{
    static const struct { const char *spec, *needle; } bad[] = {
        /* kernel*kernel overflowed int (UBSan) before the kernel-fits check */
        {"conv(1,60000,pad=30000) fc", "layer 1 conv(1,60000,stride=1,pad=30000)"},
        /* 10^12 weights: a 4 TB allocation instead of a message */
        {"fc(1000000) fc(1000000) fc", "layer 2 fc(1000000): 1000000 x 1000000 weights"},
        /* padding blows the activations up to 8 x 2000026 x 2000026 per sample */
        {"conv(8,3,pad=1000000) fc", "values per sample"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dp_model m;
        dp_err err = {{0}};
        CHECK(model_build(&m, bad[i].spec, 1, 28, 28, 10, &err) == -1);
        CHECK_MSG(err.msg, bad[i].needle);
        CHECK_MSG(err.msg, "--model");
    }
    dp_model m; /* just below the cap still builds (shapes only checked, 1.1M params) */
    dp_err err = {{0}};
    CHECK(model_build(&m, "conv(1000,1,pad=0) maxpool(28) fc(1000) fc", 1, 28, 28, 10, &err) == 0);
    model_free(&m);
}

/* fc(2) on a 1x1x2 input: fc1.weight [2,2] then fc1.bias [2] in the flat buffer. */
static void test_grad_norm_and_clip(void)
{
    dp_model m;
    dp_err err = {{0}};
    CHECK(model_build(&m, "fc(classes)", 1, 1, 2, 2, &err) == 0);
    CHECK(m.nparams == 2 && m.size == 6);
    const float g0[6] = {3, 4, 0, 0, 12, 0}; /* |g| = sqrt(9 + 16 + 144) = 13 */
    memcpy(m.grads, g0, sizeof g0);
    int bad = 7, nbad = 7;
    CHECK_NEAR(grads_norm(&m, m.grads, &bad, &nbad), 13.0, 1e-12);
    CHECK(bad == -1 && nbad == 0);
    /* clip to 6.5: every element times 6.5 / (13 + 1e-6), as clip_grad_norm_ */
    double norm = 0;
    CHECK(grads_guard(&m, 5, 1, 0.3, 6.5, -1, 0, &norm, &err) == 0);
    CHECK_NEAR(norm, 13.0, 1e-12);
    const double f = 6.5 / (13.0 + 1e-6);
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(m.grads[i], g0[i] * f, 1e-6);
    CHECK_NEAR(grads_norm(&m, m.grads, &bad, &nbad), 6.5, 1e-5);
    /* below the limit: untouched, bit for bit */
    memcpy(m.grads, g0, sizeof g0);
    CHECK(grads_guard(&m, 5, 1, 0.3, 100.0, -1, 0, NULL, &err) == 0);
    CHECK(memcmp(m.grads, g0, sizeof g0) == 0);
    CHECK(grads_clip(m.grads, m.size, 13.0, 14.0) == 1.0);

    /* a NaN in the bias, with clipping: the norm's pass finds it (whatever the verdict
     * given), named with step, epoch and layer; nothing clipped */
    memcpy(m.grads, g0, sizeof g0);
    m.grads[5] = NAN;
    err.msg[0] = 0;
    CHECK(grads_guard(&m, 17, 2, NAN, 1.0, -1, 0, NULL, &err) == -1);
    CHECK_MSG(err.msg, "step 17 (epoch 2)");
    CHECK_MSG(err.msg, "fc1.bias (layer 1 fc(classes))");
    CHECK_MSG(err.msg, "1 of 2 parameter tensors");
    CHECK_MSG(err.msg, "the loss is nan");
    CHECK(m.grads[0] == 3.0f);
    /* Inf in the weight and the bias: the tensor nearest the output is named */
    m.grads[5] = 0;
    m.grads[1] = INFINITY;
    m.grads[4] = -INFINITY;
    CHECK(grads_norm(&m, m.grads, &bad, &nbad) == INFINITY);
    CHECK(bad == 1 && nbad == 2);
    /* without clipping the guard takes the verdict it is given (the exact sum's,
     * gradsync_nonfinite, tested with gradsync) and reads no gradient */
    err.msg[0] = 0;
    CHECK(grads_guard(&m, 18, 2, 0.5, 0.0, 1, 2, NULL, &err) == -1);
    CHECK_MSG(err.msg, "step 18 (epoch 2)");
    CHECK_MSG(err.msg, "fc1.bias (layer 1 fc(classes))");
    CHECK_MSG(err.msg, "2 of 2 parameter tensors");
    m.grads[1] = m.grads[4] = 0;
    CHECK(grads_guard(&m, 19, 2, 0.5, 0.0, 0, 1, NULL, &err) == -1);
    CHECK_MSG(err.msg, "fc1.weight (layer 1 fc(classes))");
    CHECK_MSG(err.msg, "1 of 2 parameter tensors");
    m.grads[3] = NAN; /* a NaN that a verdict of none leaves unread */
    CHECK(grads_guard(&m, 19, 2, 0.5, 0.0, -1, 0, NULL, &err) == 0);
    CHECK(grads_guard(&m, 19, 2, 0.5, 1.0, -1, 0, NULL, &err) == -1);
    CHECK_MSG(err.msg, "fc1.weight (layer 1 fc(classes))");
    m.grads[3] = 0;
    /* the largest finite floats do not overflow the double sum */
    for (int i = 0; i < 6; i++)
        m.grads[i] = 3.4e38f;
    CHECK(isfinite(grads_norm(&m, m.grads, &bad, &nbad)) && nbad == 0);
    model_free(&m);
}

static int parse(const char *a, const char *b, dp_config *cfg, dp_err *err)
{
    char *argv[] = {"dptrain", (char *)a, (char *)b, NULL};
    return cli_parse(3, argv, cfg, NULL, err);
}

static void test_new_options(void)
{
    dp_config cfg;
    dp_err err = {{0}};
    CHECK(parse("--clip-grad-norm", "1.5", &cfg, &err) == 0 && cfg.clip_grad_norm == 1.5);
    CHECK(parse("--watchdog", "30", &cfg, &err) == 0 && cfg.watchdog == 30.0);
    CHECK(parse("--clip-grad-norm", "0", &cfg, &err) == -1);
    CHECK_MSG(err.msg, "--clip-grad-norm: 0 is out of range");
    CHECK(parse("--clip-grad-norm", "nan", &cfg, &err) == -1);
    CHECK_MSG(err.msg, "--clip-grad-norm: expected a number, got 'nan'");
    CHECK(parse("--watchdog", "-1", &cfg, &err) == -1);
    CHECK_MSG(err.msg, "--watchdog: -1 is out of range");
    CHECK(parse("--watchdog", "1e400", &cfg, &err) == -1);
    CHECK_MSG(err.msg, "--watchdog: expected a number");
    CHECK(parse("--epochs", "99999999999999999999", &cfg, &err) == -1);
    CHECK_MSG(err.msg, "--epochs: expected an integer");
    char *none[] = {"dptrain", NULL};
    CHECK(cli_parse(1, none, &cfg, NULL, &err) == 0 && cfg.clip_grad_norm == 0 &&
          cfg.watchdog == 0);
}

int main(void)
{
    test_spec_limits();
    test_grad_norm_and_clip();
    test_new_options();
    return check_exit("test_hardening");
}
