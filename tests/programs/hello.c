/*
 * Prints its arguments and one environment variable, then exits with the status given as
 * argv[1] (0 when absent): `hello 7` exits 7.
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    printf("hello, world\n");
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    const char *greeting = getenv("KTLS_GREETING");
    printf("KTLS_GREETING=%s\n", greeting ? greeting : "(unset)");
    fprintf(stderr, "hello on stderr\n");
    return argc > 1 ? atoi(argv[1]) : 0;
}
