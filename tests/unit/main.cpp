// The doctest runner of dm_unit. Meson runs it once per test suite (-ts=NAME) so that
// one hang or crash does not hide the other suites. After the run it removes whatever
// shared-memory objects this process's pool names left in /dev/shm (and, before the
// run, those of earlier test processes that died without cleaning up).
#define DOCTEST_CONFIG_IMPLEMENT
#include "testing.hpp"

#include <cstdio>

int main(int argc, char** argv) {
    // Objects of earlier runs that crashed (no atexit sweep then) are removed first.
    for (const auto& entry : dmtest::sweep_dead_owners())
        std::fprintf(stderr, "note: removed /dev/shm/%s left by an earlier test process that is gone\n",
                     entry.c_str());
    doctest::Context context;
    context.applyCommandLine(argc, argv);
    const int result = context.run();
    const auto leftovers = dmtest::sweep_my_shm();
    for (const auto& entry : leftovers)
        std::fprintf(stderr, "note: removed leftover /dev/shm/%s (a test did not clean up)\n", entry.c_str());
    return result;
}
