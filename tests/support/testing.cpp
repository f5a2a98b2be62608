// The non-inline pieces of testing.hpp.
#include "testing.hpp"

#include <atomic>
#include <cstring>

namespace dmtest {

dragonError_t rc_of(const std::function<void()>& fn, std::string& message) {
    try {
        fn();
        return DRAGON_SUCCESS;
    } catch (const dragonmem::Error& e) {
        message = e.what();
        return e.code();
    }
}

namespace {
std::atomic<int> g_long_mode{-1};
std::atomic<std::uint64_t> g_bad_inputs{0};
}  // namespace

bool long_mode() {
    int mode = g_long_mode.load();
    if (mode < 0) {
        const char* env = std::getenv("DRAGONMEM_LONG_TESTS");
        mode = env != nullptr && std::strcmp(env, "1") == 0 ? 1 : 0;
        g_long_mode.store(mode);
    }
    return mode == 1;
}

void set_long_mode(bool on) { g_long_mode.store(on ? 1 : 0); }

void count_bad_inputs(std::uint64_t n) { g_bad_inputs.fetch_add(n); }
std::uint64_t bad_inputs_tried() { return g_bad_inputs.load(); }

ScopedPool::ScopedPool(std::size_t bytes, dragonmem::PoolOptions options, std::string_view suffix)
    : guard_(unique_pool_name(suffix)) {
    pool_ = dragonmem::Pool::create(guard_.name(), bytes, 1, options);
}

ScopedPool::~ScopedPool() {
    try {
        if (pool_.valid()) pool_.destroy();
    } catch (const dragonmem::Error&) {
        // Already destroyed or unusable: the guard unlinks the object anyway.
    }
}

}  // namespace dmtest
