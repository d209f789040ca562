#include <unistd.h>
int main(void) { link("a", "hard.txt"); return symlink("a", "soft.txt"); }
