/* helplined.c: placeholder main, replaced by the real daemon entry point. */
#include <stdio.h>
int main(void) { puts("helplined"); return 0; }
