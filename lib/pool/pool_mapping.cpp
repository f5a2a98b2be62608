// Creating, opening and operating on a mapped pool. Each shared-memory update below
// says what a survivor sees if this process is killed around it.
#include "pool/pool_mapping.hpp"

#include "os/error.hpp"
#include "os/errno_text.hpp"
#include "pool/fork_safety.hpp"
#include "os/host_identity.hpp"
#include "os/hugepage_file.hpp"
#include "os/numa_binding.hpp"
#include "pool/mapping_registry.hpp"
#include "pool/pool_creator.hpp"
#include "pool/process_table.hpp"
#include "pool/pool_geometry.hpp"
#include "pool/pool_view.hpp"
#include "pool/robust_lock.hpp"
#include "os/deadline.hpp"
#include "os/futex.hpp"
#include "os/random.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <limits>
#include <cstring>
#include <mutex>
#include <new>
#include <thread>

namespace dragonmem::detail {

namespace {

std::atomic<long> g_wait_slice_ms{100};  // set_wait_slice_for_tests()

// Retired PoolMapping objects. Never freed: a MemoryRef may still hold a pointer to one
// and must be able to read its epoch. Bounded by the most pools mapped at once.
struct Graveyard {
    std::mutex mutex;
    std::vector<PoolMapping*> retired;
    std::uint64_t next_epoch = 1;
};

Graveyard& graveyard() {
    static auto* instance = new Graveyard();
    return *instance;
}

}  // namespace

long set_wait_slice_for_tests(long slice_ms) noexcept {
    return g_wait_slice_ms.exchange(slice_ms > 0 ? slice_ms : 1, std::memory_order_relaxed);
}

void graveyard_lock_for_fork() noexcept { graveyard().mutex.lock(); }

void graveyard_unlock_after_fork() noexcept { graveyard().mutex.unlock(); }

PoolMapping* PoolMapping::make() {
    Graveyard& g = graveyard();
    std::lock_guard guard(g.mutex);
    PoolMapping* object;
    if (g.retired.empty()) {
        object = new PoolMapping();
    } else {
        object = g.retired.back();
        g.retired.pop_back();
    }
    // Release: a try_add_ref that counts on this store (acquire) then reads an epoch at
    // least as new as the one the last release() stored (under the same mutex), so a
    // borrowed pointer of the previous attach cannot mistake this object for its own.
    object->refs_.store(1, std::memory_order_release);
    object->unmapped_.store(false, std::memory_order_relaxed);
    object->caches_.forget_claims();
    object->device_.reset();
    object->registered_pid_ = 0;
    object->epoch_.store(g.next_epoch++, std::memory_order_release);
    return object;
}

bool PoolMapping::try_add_ref() noexcept {
    std::uint32_t count = refs_.load(std::memory_order_relaxed);
    while (count != 0)
        if (refs_.compare_exchange_weak(count, count + 1, std::memory_order_acquire, std::memory_order_relaxed))
            return true;
    return false;
}

void PoolMapping::release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    // This process's threads' cached blocks go back to the heap. Only a mapping that
    // claimed entries reads its header here (one whose attach failed has none).
    if (caches_.holds_claims())
        caches_.hand_back_process_caches(unmapped_.load(std::memory_order_acquire) || destroyed_elsewhere());
    // A GPU pool's device region: closed, or freed by its creator when the pool is gone
    // and nobody else has it mapped (device_region.hpp). Before our process-table entry
    // goes, so the census below does not count this process.
    // Not a forked child's: the registration is its parent's (and CUDA is not the child's).
    if (gpu_registered_pid_ != 0 && gpu_registered_pid_ == static_cast<std::uint32_t>(::getpid()))
        (void)cuda_host_unregister(gpu_device(), heap_base_, "release");
    gpu_registered_pid_ = 0;
    // The region table may keep the mapping (a destroyed pool whose region waits for the
    // other processes to detach: device_region.hpp); then it unmaps it, not us.
    bool mapping_kept = false;
    if (on_gpu_)
        mapping_kept = device_.release(header_->nonce,
                                       destroyed_elsewhere() || unmapped_.load(std::memory_order_acquire),
                                       process_table_others_attached(process_table_of(mapping_.base)), mapping_);
    // Our process-table entry (one CAS; process_table.hpp has the crash argument). Not a
    // forked child's: the entry is its parent's.
    if (registered_pid_ != 0 && registered_pid_ == static_cast<std::uint32_t>(::getpid()))
        process_table_release(process_table_of(mapping_.base), registered_slot_, registered_word_);
    registered_pid_ = 0;
    registry_forget(this);
    Graveyard& g = graveyard();
    std::lock_guard guard(g.mutex);
    epoch_.store(g.next_epoch++, std::memory_order_release);  // borrowed pointers now see "gone"
    unmapped_.store(true, std::memory_order_release);
    if (mapping_kept)
        mapping_ = ShmMapping{};
    else
        shm_unmap(mapping_);
    header_ = nullptr;
    identity_.reset();
    shm_name_.clear();
    try {
        g.retired.push_back(this);
    } catch (const std::bad_alloc&) {
        // Keeping the object alive is what matters; losing it for reuse is harmless.
    }
}

void PoolMapping::register_this_process() noexcept {
    const auto pid = static_cast<std::uint32_t>(::getpid());
    if (registered_pid_ == pid || mapping_.base == nullptr) return;
    registered_word_ = current_process_word();
    registered_slot_ = process_table_claim(process_table_of(mapping_.base), registered_word_);
    registered_pid_ = pid;
}

void PoolMapping::attach_views(ShmMapping mapping, ShmObjectId object) {
    mapping_ = mapping;
    header_ = reinterpret_cast<PoolHeader*>(mapping_.base);
    heap_base_ = mapping_.base + header_->heap_offset;
    on_gpu_ = header_->mem_type == DRAGON_MEMORY_TYPE_GPU;
    backing_ = Backing(header_, mapping_, shm_name_, object);
    manifest_ = Manifest(header_, reinterpret_cast<ManifestRecord*>(mapping_.base + header_->manifest_offset),
                         reinterpret_cast<IdBlock*>(mapping_.base + k_id_blocks_offset), &backing_);
    heap_ = TlsfHeap(reinterpret_cast<HeapState*>(mapping_.base + k_heap_state_offset), heap_base_,
                     reinterpret_cast<std::uint64_t*>(mapping_.base + header_->free_map_offset),
                     header_->min_block_order, header_->heap_bytes, &backing_);
    caches_.attach(header_, &manifest_, &heap_);
    auto identity = std::make_shared<PoolIdentity>();
    identity->name.assign(header_->name, strnlen(header_->name, k_name_capacity));
    identity->m_uid = header_->m_uid;
    identity->hostid = header_->hostid;
    identity->rt_uid = header_->rt_uid;
    identity->nonce = header_->nonce;
    identity->heap_bytes = header_->heap_bytes;
    identity->id_slot_bits = header_->id_slot_bits;
    std::memcpy(identity->secret.data(), header_->secret, identity->secret.size());
    identity_ = std::move(identity);
}

namespace {

// Undoes a creation that did not finish, whatever stopped it (an error return or an
// exception such as std::bad_alloc): the mapping is dropped and the name removed, if it
// still names our object, so a failed create leaves nothing behind.
struct CreationUndo {
    std::string shm_name;
    ShmObjectId object;           // known once our object exists
    int fd = -1;
    ShmMapping mapping;           // until `pool` owns it
    PoolMapping* pool = nullptr;  // owns the mapping once made
    bool committed = false;
    std::string heap_file;        // a hugepage pool's heap file, once made
    ShmObjectId heap_object;
    int heap_fd = -1;
    std::uint64_t device_nonce = 0;  // a GPU pool's instance, once its device region exists

    CreationUndo() = default;
    CreationUndo(const CreationUndo&) = delete;
    CreationUndo& operator=(const CreationUndo&) = delete;
    ~CreationUndo() {
        if (!committed) {
            if (pool != nullptr) pool->release();  // unmaps
            shm_unmap(mapping);
            if (object.known()) shm_unlink_if_same(shm_name, object);
            if (!heap_file.empty()) hugepage_unlink_if_same(heap_file.c_str(), heap_object);
            if (device_nonce != 0) device_region_discard(device_nonce);
        }
        if (fd >= 0) ::close(fd);
        if (heap_fd >= 0) ::close(heap_fd);
    }
};

// /dev/shm could not give memory to part of a pool being created.
dragonError_t creation_unbacked(std::string_view name, int err, std::uint64_t bytes, const char* what) {
    return with_errno(failf(err == ENOSPC || err == EDQUOT ? DRAGON_OUT_OF_SPACE : DRAGON_MEMORY_ERRNO,
                            "pool '{}': {} could not back {} B for {}: {} (errno {}); {}; nothing was created", name,
                            k_shm_dir, bytes, what, errno_text(err), err, shm_space_text()),
                      err);
}

dragonError_t refuse_other_namespace(const std::string& shm_name, std::uint64_t pool_ns, std::uint64_t my_ns,
                                     const char* state) {
    return failf(DRAGON_INVALID_OPERATION,
                 "pool '{}'{} was created by a process in PID namespace {} but this process is in {}: processes sharing "
                 "a pool must share a PID namespace (the pool's lock and thread caches identify threads by id)",
                 base_name_of(shm_name), state, describe_pid_namespace(pool_ns),
                 describe_pid_namespace(my_ns));
}

long ms_since(std::chrono::steady_clock::time_point start) {
    return static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count());
}

// How long ago (CLOCK_REALTIME) the object last changed; negative if the clock went back.
long age_ms(const timespec& changed) {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return static_cast<long>((now.tv_sec - changed.tv_sec) * 1000 + (now.tv_nsec - changed.tv_nsec) / 1000000);
}

// One read of an object's header (zeros where the object is shorter than a page).
struct HeaderRead {
    alignas(64) unsigned char bytes[sizeof(PoolHeader)];
    std::uint64_t object_bytes = 0;
    ShmObjectId object;
    timespec changed{};
    // Plain fields only; the atomics' images are read as bytes (copied_field): the copy is
    // not shared memory, and they are no objects to load from.
    const PoolHeader& header() const { return *reinterpret_cast<const PoolHeader*>(bytes); }
    std::uint64_t magic() const { return copied_field<std::uint64_t>(bytes, offsetof(PoolHeader, magic)); }
    std::uint32_t ready() const { return copied_field<std::uint32_t>(bytes, offsetof(PoolHeader, ready)); }
    std::uint32_t destroyed() const { return copied_field<std::uint32_t>(bytes, offsetof(PoolHeader, destroyed)); }
};

dragonError_t read_header(int fd, const std::string& shm_name, HeaderRead& out) {
    if (dragonError_t rc = shm_stat(fd, shm_name, out.object_bytes, out.object, out.changed)) return rc;
    std::memset(out.bytes, 0, sizeof out.bytes);
    if (out.object_bytes < k_page_bytes) return DRAGON_SUCCESS;  // not sized yet: blank
    ssize_t got = ::pread(fd, out.bytes, sizeof out.bytes, 0);
    if (got < 0) return fail_errno(DRAGON_MEMORY_ERRNO, errno, fmt::format("reading the header of '{}'", shm_name));
    if (got != static_cast<ssize_t>(sizeof out.bytes)) std::memset(out.bytes, 0, sizeof out.bytes);
    return DRAGON_SUCCESS;
}

// Reads the header until it is a committed pool. A pool being created is sized, stamped
// with its creator (one pwrite) and formatted before its magic is stored, last: wait
// while its creator lives (at most k_creator_wait_ms), refuse as soon as it is dead.
dragonError_t read_ready_header(int fd, const std::string& shm_name, std::uint64_t my_ns, HeaderRead& out) {
    const auto started = std::chrono::steady_clock::now();
    int dead_reads = 0;
    int torn_reads = 0;
    for (int attempt = 0;; ++attempt) {
        if (dragonError_t rc = read_header(fd, shm_name, out)) return rc;
        const PoolHeader& h = out.header();
        std::uint64_t magic = out.magic();
        bool ready = out.ready() == k_pool_ready;
        if (magic == k_pool_magic && ready) return DRAGON_SUCCESS;
        if (magic != 0 && magic != k_pool_magic) return validate_header(h, magic, out.object_bytes, shm_name);  // says why
        const long waited_ms = ms_since(started);
        if (magic == k_pool_magic) {
            // The creator stores `ready` before the magic: this is damage, unless our
            // read raced those two stores. Look twice more.
            if (++torn_reads >= 3)
                return failf(DRAGON_INVALID_ARGUMENT,
                             "shm object '{}' is not a usable dragonmem pool: its header has the magic but its ready "
                             "word is {:#x}, not READY (a damaged header)",
                             shm_name, out.ready());
        } else {
            const CreatorRecord creator = h.creator;
            switch (creator_state(creator, my_ns)) {
                case CreatorState::other_namespace:
                    return refuse_other_namespace(shm_name, creator.pid_ns, my_ns, " (still being created)");
                case CreatorState::dead:
                    // Twice in a row: a read torn by the creator's own write is not a verdict.
                    if (++dead_reads >= 2)
                        return failf(DRAGON_INVALID_ARGUMENT,
                                     "shm object '{}' ({} bytes) is not an initialised dragonmem pool: its creator "
                                     "(pid {}, thread {}) died while creating it; remove it with 'dragonmem destroy "
                                     "--force'",
                                     shm_name, out.object_bytes, creator.pid, static_cast<std::uint32_t>(creator.owner));
                    break;
                case CreatorState::alive:
                    dead_reads = 0;
                    if (waited_ms >= k_creator_wait_ms)
                        return failf(DRAGON_TIMEOUT,
                                     "pool '{}' is still being created by pid {} (alive) after {} ms of waiting; try "
                                     "again later",
                                     base_name_of(shm_name), creator.pid, waited_ms);
                    break;
                case CreatorState::none: {
                    // Its creator is between shm_open and its first write, or died there.
                    long age = age_ms(out.changed);
                    if (age >= k_unrecorded_grace_ms || waited_ms >= k_creator_wait_ms)
                        return failf(DRAGON_INVALID_ARGUMENT,
                                     "shm object '{}' ({} bytes) is not an initialised dragonmem pool: no creator is "
                                     "recorded in it and it has not changed for {} ms (its creator may have died while "
                                     "creating it); remove it with 'dragonmem destroy --force'",
                                     shm_name, out.object_bytes, age);
                    break;
                }
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(attempt < 100 ? 1 : 10));
    }
}

}  // namespace

dragonError_t PoolMapping::create(std::string_view name, std::size_t bytes, std::uint64_t m_uid,
                                  const PoolOptions& options, PoolMapping*& out) {
    // create_pool's CreationUndo has removed whatever was made when an exception gets here.
    try {
        return create_pool(name, bytes, m_uid, options, out);
    } catch (const std::bad_alloc&) {
        return failf(DRAGON_INTERNAL_MALLOC_FAIL, "pool '{}': out of memory while creating it; nothing was created",
                     name);
    } catch (const std::exception& e) {
        return failf(DRAGON_FAILURE, "pool '{}': creation failed: {}; nothing was created", name, e.what());
    }
}

dragonError_t PoolMapping::create_pool(std::string_view name, std::size_t bytes, std::uint64_t m_uid,
                                       const PoolOptions& options, PoolMapping*& out) {
    if (dragonError_t rc = validate_pool_name(name)) return rc;
    // The pure checks in their original order: size and memory type first, then (I/O)
    // the huge-page mount and the NUMA node, then the rest of the geometry.
    if (dragonError_t rc = check_size_and_type(name, bytes, options)) return rc;
    const bool huge = options.mem_type == DRAGON_MEMORY_TYPE_HUGEPAGE;
    std::string heap_file;  // hugepage pools: the hugetlbfs file holding the heap
    if (huge) {
        std::string dir;
        if (dragonError_t rc = hugepage_mount(dir)) {
            const std::string why = last_error_message();
            return failf(rc, "pool '{}' (DRAGON_MEMORY_TYPE_HUGEPAGE): {}; nothing was created", name, why);
        }
        heap_file = dir + "/" + shm_name_for(name);
        if (heap_file.size() >= k_heap_file_capacity)
            return failf(DRAGON_INVALID_ARGUMENT,
                         "pool '{}': its huge-page file '{}' is {} characters long; at most {} fit the pool header "
                         "(mount hugetlbfs at a shorter path)",
                         name, heap_file, heap_file.size(), k_heap_file_capacity - 1);
    }
    if (options.numa_node < -1 || (options.numa_node >= 0 && !numa_node_online(options.numa_node))) {
        const std::string online = numa_online_nodes();
        return failf(DRAGON_INVALID_ARGUMENT,
                     "pool '{}': NUMA node {} is not online on this host (online nodes: {}); give one of them, or -1 "
                     "for no preference",
                     name, options.numa_node, online.empty() ? std::string("unknown, /sys says nothing") : online);
    }
    PoolGeometry g;
    if (dragonError_t rc = plan_geometry(name, bytes, options, g)) return rc;
    const bool gpu = options.mem_type == DRAGON_MEMORY_TYPE_GPU;
    if (gpu) {
        // CUDA starts here (the first GPU pool of the process), before anything is made.
        if (options.gpu_device_id > static_cast<std::uint64_t>(std::numeric_limits<int>::max()))
            return failf(DRAGON_INVALID_ARGUMENT, "pool '{}': GPU device {} is not a device number", name,
                         options.gpu_device_id);
        if (dragonError_t rc = cuda_check_device(static_cast<int>(options.gpu_device_id), fmt::format("pool '{}'", name)))
            return rc;
    }
    std::uint64_t shm_free = 0, shm_total = 0;
    if (shm_space(shm_free, shm_total) && g.needed_bytes > shm_free)
        return failf(DRAGON_OUT_OF_SPACE,
                     "pool '{}' does not fit in {}: it needs {} B ({} B of heap + {} B of {}) but {} has {} B free of "
                     "{} B; nothing was created",
                     name, k_shm_dir, g.needed_bytes, huge ? 0 : g.heap_bytes, g.needed_bytes - (huge ? 0 : g.heap_bytes),
                     g.reserve_all ? "header, manifest and free map, reserved"
                                     : "header, first manifest records and first page of the free map",
                     k_shm_dir, shm_free, shm_total);

    CreationUndo undo;
    undo.shm_name = shm_name_for(name);
    ShmObjectId object;
    if (dragonError_t rc = shm_create(undo.shm_name, g.object_bytes, static_cast<mode_t>(options.mode), undo.fd, object))
        return rc;  // nothing of ours exists (shm_create cleans up after itself)
    undo.object = object;

    // Mapped (which touches nothing) and bound to the NUMA node first, so that every page
    // backed from here on, the header's included, is allocated on that node.
    if (dragonError_t rc = shm_map(undo.fd, g.total_bytes, g.heap_offset, g.alignment, undo.mapping)) return rc;
    ShmObjectId heap_object;
    if (huge) {
        // The heap's file, mapped over the heap's place (2 MiB aligned: the heap's
        // alignment is its size, at least 2 MiB). The mapping reserves every huge page.
        if (dragonError_t rc = hugepage_create(heap_file, g.heap_bytes, static_cast<mode_t>(options.mode), undo.heap_fd,
                                               heap_object))
            return rc;
        undo.heap_file = heap_file;
        undo.heap_object = heap_object;
        if (dragonError_t rc =
                hugepage_map_over(undo.heap_fd, undo.mapping.base + g.heap_offset, g.heap_bytes, std::string(name)))
            return rc;
    }
    if (options.numa_node >= 0) {
        if (int err = numa_bind(undo.mapping.base, g.total_bytes, options.numa_node))
            return fail_errno(DRAGON_MEMORY_ERRNO, err,
                              fmt::format("pool '{}': binding its pages to NUMA node {} (mbind); nothing was created",
                                          name, options.numa_node));
    }

    // Who creates it, before anything else: attachers wait while this thread lives
    // (pool_creator.hpp). pwrite gives the header page its memory, so a full /dev/shm is
    // ENOSPC here. Killed before it: a blank object, refused once it is k_unrecorded_grace_ms old.
    const CreatorRecord creator = this_creator();
    if (int err = shm_write_at(undo.fd, &creator, sizeof creator, offsetof(PoolHeader, creator)))
        return creation_unbacked(name, err, k_page_bytes, "its header");

    // Memory for every page the library touches from here on (pool_backing.hpp), or, when
    // reserving, for the whole object.
    if (g.reserve_all) {
        if (int err = shm_back_fd(undo.fd, 0, g.object_bytes))
            return creation_unbacked(name, err, g.object_bytes, huge ? "its metadata" : "the whole pool (reserve)");
        if (huge) {
            if (int err = hugepage_populate(undo.mapping.base + g.heap_offset, g.heap_bytes))
                return fail_errno(DRAGON_OUT_OF_SPACE, err,
                                  fmt::format("pool '{}': giving its {} huge pages memory ({}); nothing was created",
                                              name, g.heap_bytes / k_huge_page_bytes, hugepage_counts_text()));
        }
    } else {
        if (int err = shm_back_fd(undo.fd, 0, k_procs_offset + k_procs_bytes))
            return creation_unbacked(name, err, k_procs_offset + k_procs_bytes,
                                     "its header, backing directory and process table");
        // Written by every caching thread's allocations, without the lock: backed now.
        if (int err = shm_back_fd(undo.fd, k_id_blocks_offset, k_page_bytes))
            return creation_unbacked(name, err, k_page_bytes, "its id blocks");
        if (int err = shm_back_fd(undo.fd, k_heap_state_offset, k_heap_state_bytes))
            return creation_unbacked(name, err, k_heap_state_bytes, "its heap state");
        if (int err = shm_back_fd(undo.fd, k_backing_map_offset, k_page_bytes))
            return creation_unbacked(name, err, k_page_bytes, "its backing map's first page");
        if (int err = shm_back_fd(undo.fd, g.manifest_offset, g.first_records_bytes))
            return creation_unbacked(name, err, g.first_records_bytes, "its first manifest records");
        // Before the chunk's map bit is set below, as Backing::back_heap does.
        if (int err = shm_back_fd(undo.fd, g.free_map_offset, g.first_free_map_bytes))
            return creation_unbacked(name, err, g.first_free_map_bytes, "its free map's first page");
        if (int err = shm_back_fd(undo.fd, g.heap_offset, g.first_chunk_bytes))
            return creation_unbacked(name, err, g.first_chunk_bytes, "the heap's first chunk");
    }

    // A GPU pool's data: the device region, freed again by the undo if creation fails.
    const std::uint64_t nonce = random_u64();
    IpcHandle ipc_handle{};
    GpuUuid gpu_uuid{};
    if (gpu) {
        if (dragonError_t rc = device_region_allocate(nonce, static_cast<int>(options.gpu_device_id), g.heap_bytes,
                                                      ipc_handle, gpu_uuid, fmt::format("pool '{}'", name))) {
            const std::string why = last_error_message();
            return failf(rc, "{}; nothing was created", why);
        }
        undo.device_nonce = nonce;
    }

    // Formatting. Until `magic` is stored (last), attachers see "not ready" and wait while
    // the creator lives; a creator killed before that leaves an object that attach
    // reports as abandoned and `destroy --force` removes.
    auto* h = reinterpret_cast<PoolHeader*>(undo.mapping.base);
    store_geometry(*h, g);
    h->mode = options.mode;
    h->m_uid = m_uid;
    h->hostid = this_hostid();
    h->rt_uid = this_rt_uid();
    h->nonce = nonce;
    // The capability (pool_layout.hpp, PoolHeader::secret): kernel randomness only.
    if (int err = random_fill(h->secret, sizeof h->secret))
        return fail_errno(DRAGON_MEMORY_ERRNO, err,
                          fmt::format("pool '{}': drawing its secret (getrandom) failed; nothing was created", name));
    h->lock_type = static_cast<std::uint32_t>(options.lock_type);
    h->mem_type = static_cast<std::uint32_t>(options.mem_type);
    h->growth_type = static_cast<std::uint32_t>(options.growth_type);
    h->segment_size = options.segment_size;
    h->max_size = options.max_size;
    std::memcpy(h->name, name.data(), name.size());
    h->fully_backed = g.reserve_all ? 1 : 0;
    if (huge) {
        h->heap_file_dev = heap_object.dev;
        h->heap_file_ino = heap_object.ino;
        std::memcpy(h->heap_file, heap_file.c_str(), heap_file.size() + 1);
    }
    h->numa_node = options.numa_node;
    h->gpu_device_id = options.gpu_device_id;
    if (gpu) {
        h->ipc_handle_bytes = k_ipc_handle_bytes;
        std::memcpy(h->ipc_handle, ipc_handle.bytes, k_ipc_handle_bytes);
        std::memcpy(h->gpu_uuid, gpu_uuid.bytes, k_gpu_uuid_bytes);
    }
    h->manifest_backed.store(g.records_backed, std::memory_order_relaxed);
    if (!g.reserve_all) {
        // The map's first page, heap chunk 0 and its free-map page were backed above (the
        // pages are zero).
        auto* dir = reinterpret_cast<BitPage*>(undo.mapping.base + k_backing_dir_offset);
        auto* map = reinterpret_cast<BitPage*>(undo.mapping.base + k_backing_map_offset);
        dir->words[0].store(1, std::memory_order_relaxed);
        map->words[0].store(1, std::memory_order_relaxed);
    }
    owner_lock_init(h->lock);
    // Read-only once the pool is ready; attaches (ours included, in the registry) fill
    // the entries. Killed before or after: the object has no magic yet, not a pool.
    process_table_format(process_table_of(undo.mapping.base));

    PoolMapping* pool = make();
    undo.pool = pool;
    pool->mapping_ = undo.mapping;  // release() unmaps it from here on
    undo.mapping = ShmMapping{};
    pool->shm_name_ = undo.shm_name;
    pool->attach_views(pool->mapping_, object);
    if (!pool->heap_.format(random_u64()))
        return failf(DRAGON_OUT_OF_SPACE, "pool '{}': {}; nothing was created", name,
                     pool->backing_.describe_failure());
    // Preallocations: carve the blocks (creation fails if they do not fit; the chunks of
    // their ends get memory now), then free them again, merging, so the pool is one free
    // block as if nothing were preallocated. They are not kept apart as Dragon's buddy
    // heap pre-splits them: carving a block off a larger free one costs what popping a
    // listed one does (TlsfHeap::alloc_run), and blocks kept apart unmerged would refuse
    // every request larger than the space between them, with nothing allocated.
    std::vector<HeapBlock> carved;
    for (std::size_t n = 0; n < options.preallocs.size(); ++n) {
        for (std::size_t i = 0; i < options.preallocs[n]; ++i) {
            const std::uint64_t bytes = pool->heap_.block_bytes_for(std::uint64_t{1} << (g.min_order + n));
            std::uint64_t offset = pool->heap_.alloc(bytes);
            if (offset == k_nil && pool->backing_.failed())
                return failf(DRAGON_OUT_OF_SPACE,
                             "pool '{}': preallocation {} of {} of {} B blocks: {}; nothing was created", name, i + 1,
                             options.preallocs[n], bytes, pool->backing_.describe_failure());
            if (offset == k_nil)
                return failf(DRAGON_INVALID_ARGUMENT,
                             "pool '{}': preallocations do not fit: block {} of {} of {} B failed in a {} B heap", name,
                             i + 1, options.preallocs[n], bytes, g.heap_bytes);
            carved.push_back({offset, bytes});  // may throw: the undo removes the pool
        }
    }
    // Each free merges under no lock: nobody can attach yet. Killed in here (the blocks
    // half merged), the object has no magic: an abandoned creation that attach reports
    // and `destroy --force` removes, never a pool that anyone repairs or uses.
    for (const HeapBlock& block : carved) pool->heap_.free(block.offset, block.bytes);
    h->ready.store(k_pool_ready, std::memory_order_release);
    h->magic.store(k_pool_magic, std::memory_order_release);
    undo.committed = true;
    out = pool;
    return DRAGON_SUCCESS;
}

dragonError_t PoolMapping::open(const std::string& shm_name, std::uint64_t expected_nonce, PoolMapping*& out) {
    int fd = -1;
    if (dragonError_t rc = shm_open_existing(shm_name, base_name_of(shm_name), expected_nonce != 0, fd)) return rc;
    struct FdCloser {
        int fd;
        ~FdCloser() { ::close(fd); }
    } closer{fd};

    const std::uint64_t my_ns = this_pid_namespace();
    HeaderRead read;
    if (dragonError_t rc = read_ready_header(fd, shm_name, my_ns, read)) return rc;
    const PoolHeader& h = read.header();
    if (dragonError_t rc = validate_header(h, read.magic(), read.object_bytes, shm_name)) return rc;
    if (other_pid_namespace(h.creator.pid_ns, my_ns))
        return refuse_other_namespace(shm_name, h.creator.pid_ns, my_ns, "");
    if (expected_nonce != 0 && h.nonce != expected_nonce)
        return failf(DRAGON_OBJECT_DESTROYED,
                     "pool '{}' of this descriptor was destroyed; the name now belongs to a different pool", shm_name);
    if (read.destroyed() != 0)
        return failf(DRAGON_OBJECT_DESTROYED, "pool '{}' has been destroyed", shm_name);

    ShmMapping mapping;
    if (dragonError_t rc = shm_map(fd, h.total_bytes, h.heap_offset, h.heap_alignment, mapping)) return rc;
    if (h.mem_type == DRAGON_MEMORY_TYPE_HUGEPAGE) {
        // The heap is the hugetlbfs file the header names (and identifies, so a file put
        // in its place is refused); its pages were reserved and populated by the creator.
        int heap_fd = -1;
        dragonError_t rc = hugepage_open(h.heap_file, ShmObjectId{h.heap_file_dev, h.heap_file_ino}, heap_fd);
        if (rc == DRAGON_SUCCESS) {
            rc = hugepage_map_over(heap_fd, mapping.base + h.heap_offset, h.heap_bytes, shm_name);
            ::close(heap_fd);
        }
        if (rc != DRAGON_SUCCESS) {
            shm_unmap(mapping);
            return rc;
        }
    }
    PoolMapping* pool = nullptr;
    try {
        pool = make();
        pool->mapping_ = mapping;  // release() unmaps it from here on
        mapping = ShmMapping{};
        pool->shm_name_ = shm_name;
        pool->attach_views(pool->mapping_, read.object);
    } catch (const std::bad_alloc&) {
        if (pool != nullptr) pool->release();
        shm_unmap(mapping);
        return failf(DRAGON_INTERNAL_MALLOC_FAIL, "out of memory attaching pool '{}'", shm_name);
    }
    out = pool;
    return DRAGON_SUCCESS;
}

dragonError_t PoolMapping::refuse_if_being_created(const std::string& shm_name) {
    int fd = -1;
    if (shm_open_existing(shm_name, base_name_of(shm_name), false, fd) != DRAGON_SUCCESS)
        return DRAGON_SUCCESS;  // the caller explains
    HeaderRead read;
    dragonError_t rc = read_header(fd, shm_name, read);
    ::close(fd);
    if (rc != DRAGON_SUCCESS || read.magic() != 0) return DRAGON_SUCCESS;
    const CreatorRecord creator = read.header().creator;
    const std::string name(base_name_of(shm_name));
    const std::uint64_t mine = this_pid_namespace();
    switch (creator_state(creator, mine)) {
        case CreatorState::alive:
            return failf(DRAGON_INVALID_OPERATION,
                         "pool '{}' is being created by pid {} (thread {}), which is alive: not removed; let the "
                         "creation finish (or stop that process) and destroy it then",
                         name, creator.pid, static_cast<std::uint32_t>(creator.owner));
        case CreatorState::other_namespace:
            return failf(DRAGON_INVALID_OPERATION,
                         "pool '{}' is being created by pid {} of PID namespace {} (this process is in {}), which "
                         "cannot be checked from here: not removed; run 'dragonmem destroy --force' in that namespace",
                         name, creator.pid, describe_pid_namespace(creator.pid_ns), describe_pid_namespace(mine));
        case CreatorState::none:
            if (long age = age_ms(read.changed); age < k_unrecorded_grace_ms)
                return failf(DRAGON_INVALID_OPERATION,
                             "pool '{}' changed {} ms ago and has no creator recorded yet: it may be being created; "
                             "not removed; try again in a second",
                             name, age);
            return DRAGON_SUCCESS;
        case CreatorState::dead:
            return DRAGON_SUCCESS;
    }
    return DRAGON_SUCCESS;
}

dragonError_t PoolMapping::explain_unusable(const char* op) const {
    if (unmapped_.load(std::memory_order_acquire))
        return failf(DRAGON_MAP_KEY_NOT_FOUND, "{}: pool '{}' was destroyed by this process", op,
                     identity_ ? identity_->name : std::string("?"));
    return failf(DRAGON_OBJECT_DESTROYED, "{}: pool '{}' has been destroyed", op, identity_->name);
}

dragonError_t PoolMapping::lock(const timespec* deadline) {
    LockWait wait;
    wait.deadline = deadline;
    wait.give_up = &header_->destroyed;  // destroy --force does not take the lock: stop waiting
    switch (owner_lock_acquire(header_->lock, wait)) {
    case LockOutcome::acquired:
        break;
    case LockOutcome::acquired_owner_dead:
        // The previous holder died mid-update: rebuild derived state from the manifest.
        // If we die during repair, the next taker finds us dead and repairs again from
        // the same manifest.
        repair_pool(view());
        break;
    case LockOutcome::timed_out:
        return explain_lock_timeout(wait);
    case LockOutcome::gave_up:
        return failf(DRAGON_OBJECT_DESTROYED, "pool '{}' has been destroyed", identity_->name);
    }
    if (destroyed_elsewhere()) {
        unlock();
        return failf(DRAGON_OBJECT_DESTROYED, "pool '{}' has been destroyed", identity_->name);
    }
    return DRAGON_SUCCESS;
}

dragonError_t PoolMapping::explain_lock_timeout(const LockWait& wait) const {
    OwnerReport holder = report_owner(wait.holder);
    std::string who = holder.pid != 0 && holder.pid != holder.tid
                          ? fmt::format("thread {} of process {}", holder.tid, holder.pid)
                          : fmt::format("process {}", holder.tid);
    if (holder.name[0] != '\0') who += fmt::format(" ({})", holder.name);
    std::string state = !holder.alive         ? std::string("gone (its lock is taken over at the next try)")
                        : holder.state[0] != '\0' ? fmt::format("state {}", holder.state)
                                                   : std::string("state unknown");
    return failf(DRAGON_TIMEOUT,
                 "gave up waiting for the lock of pool '{}' after {:.3f} s ({}): it is held by {}, {}", identity_->name,
                 static_cast<double>(wait.waited_ns) / 1e9,
                 wait.ended_by_limit ? "the lock-wait limit" : "the call's timeout", who, state);
}

void PoolMapping::unlock() noexcept { owner_lock_release(header_->lock); }

dragonError_t PoolMapping::explain_no_block(std::uint64_t bytes, std::uint64_t block_bytes, dragonError_t code) {
    return failf(code,
                 "no free block of {} B for a {} B request in pool '{}' ({} B free, largest free block {} B, largest "
                 "request that fits {} B, {} live allocations)",
                 block_bytes, bytes, identity_->name, heap_.free_bytes(), heap_.largest_free_block().bytes,
                 heap_.largest_request(), header_->live_count);
}

dragonError_t PoolMapping::explain_unbacked(std::uint64_t bytes) {
    // Final, not waited on: frees in the pool do not give /dev/shm memory back.
    return failf(DRAGON_OUT_OF_SPACE,
                 "no memory left in {} for pool '{}' to serve a {} B request: {}. The pool was not changed; a pool "
                 "created with reserve (dragonmem create --reserve) has all its memory from the start",
                 k_shm_dir, identity_->name, bytes, backing_.describe_failure());
}

dragonError_t PoolMapping::alloc(std::uint64_t bytes, std::uint64_t type, bool blocking, const timespec* timeout,
                                 BlockInfo& out) {
    // Callers checked check_usable() (descr/operations.hpp): not repeated on the fast path.
    if (bytes > header_->heap_bytes)
        // Never satisfiable, so never wait, and never touch the lock.
        return failf(DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE,
                     "requested {} B from pool '{}' whose largest block is {} B", bytes, identity_->name,
                     header_->heap_bytes);
    const std::uint32_t size_class = heap_.class_for_request(bytes);
    if (blocking && timeout != nullptr &&
        (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000L))
        return failf(DRAGON_INVALID_ARGUMENT, "alloc timeout {{{}, {}}} is not a valid timespec",
                     static_cast<long long>(timeout->tv_sec), static_cast<long long>(timeout->tv_nsec));
    // The common case: a block this thread freed earlier (thread_cache.hpp), no lock.
    if (ThreadCache* cache = thread_cache_find(this, epoch());
        cache != nullptr && caches_.alloc_from_cache(*cache, size_class, bytes, type, out))
        return DRAGON_SUCCESS;
    const std::uint64_t block_bytes = heap_.class_bytes(size_class);
    timespec deadline{};
    if (blocking && timeout != nullptr) deadline = deadline_after(*timeout);
    for (;;) {
        // The lock is waited for until the call's own deadline, too (a stopped holder).
        if (dragonError_t rc = lock(blocking && timeout != nullptr ? &deadline : nullptr)) return rc;
        bool reported = false;  // a failure alloc_locked has explained: return it as is
        dragonError_t failure = alloc_locked(bytes, type, block_bytes, out, reported);
        if (failure != DRAGON_SUCCESS && !reported) {
            // Blocks parked in thread caches (any thread's) are free memory: take them
            // back before saying there is none.
            if (caches_.take_back_all_cached_locked() > 0) {
                // The pool is short of memory: this thread parks nothing more until it
                // frees again (a parked block is a hole the heap cannot coalesce).
                if (ThreadCache* cache = thread_cache_find(this, epoch())) stop_refills(*cache);
                bool wake = caches_.announce_frees_locked();
                failure = alloc_locked(bytes, type, block_bytes, out, reported);
                if (wake) futex_wake_all(&header_->wake_seq);
            }
        }
        if (failure == DRAGON_SUCCESS) {
            if (ThreadCache* cache = caches_.cache_for_this_thread_locked(this, epoch()))
                caches_.refill_locked(*cache, size_class);
            unlock();
            return DRAGON_SUCCESS;
        }
        if (reported) {
            unlock();
            return failure;
        }
        // No allocation: the pool holds what it held (blocks taken back from thread caches
        // above went to the heap's free lists, as free there as they were in the caches).
        bool expired = blocking && timeout != nullptr && deadline_passed(deadline);
        if (!blocking || expired) {
            dragonError_t code = failure == DRAGON_OUT_OF_SPACE ? DRAGON_OUT_OF_SPACE
                                 : blocking                     ? DRAGON_TIMEOUT
                                                                : failure;
            if (failure == DRAGON_OUT_OF_SPACE)
                failf(code, "manifest of pool '{}' is full: {} live allocations of {} allowed (max_allocations){}",
                      identity_->name, header_->live_count, manifest_.capacity(),
                      blocking ? "; timed out waiting for a free slot" : "");
            else
                explain_no_block(bytes, block_bytes, code);
            unlock();
            return code;
        }
        // Sleep until a free bumps wake_seq (the protocol: pool_mapping.hpp).
        std::uint32_t seen = header_->wake_seq.load(std::memory_order_relaxed);
        header_->has_waiters.store(1, std::memory_order_relaxed);
        unlock();
        // Sleep in slices: if a lock holder died mid-free nobody will bump wake_seq, so we
        // look again (taking the lock repairs the pool) at least every slice (100 ms).
        const long slice_ms = g_wait_slice_ms.load(std::memory_order_relaxed);
        timespec slice = deadline_after(timespec{slice_ms / 1000, (slice_ms % 1000) * 1000000L});
        bool slice_first = timeout == nullptr || slice.tv_sec < deadline.tv_sec ||
                           (slice.tv_sec == deadline.tv_sec && slice.tv_nsec < deadline.tv_nsec);
        futex_wait_until(&header_->wake_seq, seen, slice_first ? &slice : &deadline);
        if (dragonError_t rc = check_usable("alloc_blocking")) return rc;
    }
}

dragonError_t PoolMapping::alloc_locked(std::uint64_t bytes, std::uint64_t type, std::uint64_t block_bytes,
                                        BlockInfo& out, bool& reported) {
    backing_.clear_failure();
    if (!manifest_.has_free_slot()) {
        if (!manifest_.full()) {  // a slot, but no memory in /dev/shm for its record
            reported = true;
            return explain_unbacked(bytes);
        }
        // Both full: report the heap, the limit users think of first.
        return heap_.can_alloc(block_bytes) ? DRAGON_OUT_OF_SPACE : DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE;
    }
    std::uint64_t offset = heap_.alloc(block_bytes);
    if (offset == k_heap_corrupt) {
        // A free block's header was overwritten (a write past an allocation's end).
        // The manifest still says what is allocated: rebuild the heap and retry.
        repair_pool(view());
        offset = heap_.alloc(block_bytes);
        if (offset == k_heap_corrupt) {
            reported = true;
            return failf(DRAGON_FAILURE, "the heap of pool '{}' is corrupt and could not be repaired", identity_->name);
        }
    }
    if (offset == k_nil && backing_.failed()) {  // a block, but no memory in /dev/shm to split it
        reported = true;
        return explain_unbacked(bytes);
    }
    if (offset == k_nil) return DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE;
    std::uint64_t slot = manifest_.take_slot();
    // A thread with a cache entry takes its ids from its block, so that its ids increase
    // whichever path serves it; any other allocation reserves one counter.
    ThreadCache* cache = thread_cache_find(this, epoch());
    std::uint64_t counter = 0;
    std::uint64_t got = 0;
    bool have_id = cache != nullptr && cache->entry != k_no_entry ? caches_.take_counter(*cache, counter)
                                                                  : manifest_.reserve_counters(1, counter, got);
    if (!have_id) {
        manifest_.give_back_slot(slot);
        heap_.free(offset, block_bytes);
        reported = true;
        return failf(DRAGON_OUT_OF_SPACE, "pool '{}' has used up its id space", identity_->name);
    }
    const std::uint64_t id = manifest_.id_of(counter, slot);
    // Commit point: see Manifest::publish.
    manifest_.publish(slot, id, offset, bytes, type, heap_.class_of(block_bytes));
    header_->live_count += 1;
    header_->locked_allocs += 1;  // statistics, after the commit point
    if (header_->live_count > header_->max_live_count) header_->max_live_count = header_->live_count;
    out = BlockInfo{id, type, offset, bytes};
    return DRAGON_SUCCESS;
}

dragonError_t PoolMapping::free(std::uint64_t id) {
    if (id == 0) return DRAGON_SUCCESS;  // zero-byte allocations own no block
    ThreadCache* cache = thread_cache_find(this, epoch());
    if (cache != nullptr && caches_.free_to_cache(*cache, id)) return DRAGON_SUCCESS;
    if (dragonError_t rc = lock()) return rc;
    const int size_class =
        manifest_.find(id) == nullptr ? -1 : caches_.take_back_locked(manifest_.slot_of(id), id);
    if (size_class < 0) {
        unlock();
        return failf(DRAGON_KEY_NOT_FOUND, "allocation id {} is not live in pool '{}' (already freed?)", id,
                     identity_->name);
    }
    header_->locked_frees += 1;  // statistics, after the commit point (take_back_locked)
    // The free could not be cached because this size's magazine is full: make room.
    if (const MagazineHead* mag =
            cache != nullptr ? magazine_head(*cache, static_cast<std::uint32_t>(size_class)) : nullptr;
        mag != nullptr && mag->cap != 0 && mag->count >= mag->cap)
        caches_.flush_magazine_locked(*cache, static_cast<std::uint32_t>(size_class));
    bool wake = caches_.announce_frees_locked();
    unlock();
    if (wake) futex_wake_all(&header_->wake_seq);
    return DRAGON_SUCCESS;
}

dragonError_t PoolMapping::lookup(std::uint64_t id, BlockInfo& out) {
    if (dragonError_t rc = check_usable("from_id")) return rc;
    if (dragonError_t rc = lock()) return rc;
    const ManifestRecord* rec = manifest_.find(id);
    if (rec == nullptr) {
        unlock();
        return failf(DRAGON_KEY_NOT_FOUND, "allocation id {} is not live in pool '{}'", id, identity_->name);
    }
    out = BlockInfo{id, rec->type, rec->offset, rec->requested_bytes};
    unlock();
    return DRAGON_SUCCESS;
}

dragonError_t PoolMapping::list(std::optional<std::uint64_t> type, std::vector<AllocationInfo>& out) {
    if (dragonError_t rc = check_usable("get_allocations")) return rc;
    if (dragonError_t rc = lock()) return rc;
    out.clear();
    try {
        manifest_.for_each_live([&](std::uint64_t, const ManifestRecord& rec, std::uint64_t id) {
            if (type && rec.type != *type) return;
            out.push_back(AllocationInfo{id, rec.type, rec.offset, rec.requested_bytes,
                                         heap_.block_bytes_for(rec.requested_bytes)});
        });
    } catch (const std::bad_alloc&) {
        unlock();
        return fail(DRAGON_INTERNAL_MALLOC_FAIL, "out of memory listing allocations");
    }
    unlock();  // also on an empty pool (Dragon kept the lock there)
    std::sort(out.begin(), out.end(), [](const AllocationInfo& a, const AllocationInfo& b) { return a.id < b.id; });
    return DRAGON_SUCCESS;
}

dragonError_t PoolMapping::attributes(PoolAttributes& out, bool who_is_alive) {
    if (dragonError_t rc = check_usable("get_attr")) return rc;
    if (dragonError_t rc = lock()) return rc;
    // Blocks parked in thread caches are free space: report them as such.
    std::uint64_t cached_left = 0;
    bool wake = caches_.take_back_all_cached_locked(&cached_left) > 0 && caches_.announce_frees_locked();
    const PoolHeader& h = *header_;
    out.m_uid = h.m_uid;
    out.hostid = h.hostid;
    out.rt_uid = h.rt_uid;
    out.mode = h.mode;
    out.lock_type = static_cast<dragonLockKind_t>(h.lock_type);
    out.mem_type = static_cast<dragonMemoryPoolType_t>(h.mem_type);
    out.growth_type = static_cast<dragonMemoryPoolGrowthType_t>(h.growth_type);
    out.segment_size = h.segment_size;
    out.max_size = h.max_size;
    out.min_block_bytes = std::size_t{1} << h.min_block_order;
    out.max_block_bytes = h.heap_bytes;
    out.heap_bytes = h.heap_bytes;
    out.total_bytes = h.total_bytes;
    out.manifest_bytes = h.free_map_offset - h.manifest_offset;
    out.manifest_record_bytes = h.record_bytes;
    out.reserved = h.fully_backed != 0;
    out.heap_meta_bytes = k_heap_state_bytes + h.free_map_bytes;
    out.max_allocations = h.manifest_capacity;
    out.free_bytes = heap_.free_bytes();
    out.largest_free_block = heap_.largest_free_block().bytes;
    out.largest_request = heap_.largest_request();
    out.utilization_pct =
        100.0 * static_cast<double>(h.heap_bytes - heap_.free_bytes()) / static_cast<double>(h.heap_bytes);
    out.live_allocations = h.live_count - cached_left;
    out.max_live_allocations = h.max_live_count;  // counts cached blocks too: the manifest's high-water mark
    out.waiters = h.has_waiters.load(std::memory_order_relaxed) != 0;
    out.recoveries = h.recoveries;
    // Totals: the locked path's counts plus every entry's lock-free ones (IdBlock).
    out.allocations_total = h.locked_allocs;
    out.frees_total = h.locked_frees;
    for (std::uint32_t e = 0; e < k_cache_entries; ++e) {
        const IdBlock& block = manifest_.id_block(e);
        out.allocations_total += block.allocs.load(std::memory_order_relaxed);
        out.frees_total += block.frees.load(std::memory_order_relaxed);
    }
    out.numa_node = h.numa_node;
    out.gpu_device_id = h.gpu_device_id;
    out.ipc_handle_bytes = h.ipc_handle_bytes;
    unlock();
    if (wake) futex_wake_all(&header_->wake_seq);
    // Copies that may throw (out of memory) are made without the lock: an exception must
    // never leave the pool locked by a live thread.
    out.name = identity_->name;
    out.shm_name = shm_name_;
    // A process-local pool's owner, judged as a creator is (/proc, outside the lock). One
    // in another PID namespace cannot be judged from here and counts as alive: an orphan
    // is only ever one known to be dead.
    const std::uint64_t owner = local_owner();
    out.process_local = owner != 0;
    out.owner_pid = static_cast<std::uint32_t>(owner);
    if (owner != 0) {
        CreatorRecord record{};
        record.owner = owner;
        record.pid_ns = local_owner_pid_ns();
        out.owner_alive = creator_state(record, this_pid_namespace()) != CreatorState::dead;
    }
    if (!who_is_alive) return DRAGON_SUCCESS;
    // Who is alive (process_table.hpp): read without the lock, word by word.
    const ProcessTable& table = process_table_of(mapping_.base);
    out.creator_pid = header_->creator.pid;
    out.creator_uid = header_->creator.uid;
    out.created_ns = header_->creator.created_ns;
    out.creator_start_ticks = table.creator_start_ticks;
    ProcessCensus census = process_table_census(table);
    out.creator_alive = census.creator_alive;
    out.untracked_attached = census.untracked;
    out.dead_attached = census.dead_entries;
    const auto me = static_cast<std::uint32_t>(::getpid());
    const bool others = std::any_of(census.live_pids.begin(), census.live_pids.end(),
                                    [me](std::uint32_t pid) { return pid != me; });
    out.attached_pids = std::move(census.live_pids);
    if (out.process_local && !out.owner_alive)
        out.orphaned = true;  // its owner died: it would have gone at the owner's exit
    else
        out.orphaned = !others && census.untracked == 0 &&
                       !(out.process_local && out.owner_pid != me);  // a live owner elsewhere keeps it
    return DRAGON_SUCCESS;
}

dragonError_t PoolMapping::free_blocks(std::vector<FreeBlockCount>& out) {
    if (dragonError_t rc = check_usable("get_free_blocks")) return rc;
    if (dragonError_t rc = lock()) return rc;
    bool wake = caches_.take_back_all_cached_locked() > 0 && caches_.announce_frees_locked();
    // Free blocks have any whole-granule size: counted by power of two, counts[k] holding
    // those of [2^k, 2^(k+1)) bytes.
    std::vector<std::uint64_t> counts;
    try {
        heap_.free_histogram(counts);
    } catch (const std::bad_alloc&) {
        unlock();
        return fail(DRAGON_INTERNAL_MALLOC_FAIL, "out of memory counting free blocks");
    }
    unlock();
    if (wake) futex_wake_all(&header_->wake_seq);
    out.clear();
    for (std::uint32_t order = header_->min_block_order; order <= header_->max_block_order; ++order)
        out.push_back(FreeBlockCount{std::size_t{1} << order, counts[order]});
    return DRAGON_SUCCESS;
}

dragonError_t PoolMapping::check(CheckReport& out) {
    if (dragonError_t rc = check_usable("check")) return rc;
    if (dragonError_t rc = lock()) return rc;
    out = CheckReport{};
    try {
        collect_invariant_problems(view(), out);  // builds vectors and sentences
    } catch (const std::bad_alloc&) {
        unlock();  // never leave the pool locked by a live thread
        return fail(DRAGON_INTERNAL_MALLOC_FAIL, "check: out of memory listing the pool's blocks");
    }
    unlock();
    return DRAGON_SUCCESS;
}

dragonError_t PoolMapping::destroy(bool without_lock) {
    if (dragonError_t rc = check_usable("pool_destroy")) return rc;
    // Normally under the lock, so an operation in progress finishes first; --force does
    // without it, so that a holder that is stopped (alive, never taken over) cannot
    // keep a pool from being removed. Its operation then completes on a pool marked
    // destroyed, in its own mapping, and harms nobody.
    if (!without_lock) {
        if (dragonError_t rc = lock()) return rc;  // fails if another process destroyed it first
    }
    // From here every other process's next call (and every sleeper, once woken) sees
    // OBJECT_DESTROYED. Killed right after: the object stays linked but marked
    // destroyed; `dragonmem destroy --force NAME` removes it. The exchange tells two
    // destroyers apart even when one of them does not hold the lock.
    if (header_->destroyed.exchange(1, std::memory_order_acq_rel) != 0) {
        if (!without_lock) unlock();
        return failf(DRAGON_OBJECT_DESTROYED, "pool '{}' has been destroyed", identity_->name);
    }
    header_->wake_seq.fetch_add(1, std::memory_order_acq_rel);
    if (!without_lock) unlock();
    // Sleepers for memory and waiters for the lock alike: they look at `destroyed` now.
    futex_wake_all(&header_->wake_seq);
    owner_lock_wake_waiters(header_->lock);
    // Nobody else can have re-created the name: it was still linked to our object.
    int err = shm_unlink_name(shm_name_);
    if (header_->mem_type == DRAGON_MEMORY_TYPE_HUGEPAGE) {
        // The heap's file goes too, if it still is ours (copied out of shared memory first).
        char path[k_heap_file_capacity];
        std::memcpy(path, header_->heap_file, sizeof path);
        path[sizeof path - 1] = '\0';
        hugepage_unlink_if_same(path, ShmObjectId{header_->heap_file_dev, header_->heap_file_ino});
    }
    // The mapping itself stays until the process's last reference goes (release()):
    // other threads may hold descriptors of this pool and be inside a call right now,
    // reading the header, the manifest or a heap block. What they see:
    //   - a call that starts from now on fails at its check_usable(): MAP_KEY_NOT_FOUND;
    //   - a call already past that check either completes as if it had run just before
    //     the destroy (a lock-free cache hit), or fails when it takes the lock
    //     (OBJECT_DESTROYED), or, asleep in alloc_blocking, is woken above and fails at
    //     its next check_usable();
    //   - bytes of an allocation it still points into stay readable and writable.
    // Unmapping here instead would turn each of those into a SIGSEGV in that thread.
    unmapped_.store(true, std::memory_order_release);
    registry_forget(this);
    if (err != 0 && err != ENOENT)
        return fail_errno(DRAGON_MEMORY_ERRNO, err, fmt::format("shm_unlink('{}')", shm_name_));
    return DRAGON_SUCCESS;
}

dragonError_t PoolMapping::device_base(const char* op, std::uint8_t*& out) {
    if (device_.cached(out)) [[likely]]
        return DRAGON_SUCCESS;
    IpcHandle handle;
    std::memcpy(handle.bytes, header_->ipc_handle, k_ipc_handle_bytes);
    GpuUuid uuid;
    std::memcpy(uuid.bytes, header_->gpu_uuid, k_gpu_uuid_bytes);
    const dragonError_t rc =
        device_.open(header_->nonce, uuid, handle,
                     fmt::format("{}: GPU pool '{}' (created by pid {})", op, identity_->name, header_->creator.pid), out);
    if (rc == DRAGON_SUCCESS || rc == DRAGON_INVALID_OPERATION) return rc;
    // The usual cause, said plainly: CUDA freed the region with its creator's context.
    if (process_word_is_dead(process_table_of(mapping_.base).creator_process))
        return failf(DRAGON_OBJECT_DESTROYED,
                     "{}: GPU pool '{}': its device memory is gone: the process that created the pool (pid {}) has "
                     "exited, and a GPU pool's bytes live only as long as that process (keep it running, e.g. "
                     "'dragonmem create --hold'); destroy the pool",
                     op, identity_->name, header_->creator.pid);
    return rc;
}

dragonError_t PoolMapping::register_with_gpu(bool on) {
    const char* op = on ? "process_local_register_with_gpu" : "process_local_unregister_with_gpu";
    if (dragonError_t rc = check_usable(op)) return rc;
    if (on_gpu_)
        return failf(DRAGON_INVALID_OPERATION, "{}: pool '{}' is a GPU pool: its bytes are device memory already", op,
                     identity_->name);
    if (header_->gpu_device_id > static_cast<std::uint64_t>(std::numeric_limits<int>::max()))
        return failf(DRAGON_INVALID_ARGUMENT, "{}: pool '{}' records GPU device {}, which is not a device number", op,
                     identity_->name, header_->gpu_device_id);
    std::lock_guard guard(gpu_registration_mutex_);
    const auto me = static_cast<std::uint32_t>(::getpid());
    const bool registered = gpu_registered_pid_ == me;
    if (on == registered)
        return failf(DRAGON_INVALID_OPERATION, "{}: pool '{}' is {} registered with the GPU in this process", op,
                     identity_->name, on ? "already" : "not");
    const std::string who = fmt::format("{}: pool '{}'", op, identity_->name);
    if (on) {
        // Pinning gives every heap page memory: /dev/shm must hold the whole heap.
        if (dragonError_t rc = cuda_host_register(gpu_device(), heap_base_, header_->heap_bytes, who)) return rc;
    } else {
        if (dragonError_t rc = cuda_host_unregister(gpu_device(), heap_base_, who)) return rc;
    }
    gpu_registered_pid_ = on ? me : 0;
    return DRAGON_SUCCESS;
}

}  // namespace dragonmem::detail
