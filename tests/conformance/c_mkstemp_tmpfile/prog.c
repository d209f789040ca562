#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(void) {
    char t[] = "tmp_XXXXXX";
    int fd = mkstemp(t); write(fd, "m", 1); close(fd);
    rename(t, "from_mkstemp.txt");
    return 0;
}
