// Fixture of tests/cmake/docs.cmake: marked code for drift.md.
#include <cstdio>

int main() {
    // snippet begin: sample
    std::puts("as compiled");
    // snippet end: sample
}
