// This process's GPU pool regions (device_region.hpp says who holds what, and why).
#include "pool/device_region.hpp"

#include "os/error.hpp"

#include <unordered_map>

namespace dragonmem::detail {

namespace {

struct Region {
    void* ptr = nullptr;
    int device = 0;
    bool owned = false;         // allocated here (the creator): freed, never closed
    std::uint32_t holders = 0;  // mappings of this process whose base() returned it
};

struct RegionTable {
    std::mutex mutex;
    std::unordered_map<std::uint64_t, Region> regions;  // by pool instance (nonce)
};

RegionTable& table() {
    static auto* instance = new RegionTable();  // never destroyed: used until exit
    return *instance;
}

// This process used CUDA for a GPU pool (set once a region exists), and whether the
// process it was forked from had: CUDA cannot be used in such a child.
bool g_cuda_used = false;
bool g_cuda_inherited = false;

dragonError_t refuse_inherited(const std::string& who) {
    return failf(DRAGON_INVALID_OPERATION,
                 "{}: this process was forked from one that had already used CUDA (a GPU pool), and CUDA cannot be "
                 "used in such a child; run a new program (exec) for GPU pools, or fork before the first one is used",
                 who);
}

}  // namespace

std::atomic<std::uint64_t> g_device_fork_generation{1};

dragonError_t device_region_allocate(std::uint64_t nonce, int device, std::uint64_t bytes, IpcHandle& handle,
                                     const std::string& who) {
    RegionTable& t = table();
    std::lock_guard guard(t.mutex);
    if (g_cuda_inherited) return refuse_inherited(who);
    void* ptr = nullptr;
    if (dragonError_t rc = cuda_alloc_shared(device, bytes, ptr, handle, who)) return rc;
    g_cuda_used = true;
    try {
        t.regions[nonce] = Region{ptr, device, true, 0};
    } catch (...) {
        cuda_free(device, ptr);
        throw;
    }
    return DRAGON_SUCCESS;
}

void device_region_discard(std::uint64_t nonce) noexcept {
    RegionTable& t = table();
    std::lock_guard guard(t.mutex);
    auto it = t.regions.find(nonce);
    if (it == t.regions.end() || !it->second.owned) return;
    cuda_free(it->second.device, it->second.ptr);
    t.regions.erase(it);
}

void device_regions_lock_for_fork() noexcept { table().mutex.lock(); }

void device_regions_unlock_after_fork() noexcept { table().mutex.unlock(); }

void device_regions_forget_after_fork() noexcept {
    // The parent's allocations and opened handles are the parent's: the child neither
    // frees nor closes them (its CUDA, if it can have one, is a new context).
    table().regions.clear();
    g_cuda_inherited = g_cuda_inherited || g_cuda_used;
    g_device_fork_generation.fetch_add(1, std::memory_order_relaxed);
}

void DeviceRegion::reset() noexcept {
    base_.store(nullptr, std::memory_order_relaxed);
    generation_.store(0, std::memory_order_relaxed);
}

dragonError_t DeviceRegion::open(std::uint64_t nonce, int device, const IpcHandle& handle, const std::string& who,
                                 std::uint8_t*& out) {
    RegionTable& t = table();
    std::lock_guard guard(t.mutex);
    const std::uint64_t now = current_generation();
    std::uint8_t* b = base_.load(std::memory_order_acquire);
    if (b != nullptr && generation_.load(std::memory_order_relaxed) == now) {  // another thread opened it
        out = b;
        return DRAGON_SUCCESS;
    }
    auto it = t.regions.find(nonce);
    if (it == t.regions.end()) {
        if (g_cuda_inherited) return refuse_inherited(who);
        void* ptr = nullptr;
        if (dragonError_t rc = cuda_open_shared(device, handle, ptr, who)) return rc;
        g_cuda_used = true;
        try {
            it = t.regions.emplace(nonce, Region{ptr, device, false, 0}).first;
        } catch (...) {
            cuda_close_shared(device, ptr);
            throw;
        }
    }
    ++it->second.holders;
    generation_.store(now, std::memory_order_relaxed);
    b = static_cast<std::uint8_t*>(it->second.ptr);
    base_.store(b, std::memory_order_release);
    out = b;
    return DRAGON_SUCCESS;
}

void DeviceRegion::release(std::uint64_t nonce, bool destroyed, bool others_attached) noexcept {
    RegionTable& t = table();
    std::lock_guard guard(t.mutex);
    const bool held = base_.load(std::memory_order_relaxed) != nullptr &&
                      generation_.load(std::memory_order_relaxed) == current_generation();
    reset();
    auto it = t.regions.find(nonce);
    if (it == t.regions.end()) return;
    Region& region = it->second;
    if (held && region.holders > 0) --region.holders;
    if (region.holders > 0) return;
    if (!region.owned) {
        cuda_close_shared(region.device, region.ptr);
        t.regions.erase(it);
    } else if (destroyed && !others_attached) {
        cuda_free(region.device, region.ptr);
        t.regions.erase(it);
    }
    // else: the creator's region stays for the pool's other processes (device_region.hpp).
}

}  // namespace dragonmem::detail
