/*
 * Dereferences NULL: the process dies of SIGSEGV, which the harness sees as status 139
 * (128 + 11), natively and on ktls. Nothing is printed after the fault.
 */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    /* Unbuffered, so the line is out before the fault whether stdout is a tty or a pipe. */
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("about to dereference NULL\n");
    volatile int *p = NULL;
    int v = *p;
    printf("FAIL survived a NULL dereference (read %d)\n", v);
    return 1;
}
