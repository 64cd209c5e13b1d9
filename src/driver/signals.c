#include "dptrain/driver/signals.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

/* Signal handlers can only talk to the program through globals of this type. */
static volatile sig_atomic_t stop_signal = 0;
static volatile sig_atomic_t interrupts = 0;

static void on_stop_signal(int sig)
{
    if (sig == SIGINT && interrupts++ > 0) {
        static const char msg[] = "\ndptrain: second interrupt: exiting now, no checkpoint\n";
        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
            /* nothing to do */
        }
        _exit(130);
    }
    if (!stop_signal)
        stop_signal = sig;
}

void stop_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

int stop_requested(void) { return stop_signal; }

const char *signal_name(int sig)
{
    return sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : sig == SIGINT ? "SIGINT"
                                                                                    : "a signal";
}
