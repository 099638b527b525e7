/* jailer-init: a tiny pid 1 for `jailer run --init`.
 *
 * Runs the workload as its child, forwards the usual termination and job-control signals to
 * it, reaps every orphan the pid namespace hands to pid 1, and exits with the workload's
 * status (128+N when it died of signal N). Linked statically: the image may have no libc.
 * Usage: init -- CMD [ARGS...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2,
                                SIGWINCH, SIGCONT, SIGTSTP};

int main(int argc, char **argv) {
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--") == 0) first = 2;
    if (first >= argc) {
        fprintf(stderr, "jailer-init: usage: init -- CMD [ARGS...]\n");
        return 125;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t child = fork();
    if (child < 0) { perror("jailer-init: fork"); return 125; }
    if (child == 0) {
        setpgid(0, 0);
        /* take the terminal while SIGTTOU is still blocked: from a background process
         * group tcsetpgrp would otherwise stop us before exec */
        if (isatty(0)) tcsetpgrp(0, getpid());
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[first], argv + first);
        int e = errno;
        fprintf(stderr, "jailer-init: exec %s: %s\n", argv[first], strerror(e));
        _exit(e == ENOENT ? 127 : 126);
    }
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) continue;
        if (sig != SIGCHLD) {
            for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
                if (forwarded[i] == sig) kill(child, sig);
            continue;
        }
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid == child) {
                if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
                return WEXITSTATUS(status);
            }
        }
    }
}
