#include <unistd.h>
int main(void) { execlp("cat", "cat", "found_by_path.txt", (char *)0); return 127; }
