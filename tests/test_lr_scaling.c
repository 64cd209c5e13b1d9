/* --lr-scaling linear: the peak learning rate follows the global batch (Goyal et al. 2017). */
#include "check.h"
#include "cli_parse.h"
#include "dptrain/driver/cli.h"


int main(void)
{
    dp_config c;
    dp_err err;
    /* off by default: --lr is the peak lr whatever the batch */
    CHECK(parse("--batch 800 --lr 0.05", &c, &err) == 0);
    CHECK(c.lr_scaling == 0 && c.lr_base_batch == 100);
    CHECK_NEAR(cli_peak_lr(&c), 0.05, 0);
    CHECK(parse("--batch 800 --lr 0.05 --lr-scaling linear", &c, &err) == 0);
    CHECK_NEAR(cli_peak_lr(&c), 0.4, 1e-15);
    CHECK(parse("--lr-scaling linear --batch 3200", &c, &err) == 0);
    CHECK_NEAR(cli_peak_lr(&c), 0.05 * 32, 1e-15);
    CHECK(parse("--lr-scaling linear --batch 50 --lr 0.1 --lr-base-batch 200", &c, &err) == 0);
    CHECK_NEAR(cli_peak_lr(&c), 0.025, 1e-15);
    /* at the base batch the rule changes nothing; 'none' undoes an earlier 'linear' */
    CHECK(parse("--lr-scaling linear --batch 100 --lr 0.07", &c, &err) == 0);
    CHECK_NEAR(cli_peak_lr(&c), 0.07, 0);
    CHECK(parse("--lr-scaling linear --lr-scaling none --batch 400", &c, &err) == 0);
    CHECK_NEAR(cli_peak_lr(&c), 0.05, 0);
    struct {
        const char *line, *needle;
    } bad[] = {
        {"--lr-scaling sqrt", "--lr-scaling: expected none or linear, got 'sqrt'"},
        {"--lr-base-batch 0", "--lr-base-batch: 0 is out of range"},
        {"--lr-base-batch x", "--lr-base-batch: expected an integer, got 'x'"},
        {"--lr-scaling", "--lr-scaling: needs a value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        CHECK(parse(bad[i].line, &c, &err) == -1);
        CHECK_MSG(err.msg, bad[i].needle);
    }
    return check_exit("test_lr_scaling");
}
