#include <stdio.h>
#include <unistd.h>
int main(void) {
    FILE *f = fopen("scratch.txt", "w"); fputs("tmp\n", f); fclose(f);
    f = fopen("scratch.txt", "r"); char b[8]; fgets(b, 8, f); fclose(f);
    unlink("scratch.txt");
    f = fopen("kept.txt", "w"); fputs(b, f); return fclose(f);
}
