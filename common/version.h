/* The release, the stream protocol and what is built in, for every
 * program's --version (and for bug reports: the libraries it runs with). */
#ifndef HA_COMMON_VERSION_H
#define HA_COMMON_VERSION_H

#include <stdio.h>

/* The release; debian/changelog carries the same (a test compares them). */
#define HA_VERSION "0.9.0"

/* Prints "PROG VERSION", the stream protocol versions this build writes and
 * reads, its features and the libraries it runs with. */
void version_print(FILE *f, const char *prog);

/* For the top of main(): with --version as the only argument, prints the
 * version to stdout and returns 1 (exit 0); else returns 0. */
int version_arg(int argc, char **argv, const char *prog);

#endif
