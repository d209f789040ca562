#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
int main(void) {
    int dir = open("sub", O_RDONLY | O_DIRECTORY);
    int in = openat(dir, "in.txt", O_RDONLY);
    int out = openat(dir, "out.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char b[16]; write(out, b, read(in, b, sizeof b));
    return 0;
}
