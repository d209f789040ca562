#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *work(void *arg) {
    char name[32]; snprintf(name, sizeof name, "thread%ld.txt", (long)arg);
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644); write(fd, name, 7);
    close(open("shared_in.txt", O_RDONLY));
    return (void *)(long)close(fd);
}
int main(void) {
    pthread_t t[4];
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, work, (void *)i);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    return 0;
}
