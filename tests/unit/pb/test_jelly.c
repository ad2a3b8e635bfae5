#include <stdio.h>
int main(void)
{
    puts("not written yet");
    return 1;
}
