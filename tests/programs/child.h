/*
 * Running a check in a fork child and naming how it ended, for the isolation programs.
 */
#ifndef CHILD_H
#define CHILD_H

#include <errno.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs `fn(arg)` in a fork child; returns its wait status. */
static __attribute__((unused)) int in_child(int (*fn)(long), long arg)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(arg));
    int st = -1;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return st;
}

/* "exit N", "signal N" or the raw status, for reports. */
static __attribute__((unused)) const char *status_text(int st)
{
    static char buf[64];
    if (WIFEXITED(st))
        snprintf(buf, sizeof buf, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, sizeof buf, "signal %d", WTERMSIG(st));
    else
        snprintf(buf, sizeof buf, "status %#x", st);
    return buf;
}

#endif
