#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(void) {
    close(creat("created.txt", 0644));
    if (!freopen("redirected.txt", "w", stdout)) return 1;
    puts("into the file");
    return 0;
}
