#include <fcntl.h>
#include <unistd.h>
int main(void) {
    symlink("target.txt", "link.txt");
    char b[8]; int fd = open("link.txt", O_RDONLY); read(fd, b, 8); close(fd);
    fd = open("out.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644); write(fd, b, 1);
    return close(fd);
}
