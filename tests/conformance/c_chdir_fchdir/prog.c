#include <fcntl.h>
#include <unistd.h>
int main(void) {
    int top = open(".", O_RDONLY | O_DIRECTORY);
    chdir("sub");
    close(open("made_in_sub.txt", O_WRONLY | O_CREAT, 0644));
    close(open("../top_in.txt", O_RDONLY));
    fchdir(top);
    close(open("made_in_top.txt", O_WRONLY | O_CREAT, 0644));
    rename("made_in_top.txt", "sub/moved.txt");
    return 0;
}
