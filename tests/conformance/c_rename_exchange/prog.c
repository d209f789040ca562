#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
int main(void) {
    FILE *f = fopen("x.txt", "w"); fputs("new\n", f); fclose(f);
    return renameat2(AT_FDCWD, "x.txt", AT_FDCWD, "y.txt", RENAME_EXCHANGE);
}
