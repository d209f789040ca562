#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
    int fd = open("out.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int d = dup(fd); dup2(d, 9); write(9, "x", 1);
    int p[2]; pipe(p); write(p[1], "y", 1);
    int s[2]; socketpair(AF_UNIX, SOCK_STREAM, 0, s); write(s[0], "z", 1);
    close(open("/dev/null", O_WRONLY));
    return 0;
}
