// This process's GPU pool regions (device_region.hpp says who holds what, and why).
#include "pool/device_region.hpp"

#include "os/error.hpp"
#include "pool/process_table.hpp"

#include <unordered_map>

namespace dragonmem::detail {

namespace {

struct Region {
    void* ptr = nullptr;
    int device = 0;
    bool owned = false;         // allocated here (the creator): freed, never closed
    std::uint32_t holders = 0;  // mappings of this process whose base() returned it
    ShmMapping kept;            // a destroyed pool's mapping, kept until no one else is attached
};

struct RegionTable {
    std::mutex mutex;
    std::unordered_map<std::uint64_t, Region> regions;  // by pool instance (nonce)
};

RegionTable& table() {
    static auto* instance = new RegionTable();  // never destroyed: used until exit
    return *instance;
}

// Whether the process this one was forked from (or one before it) had started CUDA
// (cuda_started(): any GPU call, a failed one included): CUDA cannot be used in such a child.
bool g_cuda_inherited = false;

// Frees the regions of destroyed pools that no other live process has attached any more
// (their mappings were kept for the process table), table lock held.
void sweep_locked(RegionTable& t) noexcept {
    for (auto it = t.regions.begin(); it != t.regions.end();) {
        Region& region = it->second;
        if (region.kept.base == nullptr || process_table_others_attached(process_table_of(region.kept.base))) {
            ++it;
            continue;
        }
        cuda_free(region.device, region.ptr);
        shm_unmap(region.kept);
        it = t.regions.erase(it);
    }
}

dragonError_t refuse_inherited(const std::string& who) {
    return failf(DRAGON_INVALID_OPERATION,
                 "{}: this process was forked from one that had already used CUDA (a GPU pool), and CUDA cannot be "
                 "used in such a child; run a new program (exec) for GPU pools, or fork before the first one is used",
                 who);
}

}  // namespace

std::atomic<std::uint64_t> g_device_fork_generation{1};

dragonError_t device_region_allocate(std::uint64_t nonce, int device, std::uint64_t bytes, IpcHandle& handle,
                                     GpuUuid& uuid, const std::string& who) {
    if (g_cuda_inherited) return refuse_inherited(who);
    if (dragonError_t rc = cuda_device_uuid(device, uuid, who)) return rc;  // starts CUDA, outside the lock
    void* ptr = nullptr;
    if (dragonError_t rc = cuda_alloc_shared(device, bytes, ptr, handle, who)) return rc;
    RegionTable& t = table();
    std::lock_guard guard(t.mutex);
    sweep_locked(t);
    try {
        t.regions[nonce] = Region{ptr, device, true, 0, ShmMapping{}};
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
    g_cuda_inherited = g_cuda_inherited || cuda_started();
    g_device_fork_generation.fetch_add(1, std::memory_order_relaxed);
}

void DeviceRegion::reset() noexcept {
    base_.store(nullptr, std::memory_order_relaxed);
    generation_.store(0, std::memory_order_relaxed);
    device_.store(-1, std::memory_order_relaxed);
    released_ = false;
}

dragonError_t DeviceRegion::open(std::uint64_t nonce, const GpuUuid& uuid, const IpcHandle& handle,
                                 const std::string& who, std::uint8_t*& out) {
    RegionTable& t = table();
    bool ours = false;  // this process allocated it, or opened it for another mapping
    {
        std::lock_guard guard(t.mutex);
        ours = t.regions.count(nonce) != 0;
    }
    int device = -1;
    if (!ours) {
        // CUDA starts here for a process that only attaches: outside the table's lock.
        if (g_cuda_inherited) return refuse_inherited(who);
        if (dragonError_t rc = cuda_device_with_uuid(uuid, device, who)) return rc;
        if (dragonError_t rc = cuda_prepare(device, who)) return rc;
    }
    std::lock_guard guard(t.mutex);
    sweep_locked(t);
    if (released_)
        return failf(DRAGON_MAP_KEY_NOT_FOUND, "{}: the pool was detached from this process meanwhile", who);
    const std::uint64_t now = current_generation();
    std::uint8_t* b = base_.load(std::memory_order_acquire);
    if (b != nullptr && generation_.load(std::memory_order_relaxed) == now) {  // another thread opened it
        out = b;
        return DRAGON_SUCCESS;
    }
    auto it = t.regions.find(nonce);
    if (it == t.regions.end()) {
        if (device < 0) return failf(DRAGON_INVALID_STATE, "{}: its device region was closed meanwhile", who);
        void* ptr = nullptr;
        if (dragonError_t rc = cuda_open_shared(device, handle, ptr, who)) return rc;
        try {
            it = t.regions.emplace(nonce, Region{ptr, device, false, 0, ShmMapping{}}).first;
        } catch (...) {
            cuda_close_shared(device, ptr);
            throw;
        }
    }
    ++it->second.holders;
    generation_.store(now, std::memory_order_relaxed);
    device_.store(it->second.device, std::memory_order_relaxed);
    b = static_cast<std::uint8_t*>(it->second.ptr);
    base_.store(b, std::memory_order_release);
    out = b;
    return DRAGON_SUCCESS;
}

bool DeviceRegion::release(std::uint64_t nonce, bool destroyed, bool others_attached,
                           const ShmMapping& mapping) noexcept {
    RegionTable& t = table();
    std::lock_guard guard(t.mutex);
    sweep_locked(t);
    const bool held = base_.load(std::memory_order_relaxed) != nullptr &&
                      generation_.load(std::memory_order_relaxed) == current_generation();
    reset();
    released_ = true;
    auto it = t.regions.find(nonce);
    if (it == t.regions.end()) return false;
    Region& region = it->second;
    if (held && region.holders > 0) --region.holders;
    if (region.holders > 0) return false;
    if (!region.owned) {
        cuda_close_shared(region.device, region.ptr);
        t.regions.erase(it);
    } else if (destroyed && !others_attached) {
        cuda_free(region.device, region.ptr);
        t.regions.erase(it);
    } else if (destroyed) {
        region.kept = mapping;  // freed by a later sweep, once the others are gone
        return true;
    }
    // else (not destroyed): the creator's region stays for the pool's other processes,
    // and for this process's next attach of it.
    return false;
}

}  // namespace dragonmem::detail
