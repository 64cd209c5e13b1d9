/* eval_plot: the confusion-matrix picture of dptrain-eval --plot (eval_plot.h), as a
 * gnuplot script written down a pipe. */
#include "eval_plot.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Counts in the cells while they stay legible. */
enum { MAX_LABELLED_CLASSES = 20 };

/* The gnuplot to run: DPTRAIN_GNUPLOT (a name or a path), else the one on PATH. */
static const char *gnuplot(void)
{
    const char *g = getenv("DPTRAIN_GNUPLOT");
    return g && *g ? g : "gnuplot";
}

static int on_path(const char *program)
{
    if (strchr(program, '/'))
        return access(program, X_OK) == 0;
    const char *path = getenv("PATH");
    char dir[4096];
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(dir, sizeof dir, "%.*s/%s", (int)n, p, program);
        if (n > 0 && access(dir, X_OK) == 0)
            return 1;
        p += n + (p[n] == ':');
    }
    return 0;
}

int eval_plot_check(const char *path, dp_err *err)
{
    if (!on_path(gnuplot()))
        return dp_fail(err,
                       "--plot %s: %s not found: install gnuplot (Debian: apt-get "
                       "install gnuplot-nox) or name it in DPTRAIN_GNUPLOT",
                       path, gnuplot());
    /* writable without creating it yet: the file itself, or else its directory */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        slash[slash == dir] = 0;
    if (access(path, F_OK) == 0 ? access(path, W_OK) != 0 : access(dir, W_OK | X_OK) != 0)
        return dp_fail(err, "--plot %s: cannot write the file: %s", path, strerror(errno));
    return 0;
}

/* s inside a gnuplot single-quoted string ('' is a quote). */
static void quoted(FILE *g, const char *s)
{
    fputc('\'', g);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', g);
        fputc(*s, g);
    }
    fputc('\'', g);
}

/* $cm: predicted, true, fraction of the row, count; $acc: class, accuracy %, samples. */
static void write_data(FILE *g, const double *cm, int K)
{
    fputs("$cm << EOD\n", g);
    for (int t = 0; t < K; t++) {
        double row = 0;
        for (int p = 0; p < K; p++)
            row += cm[(size_t)t * K + p];
        for (int p = 0; p < K; p++)
            fprintf(g, "%d %d %.6f %.0f\n", p, t, row > 0 ? cm[(size_t)t * K + p] / row : 0.0,
                    cm[(size_t)t * K + p]);
    }
    fputs("EOD\n$acc << EOD\n", g);
    for (int t = 0; t < K; t++) {
        double row = 0;
        for (int p = 0; p < K; p++)
            row += cm[(size_t)t * K + p];
        fprintf(g, "%d %.4f %.0f\n", t, row > 0 ? 100.0 * cm[(size_t)t * K + t] / row : 0.0, row);
    }
    fputs("EOD\n", g);
}

static void write_script(FILE *g, const char *path, const double *cm, int K, const char *title)
{
    const int size = K <= 12 ? 1500 : 1500 + 40 * (K - 12);
    fprintf(g, "set terminal pngcairo size %d,%d font 'sans,11' noenhanced\nset output ", size,
            size * 45 / 100);
    quoted(g, path);
    fputc('\n', g);
    write_data(g, cm, K);
    fputs("set multiplot layout 1,2 title ", g);
    quoted(g, title);
    /* the heat map: true labels down, predictions across, class 0 top left */
    fprintf(g,
            "\nset size ratio -1\nset xrange [-0.5:%d.5]\nset yrange [%d.5:-0.5]\n"
            "set xtics 0,1,%d scale 0\nset ytics 0,1,%d scale 0\n",
            K - 1, K - 1, K - 1, K - 1);
    fputs("set xlabel 'predicted class'\nset ylabel 'true class'\nset cbrange [0:1]\n"
          "set cblabel 'fraction of the true class (each row sums to 1)'\n"
          /* steep at the low end, so that a few confusions in a thousand show */
          "set palette defined (0 '#ffffff', 0.005 '#eff3ff', 0.02 '#bdd7e7', 0.1 '#6baed6', "
          "0.5 '#3182bd', 1 '#08306b')\n"
          "set title 'confusion matrix: counts, rows normalised'\n",
          g);
    fputs("plot $cm using 1:2:3 with image notitle", g);
    if (K <= MAX_LABELLED_CLASSES) /* white on dark cells, black on light ones */
        fputs(", $cm using 1:2:(sprintf('%d', $4)):($3 > 0.5 ? 0xffffff : 0x000000) "
              "with labels tc rgb variable font ',9' notitle",
              g);
    fprintf(g, "\nunset colorbox\nset size noratio\nset autoscale\nset xrange [-0.7:%d.7]\n",
            K - 1);
    fputs("set yrange [0:105]\nset xtics 1 scale 0\nset ytics 10\n"
          "set grid y\nset style fill solid 0.8 noborder\nset boxwidth 0.7\n"
          "set xlabel 'class'\nset ylabel 'accuracy (%)'\nset title 'accuracy of each class'\n"
          "plot $acc using 1:2 with boxes lc rgb '#2171b5' notitle, "
          "$acc using 1:2:(sprintf('%.1f', $2)) with labels offset 0,0.8 font ',8' notitle\n"
          "unset multiplot\n",
          g);
}

int eval_plot_write(const char *path, const double *cm, int K, const char *title, dp_err *err)
{
    fflush(stdout);
    char command[4200];
    snprintf(command, sizeof command, "'%s'", gnuplot()); /* a path with spaces stays one */
    FILE *g = strchr(gnuplot(), '\'') ? NULL : popen(command, "w");
    if (!g)
        return dp_fail(err, "--plot %s: cannot start gnuplot: %s", path, strerror(errno));
    /* a plotter that stops reading must give an error, not end us with SIGPIPE */
    struct sigaction ignore = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGPIPE, &ignore, &old);
    write_script(g, path, cm, K, title);
    int status = pclose(g);
    sigaction(SIGPIPE, &old, NULL);
    struct stat st;
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        remove(path); /* no half-drawn picture */
        return dp_fail(err,
                       "--plot %s: gnuplot failed (exit status %d; its messages are "
                       "above)",
                       path, status == -1 ? -1 : WEXITSTATUS(status));
    }
    if (stat(path, &st) != 0 || st.st_size == 0)
        return dp_fail(err, "--plot %s: gnuplot wrote no picture", path);
    return 0;
}
