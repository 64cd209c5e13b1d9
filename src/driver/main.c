#include "dptrain/driver/train.h"

int main(int argc, char **argv) { return dptrain_main(argc, argv); }
