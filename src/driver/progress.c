/* progress: the live bar and the plain progress lines (progress.h), and where rank 0's
 * stderr really goes: followed through /proc to the launcher that copies it. */
#include "dptrain/driver/progress.h"
#include "dptrain/util/test_hooks.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- where stderr goes --------------------------------------------------------------- */

/* Programs that start ranks and copy their stderr to their own. */
static const char *const launchers[] = {"mpirun",     "mpiexec",       "orterun",         "prterun",
                                        "prte",       "orted",         "prted",           "srun",
                                        "slurmstepd", "mpiexec.hydra", "hydra_pmi_proxy", NULL};

static int is_launcher(const char *name)
{
    for (int i = 0; launchers[i]; i++)
        if (strcmp(name, launchers[i]) == 0)
            return 1;
    return 0;
}

/* The target of /proc/PID/fd/FD ("pipe:[123]", "/dev/pts/4", ...); 0 or -1. */
static int fd_link(pid_t pid, int fd, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, fd);
    ssize_t n = readlink(path, buf, len - 1);
    if (n < 0)
        return -1;
    buf[n] = 0;
    return 0;
}

/* The parent of pid from /proc/PID/stat ("pid (comm) state ppid ..."), or -1. */
static pid_t parent_of(pid_t pid, char *name, size_t len)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    char *open = strchr(line, '('), *close = strrchr(line, ')'); /* comm may hold ')' */
    int ppid = -1;
    if (!open || !close || close < open || sscanf(close + 1, " %*c %d", &ppid) != 1)
        return -1;
    size_t k = (size_t)(close - open - 1) < len - 1 ? (size_t)(close - open - 1) : len - 1;
    memcpy(name, open + 1, k);
    name[k] = 0;
    return ppid;
}

/* Whether process pid has an open file whose /proc link reads `target`. */
static int holds(pid_t pid, const char *target)
{
    char path[64], link[256];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(d)) != NULL;) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end == 0 && end != e->d_name && fd_link(pid, (int)fd, link, sizeof link) == 0)
            found = strcmp(link, target) == 0;
    }
    closedir(d);
    return found;
}

/* Whether fd 2 of pid is a terminal, and its width. */
static int pid_stderr_tty(pid_t pid, int *columns)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/2", (int)pid);
    int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return 0;
    int tty = isatty(fd);
    struct winsize ws;
    if (tty && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        *columns = ws.ws_col;
    close(fd);
    return tty;
}

int progress_where(int *columns, char *how, size_t len)
{
    char mine[256], name[64], term[256];
    struct stat st;
    *columns = 80;
    if (isatty(STDERR_FILENO)) {
        pid_stderr_tty(getpid(), columns);
        snprintf(how, len, "stderr is a terminal");
        return 1;
    }
    if (fstat(STDERR_FILENO, &st) != 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) ||
        fd_link(getpid(), STDERR_FILENO, mine, sizeof mine) != 0) {
        snprintf(how, len, "stderr is neither a terminal nor a pipe");
        return 0;
    }
    /* The launcher beside us holds the other end of the pipe; a pipe to tee or less has
     * no ancestor at its other end, and a launcher's own stderr may itself be kept. */
    pid_t pid = getppid();
    for (int depth = 0; depth < 16 && pid > 1; depth++) {
        pid_t up = parent_of(pid, name, sizeof name);
        int launcher = is_launcher(name);
        if (launcher || holds(pid, mine)) {
            if (!launcher || !holds(pid, mine)) {
                snprintf(how, len, "stderr is a pipe %s %s (pid %d)",
                         launcher ? "not read by" : "read by", name, (int)pid);
                return 0;
            }
            int tty = pid_stderr_tty(pid, columns);
            if (fd_link(pid, STDERR_FILENO, term, sizeof term) != 0)
                snprintf(term, sizeof term, "?");
            snprintf(how, len, "stderr goes to %s (pid %d), whose stderr is %s%s", name, (int)pid,
                     tty ? "the terminal " : "no terminal: ", term);
            return tty;
        }
        pid = up;
    }
    snprintf(how, len, "stderr is a pipe that no launcher reads");
    return 0;
}

/* ---- drawing --------------------------------------------------------------------------- */

void progress_init(dp_progress *p, int forced, int quiet, int epochs, long total_steps,
                   int global_batch)
{
    memset(p, 0, sizeof *p);
    p->bar = stderr;
    p->lines = stdout;
    p->columns = 80;
    p->epochs = epochs;
    p->total_steps = total_steps;
    p->global_batch = global_batch;
    p->min_epoch_s = test_hook_progress_lines_s(PROGRESS_LINES_MIN_EPOCH_S);
    char how[512];
    if (quiet || forced == 0)
        p->mode = PROGRESS_OFF;
    else if (forced == 1)
        p->mode = (progress_where(&p->columns, how, sizeof how), PROGRESS_BAR);
    else
        p->mode = progress_where(&p->columns, how, sizeof how) ? PROGRESS_BAR : PROGRESS_LINES;
    if (p->columns < 40)
        p->columns = 40;
}

void progress_epoch_begin(dp_progress *p, int epoch, long first, long steps, double now)
{
    p->epoch = epoch;
    p->first = first;
    p->steps = steps;
    p->t_start = p->last_draw = now;
    p->quarter = 0;
    p->drawn = 0;
    p->bar_width = 40;
    if (p->t_end > 0)
        p->gap = now - p->t_end;
}

/* "1:05", "1:02:03", or "?" before there is a rate. */
static void fmt_time(char *buf, size_t len, double s)
{
    if (!isfinite(s) || s < 0) {
        snprintf(buf, len, "?");
        return;
    }
    long t = lround(s);
    if (t >= 3600)
        snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
}

/* The figures both forms show. */
typedef struct {
    double rate, epoch_left, run_left; /* images/s, seconds */
    char epoch_s[32], run_s[32], of[16];
} figures;

static void compute(const dp_progress *p, long done, long step, double now, figures *f)
{
    const double per_step = (now - p->t_start) / (double)(done - p->first);
    f->rate = p->global_batch / per_step;
    f->epoch_left = (double)(p->steps - done) * per_step;
    f->run_left = (double)(p->total_steps - step) * per_step;
    if (p->epochs > 0)
        f->run_left += p->gap * (p->epochs - p->epoch + 1);
    fmt_time(f->epoch_s, sizeof f->epoch_s, f->epoch_left);
    fmt_time(f->run_s, sizeof f->run_s, f->run_left);
    if (p->epochs > 0)
        snprintf(f->of, sizeof f->of, "/%d", p->epochs);
    else
        f->of[0] = 0;
}

static void draw_bar(dp_progress *p, long done, double loss, const figures *f)
{
    char head[64], tail[160], bar[128];
    snprintf(head, sizeof head, "epoch %d%s ", p->epoch, f->of);
    int n = snprintf(tail, sizeof tail, " %*ld/%ld | %.0f img/s | loss %.4f | %s left, run %s",
                     snprintf(NULL, 0, "%ld", p->steps), done, p->steps, f->rate, loss, f->epoch_s,
                     f->run_s);
    /* the bar only narrows during an epoch (2 columns spare for figures that grow), so that
     * it does not jump with every figure after it */
    int width = p->columns - 1 - (int)strlen(head) - n - 2 - 2;
    p->bar_width = width < p->bar_width ? width : p->bar_width;
    width = p->bar_width;
    if (width >= 8) {
        int filled = p->steps > 0 ? (int)(width * done / p->steps) : 0;
        bar[0] = '[';
        for (int i = 0; i < width; i++)
            bar[1 + i] = i < filled ? '#' : '.';
        bar[1 + width] = ']';
        bar[2 + width] = 0;
    } else {
        bar[0] = 0;
    }
    int len = fprintf(p->bar, "\r%s%s%s", head, bar, tail);
    /* a shorter line than the last one must cover it */
    if (len > 0 && len < p->drawn)
        fprintf(p->bar, "%*s", p->drawn - len, "");
    p->drawn = len > p->drawn ? len : p->drawn;
    fflush(p->bar);
}

static void print_line(dp_progress *p, long done, double loss, const figures *f)
{
    fprintf(p->lines,
            "epoch %d%s: %d%% (%ld/%ld steps), loss %.4f, %.0f img/s, %s left in the "
            "epoch, %s in the run\n",
            p->epoch, f->of, 25 * p->quarter, done, p->steps, loss, f->rate, f->epoch_s, f->run_s);
    fflush(p->lines);
}

void progress_step(dp_progress *p, long done, long step, double loss, double now)
{
    if (p->mode == PROGRESS_OFF || done <= p->first)
        return;
    figures f;
    if (p->mode == PROGRESS_BAR) {
        if (now - p->last_draw < 0.25 && done < p->steps)
            return;
        p->last_draw = now;
        compute(p, done, step, now, &f);
        draw_bar(p, done, loss, &f);
        return;
    }
    /* lines: at 25, 50 and 75% (the epoch line is the 100%) of epochs long enough */
    int q = p->steps > 0 ? (int)(4 * done / p->steps) : 0;
    if (q <= p->quarter || q >= 4)
        return;
    p->quarter = q;
    compute(p, done, step, now, &f);
    double projected = (now - p->t_start) + f.epoch_left;
    if (projected >= p->min_epoch_s)
        print_line(p, done, loss, &f);
}

void progress_epoch_end(dp_progress *p, double now)
{
    p->t_end = now;
    if (p->mode != PROGRESS_BAR || !p->drawn)
        return;
    fprintf(p->bar, "\r%*s\r", p->drawn > 1 ? p->drawn - 1 : 1, "");
    fflush(p->bar);
    p->drawn = 0;
}
