#include <stdio.h>
int main(void) {
    FILE *f = fopen("out.txt.tmp", "w"); fputs("new\n", f); fclose(f);
    return rename("out.txt.tmp", "out.txt");
}
