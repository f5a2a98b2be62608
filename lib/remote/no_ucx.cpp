// The remote layer of a library built without UCX (meson -Ducx=disabled, or no
// libucx-dev): local byte ranges work (byte_range.cpp), anything off-node says why not.
#include "remote/agent.hpp"
#include "remote/remote_client.hpp"

#include "os/error.hpp"

namespace dragonmem::detail {

dragonError_t remote_transfer(const PoolIdentity& pool, const RemoteRange& range, void* /*buffer*/, Access access,
                              const timespec* /*timeout*/) {
    return failf(DRAGON_NOT_IMPLEMENTED,
                 "{} of allocation id {} of pool '{}' on host {:#x} through agent {}: this libdragonmem was built "
                 "without UCX (install libucx-dev and configure with -Ducx=enabled)",
                 access == Access::read ? "remote read" : "remote write", range.id, pool.name, pool.hostid, pool.agent);
}

bool remote_built_in() noexcept { return false; }

dragonError_t run_agent(const AgentOptions& options) {
    return failf(DRAGON_NOT_IMPLEMENTED,
                 "serve --listen {}: this dragonmem was built without UCX (install libucx-dev and configure with "
                 "-Ducx=enabled)",
                 options.listen);
}

}  // namespace dragonmem::detail
