#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    for (int i = 0; i < 3; i++) {
        if (fork() == 0) {
            char name[] = "child0.txt"; name[5] = '0' + i;
            close(open(name, O_WRONLY | O_CREAT, 0644));
            _exit(0);
        }
        wait(NULL);
    }
    execl("/bin/cat", "cat", "child0.txt", (char *)0);
    return 1;
}
