// SPDX-License-Identifier: BSD-3-Clause
/* module_load: what loading a PAM module costs a fresh process.
 *
 *   module_load [--rounds N] [--warmup N] NAME=PATH ...
 *
 * sshd re-executes itself for every connection, key logins included, so
 * every SSH login pays for loading the modules of its stack into a new
 * process. This program measures that: for each round it starts itself
 * again (fork + execve) once per module, and the child dlopen()s the module
 * with RTLD_NOW (as libpam does) and exits; plus once with no module, the
 * baseline of starting the process. The modules alternate within a round and
 * the order rotates from round to round, so the machine's noise falls on all
 * of them. The child is a C program linked with libpam, as a login program
 * is, so what is measured is what the module itself brings: its own
 * relocations and the libraries it needs beyond libc and libpam.
 *
 * Printed per module: p50, p99 and mean of the whole child's run in ms, and
 * the p50 above the baseline ("load cost"), which is what the goal compares.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { kMaxModules = 8 };

struct module {
  const char* name;
  const char* path; /* NULL for the baseline */
  double* samples;
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The child: load the module the way libpam does, then leave. */
static int child(const char* path) {
  if (path[0] != '\0') {
    void* handle = dlopen(path, RTLD_NOW);
    if (handle == NULL) {
      fprintf(stderr, "module_load: %s\n", dlerror());
      return 1;
    }
  }
  /* Keeps libpam a real dependency of this program, as of a login program. */
  return pam_strerror(NULL, PAM_SUCCESS) != NULL ? 0 : 1;
}

static double run_child(const char* self, const char* path) {
  const double start = now_ms();
  const pid_t pid = fork();
  if (pid < 0) {
    perror("module_load: fork");
    exit(1);
  }
  if (pid == 0) {
    char* const argv[] = {(char*)self, (char*)"--child", (char*)path, NULL};
    execv(self, argv);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      perror("module_load: waitpid");
      exit(1);
    }
  }
  const double elapsed = now_ms() - start;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "module_load: loading %s failed\n", path[0] ? path : "(nothing)");
    exit(1);
  }
  return elapsed;
}

static int compare(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static double percentile(double* sorted, int count, double p) {
  int index = (int)(p * (count - 1) + 0.5);
  return sorted[index];
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "--child") == 0) return child(argv[2]);

  int rounds = 2000, warmup = 100;
  struct module modules[kMaxModules + 1] = {{"(no module)", "", NULL}};
  int count = 1;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      rounds = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc) {
      warmup = atoi(argv[++i]);
    } else if (strchr(argv[i], '=') != NULL && count <= kMaxModules) {
      char* equals = strchr(argv[i], '=');
      *equals = '\0';
      modules[count].name = argv[i];
      modules[count].path = equals + 1;
      ++count;
    } else {
      fprintf(stderr, "usage: module_load [--rounds N] [--warmup N] NAME=PATH ...\n");
      return 2;
    }
  }
  if (rounds <= 0 || warmup < 0 || count < 2) {
    fprintf(stderr, "usage: module_load [--rounds N] [--warmup N] NAME=PATH ...\n");
    return 2;
  }
  char self[4096];
  const ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
  if (length <= 0) {
    perror("module_load: /proc/self/exe");
    return 1;
  }
  self[length] = '\0';

  for (int m = 0; m < count; ++m) {
    modules[m].samples = calloc((size_t)rounds, sizeof(double));
    if (modules[m].samples == NULL) return 1;
  }
  for (int round = -warmup; round < rounds; ++round) {
    const int first = (round + warmup) % count;
    for (int k = 0; k < count; ++k) {
      struct module* module = &modules[(first + k) % count];
      const double elapsed = run_child(self, module->path);
      if (round >= 0) module->samples[round] = elapsed;
    }
  }

  printf("rounds: %d after %d warm-up rounds, modules interleaved, order rotating\n", rounds,
         warmup);
  printf("%-14s %10s %10s %10s %14s\n", "module", "p50 ms", "p99 ms", "mean ms", "load cost ms");
  qsort(modules[0].samples, (size_t)rounds, sizeof(double), compare);
  const double baseline = percentile(modules[0].samples, rounds, 0.5);
  for (int m = 0; m < count; ++m) {
    double* samples = modules[m].samples;
    if (m > 0) qsort(samples, (size_t)rounds, sizeof(double), compare);
    double sum = 0;
    for (int i = 0; i < rounds; ++i) sum += samples[i];
    const double p50 = percentile(samples, rounds, 0.5);
    printf("%-14s %10.3f %10.3f %10.3f %14.3f\n", modules[m].name, p50,
           percentile(samples, rounds, 0.99), sum / rounds, p50 - baseline);
  }
  return 0;
}
