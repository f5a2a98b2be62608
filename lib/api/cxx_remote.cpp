// <dragonmem/remote.hpp>: the C++ face of lib/remote/ (byte ranges, the agent).
#include <dragonmem/remote.hpp>

#include "os/error.hpp"
#include "remote/agent.hpp"
#include "remote/byte_range.hpp"
#include "remote/remote_client.hpp"

namespace dragonmem {

void read_bytes(const Memory& memory, std::size_t offset, std::span<std::byte> out, const timespec* timeout) {
    detail::throw_if_failed(detail::mem_read_range(memory.ref(), offset, out.data(), out.size(), timeout));
}

void write_bytes(const Memory& memory, std::size_t offset, std::span<const std::byte> in, const timespec* timeout) {
    detail::throw_if_failed(detail::mem_write_range(memory.ref(), offset, in.data(), in.size(), timeout));
}

bool remote_available() noexcept { return detail::remote_built_in(); }

void serve(const AgentOptions& options) { detail::throw_if_failed(detail::run_agent(options)); }

}  // namespace dragonmem
