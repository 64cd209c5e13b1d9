/* The threads' shares (thread_split.h, threads.h): measured, reviewed, turned into cuts. */
#include "thread_split.h"

#include <math.h>
#include <string.h>

#include "dptrain/net/threads.h"

thread_cuts dp_thread_cuts;

/* A review every REVIEW_EVERY timed regions: the reference model has three a step (two
 * forwards, one input gradient), so about every 8 steps. */
enum { REVIEW_EVERY = 24 };

/* Each thread's speed in each timed region since the last review (the fraction of the
 * region's items it did per second; 0: it had none), on cache lines of its own. */
typedef struct {
    _Alignas(64) double speed[REVIEW_EVERY];
} thread_meter;

static struct {
    int on, rotate, regions, seen;
    double share[SPLIT_MAX_THREADS], slow[SPLIT_MAX_THREADS];
    thread_meter meter[SPLIT_MAX_THREADS];
} bal;

static void set_cuts(int T, const double *share)
{
    double sum = 0.0;
    dp_thread_cuts.cut[0] = 0;
    for (int t = 1; t < T; t++) {
        sum += share[t - 1];
        dp_thread_cuts.cut[t] = (int64_t)(sum * (double)((int64_t)1 << SPLIT_ONE_SHIFT) + 0.5);
    }
    dp_thread_cuts.cut[T] = (int64_t)1 << SPLIT_ONE_SHIFT;
    dp_thread_cuts.team = T;
    if (share != bal.share)
        memcpy(bal.share, share, sizeof(double) * T);
}

static void clear_meters(void)
{
    memset(bal.meter, 0, sizeof bal.meter);
    bal.regions = 0;
}

static void go_even(void)
{
    dp_thread_cuts.team = 0;
    clear_meters();
}

double split_start(void)
{
    return bal.on ? omp_get_wtime() : 0.0;
}

void split_note(double t0, int n)
{
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    if (!bal.on || n <= 0 || T > SPLIT_MAX_THREADS || bal.regions >= REVIEW_EVERY)
        return;
    int lo, hi;
    thread_range(n, &lo, &hi);
    const int done = hi - lo;
    if (t == 0)
        bal.seen = T;
    const double seconds = (omp_get_wtime() - t0) * (bal.slow[t] > 0.0 ? bal.slow[t] : 1.0);
    bal.meter[t].speed[bal.regions] = done > 0 && seconds > 0.0 ? (double)done / n / seconds : 0.0;
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            const double x = v[j];
            v[j] = v[j - 1], v[j - 1] = x;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Where the shares go: each thread's share of the summed speeds in each region where every
 * thread had items, the median over the window. The median, not the mean: a thread that
 * shares its core with another process is set aside for whole time slices (milliseconds),
 * stalling a few regions and not the others; following its mean speed gave it less of
 * every region and the step was 10% slower (AMD Zen 5, a spinning shell on the second
 * CPU). A core that is lastingly slower is slower in most regions. */
static int speed_shares(int T, double *target)
{
    double p[SPLIT_MAX_THREADS][REVIEW_EVERY], sum = 0.0;
    int n = 0;
    for (int k = 0; k < REVIEW_EVERY; k++) {
        double total = 0.0;
        int all = 1;
        for (int t = 0; t < T; t++) {
            all &= bal.meter[t].speed[k] > 0.0;
            total += bal.meter[t].speed[k];
        }
        if (!all)
            continue;
        for (int t = 0; t < T; t++)
            p[t][n] = bal.meter[t].speed[k] / total;
        n++;
    }
    if (n < REVIEW_EVERY / 2)
        return 0;
    for (int t = 0; t < T; t++)
        sum += target[t] = median(p[t], n);
    for (int t = 0; t < T; t++)
        target[t] /= sum;
    return 1;
}

/* The shares halfway to the speeds' (clamped); unchanged where too few regions had items
 * on every thread, or where every share is within SPLIT_STILL of the speeds' (in even
 * shares): equally fast threads measure a few percent apart from window to window, and
 * following that noise cost 1% of a step where the two CPUs of an AMD Zen 5 ran alike. */
#define SPLIT_STILL 0.05

static void follow_speeds(int T)
{
    double target[SPLIT_MAX_THREADS], share[SPLIT_MAX_THREADS], sum = 0.0;
    if (!speed_shares(T, target))
        return;
    int still = 1;
    for (int t = 0; t < T; t++)
        still &= fabs(target[t] - bal.share[t]) * T < SPLIT_STILL;
    if (still)
        return;
    for (int t = 0; t < T; t++) {
        double s = 0.5 * bal.share[t] + 0.5 * target[t];
        s = s < 0.5 / T ? 0.5 / T : s > 1.5 / T ? 1.5 / T : s;
        share[t] = s;
        sum += s;
    }
    for (int t = 0; t < T; t++)
        share[t] /= sum;
    set_cuts(T, share);
}

void split_review(void)
{
    const int T = bal.seen;
    if (!bal.on || T < 2)
        return;
    if (T != dp_thread_cuts.team) { /* a new team: even shares to start from */
        double even[SPLIT_MAX_THREADS];
        for (int t = 0; t < T; t++)
            even[t] = 1.0 / T;
        set_cuts(T, even);
        clear_meters();
        return;
    }
    if (!bal.rotate && ++bal.regions < REVIEW_EVERY)
        return;
    if (bal.rotate) {
        double moved[SPLIT_MAX_THREADS];
        for (int t = 0; t < T; t++)
            moved[(t + 1) % T] = bal.share[t];
        set_cuts(T, moved);
    } else {
        follow_speeds(T);
    }
    clear_meters();
}

void dp_threads_balance(int on)
{
    bal.on = on != 0;
    bal.rotate = 0;
    go_even();
}

int dp_threads_shares(double *shares, int max)
{
    if (!dp_thread_cuts.team)
        return 0;
    const int T = dp_thread_cuts.team < max ? dp_thread_cuts.team : max;
    for (int t = 0; t < T; t++)
        shares[t] = bal.share[t];
    return T;
}

void dp_threads_force(const double *shares, int T, int rotate)
{
    bal.on = shares && rotate;
    bal.rotate = rotate;
    go_even();
    if (shares && T >= 2 && T <= SPLIT_MAX_THREADS)
        set_cuts(T, shares);
}

void dp_threads_slow(int t, double factor)
{
    if (t >= 0 && t < SPLIT_MAX_THREADS)
        bal.slow[t] = factor;
}
