#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
int main(void) {
    int fd = open("mapped.bin", O_RDONLY);
    char *p = mmap(0, 4, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    int out = open("first.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    write(out, p, 1);
    return 0;
}
