/* signals: stop requests. SIGTERM, SIGUSR1 and SIGINT set a flag that stop_requested()
 * reads; the driver agrees on it across ranks and acts at the next step boundary
 * (checkpoint, exit DP_EXIT_REQUEUE). A second SIGINT exits at once (130). */
#ifndef DPTRAIN_SIGNALS_H
#define DPTRAIN_SIGNALS_H

/* Exit status after a stop request: a checkpoint was written (or could not be, the
 * message says which); requeue and resume. EX_TEMPFAIL of <sysexits.h>. */
#define DP_EXIT_REQUEUE 75

void stop_signals_install(void);
/* The signal number that asked to stop, or 0. */
int stop_requested(void);
/* "SIGTERM", "SIGUSR1", "SIGINT" or "a signal". */
const char *signal_name(int sig);

#endif
