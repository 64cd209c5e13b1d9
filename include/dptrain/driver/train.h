/* train: the driver. Ties data, model, optimizer and comm together and owns the policy:
 * when to evaluate, what to print, when to stop, and how errors end the job. */
#ifndef DPTRAIN_TRAIN_H
#define DPTRAIN_TRAIN_H

/* The whole program: MPI start-up, options, training, MPI shutdown. Returns the exit
 * status (0 done, 1 runtime error, 2 bad options). */
int dptrain_main(int argc, char **argv);

#endif
