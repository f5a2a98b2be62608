// Compiled with -std=c++17 by packaging_test.sh: must fail with the clear message of
// <dragonmem/detail/require_cxx20.hpp>, not only with errors from deep inside the API.
#include <dragonmem/dragonmem.hpp>

int main() { return 0; }
