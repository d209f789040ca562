#include <fcntl.h>
#include <unistd.h>
int main(void) {
    truncate("cut.txt", 1);
    int fd = open("rw.txt", O_RDWR);
    char b[4]; read(fd, b, 4); lseek(fd, 0, SEEK_SET); write(fd, "RW", 2);
    return close(fd);
}
