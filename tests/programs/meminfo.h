/*
 * Free memory as the programs that check for leaks report it: "info memfree LABEL KiB" from
 * /proc/meminfo's MemFree, and "info heapused LABEL KiB" from KernelHeapUsed where the kernel
 * has it (ktls). The harness (tests/tests/robustness.rs) compares them on ktls.
 */
#ifndef MEMINFO_H
#define MEMINFO_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of /proc/meminfo's line `key`, or -1. */
static __attribute__((unused)) long meminfo(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static __attribute__((unused)) void report_memory(const char *label)
{
    printf("info memfree %s %ld\n", label, meminfo("MemFree"));
    long heap = meminfo("KernelHeapUsed");
    if (heap >= 0)
        printf("info heapused %s %ld\n", label, heap);
}

#endif
