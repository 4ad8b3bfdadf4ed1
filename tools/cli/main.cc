#include <cstdio>
int main() { std::puts("weightsync"); return 0; }
