// Defaults of the Contender interface: a measurement a contender does not have.
#include "contender.hpp"


namespace bench {
namespace {

[[noreturn]] void unsupported(const Contender& contender, const char* measurement) {
    throw BenchError(contender.name() + " has no '" + measurement + "' measurement");
}

}  // namespace

std::uint64_t Contender::pairs(std::size_t, std::uint64_t) { unsupported(*this, "pairs"); }
LivePhases Contender::live(std::size_t, std::size_t, std::uint64_t) { unsupported(*this, "live"); }
std::uint64_t Contender::handle_round_trips(std::uint64_t) { unsupported(*this, "handle round trip"); }
std::uint64_t Contender::create_destroys(std::size_t, std::uint64_t) { unsupported(*this, "create+destroy"); }
std::uint64_t Contender::attach_detaches(std::size_t, std::uint64_t) { unsupported(*this, "attach+detach"); }
std::pair<std::uint64_t, std::uint64_t> Contender::mixed(int, std::uint64_t, std::uint64_t) {
    unsupported(*this, "mixed workload");
}
void Contender::share(std::size_t) { unsupported(*this, "multi-process"); }
std::unique_ptr<ChildSession> Contender::open_in_child() { unsupported(*this, "multi-process"); }

}  // namespace bench
