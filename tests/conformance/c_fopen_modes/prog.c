#include <stdio.h>
int main(void) {
    fclose(fopen("rplus.txt", "r+"));
    fclose(fopen("append.txt", "a"));
    fclose(fopen("wplus.txt", "w+"));
    fclose(fopen("r.txt", "re"));
    return 0;
}
