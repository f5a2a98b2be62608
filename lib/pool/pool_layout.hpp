// The layout of a pool's single POSIX shm object, shared by every process that maps it:
//
//   page 0       PoolHeader
//   page 1       backing directory: which pages of the backing map are backed
//   page 2       the processes attached, and the creating process (process_table.hpp)
//   page 3       id blocks: one cache line per thread-cache entry (IdBlock)
//   pages 4-5    heap state: the heap's free-list heads and bitmaps (HeapState)
//   pages 6...   backing map: which heap pages the library has backed (pool_backing.hpp),
//                one bit per page (1/32768 of the heap, page-rounded; touched as used)
//   then         manifest records (page-rounded)
//   then         free map: one bit per heap granule (64 B, or the minimum block if larger),
//                set at the first and last granule of every free block (tlsf_heap.hpp
//                says why; 1/512 of the heap, page-rounded; touched as used)
//   then         heap (2^k bytes, page aligned)
//
// Everything in it is position-independent: offsets from the heap start, never pointers
// (the mapping lands at a different address in each process). Sizes and offsets the
// crash reasoning depends on are pinned with static_assert below.
//
// The object is sparse: /dev/shm (tmpfs) gives a page its memory when it is first
// touched, and a touch it cannot back is a SIGBUS. So the library touches only pages it
// has backed first (pool_backing.hpp): the header, directory, process table, id blocks and
// heap state at creation; map pages, heap pages and the free-map page covering them
// before it writes a free-block header or footer in them; manifest records as the used
// extent grows.
#pragma once

#include "os/cuda_device.hpp"
#include "pool/robust_lock.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace dragonmem::detail {

inline constexpr std::uint64_t k_pool_magic = 0x4D454D4E47415244ULL;  // "DRAGNMEM" little-endian
// 2: thread-cache entries, atomic id counter. 3: (development branches only, never
// released: the free map on one, 64 B records, backing map and creator on another.)
// 4: all of them: 64 B manifest records (and their size recorded), the backing map, the
// creator record, the reserved process-table page, the free map (its place recorded),
// and the lock's waiters flag as a bit of its owner word (robust_lock.hpp: a version-2
// process would read that bit as part of a thread id, call the owner dead and rob it).
// 5: per-thread id blocks (page 3, IdBlock); the backing map moves to page 4; wake_seq on
// a line of its own. A version-4 process would take ids from the counter alone and issue
// ids a version-5 thread holds.
// 6: the NUMA node, a hugepage pool's heap file and the process-local owner (PoolHeader's
// last fields; a version-5 process would map a hugepage pool's heap from its shm object).
// 7: the statistics counts (IdBlock allocs/frees, PoolHeader locked_allocs/frees), and the attached-process table on page 2 (process_table.hpp), backed at creation; a
// version-6 process would neither register nor deregister there, and its attaches would
// be missing from `dragonmem ls` (a pool it uses could be called orphaned).
// 8: the two-level segregated-fit heap (tlsf_heap.hpp): its state moves from the header
// to pages 4-5, the backing map to page 6, the free map gets one bit per 64 B granule at
// free blocks' first and last granules, and free blocks carry footers; and a manifest
// record carries its block's size class (ManifestRecord::size_class, a hint for thread
// caches, in what were reserved bytes). A version-7 process would read the heap as buddy
// lists and corrupt it.
// 9: GPU pools (device_region.hpp): the device (its UUID), the CUDA IPC handle and the
// device id asked for (PoolHeader's placement fields). A version-8 process would take a GPU pool's
// host-side shadow heap for its data.
// 10: the pool's secret (PoolHeader::secret), which descriptors carry and the remote
// agent checks (lib/remote/); a version-9 process would serialize descriptors without it.
inline constexpr std::uint32_t k_layout_version = 10;
inline constexpr std::uint32_t k_pool_ready = 0x52454459;  // "READY": creation committed
inline constexpr std::size_t k_page_bytes = 4096;
inline constexpr std::uint64_t k_nil = ~0ULL;              // "no block" in a free list link
inline constexpr std::size_t k_name_capacity = 32;         // base names are 1-29 chars
inline constexpr std::size_t k_max_name_len = 29;
inline constexpr std::uint32_t k_min_block_order_floor = 5;  // 32 B: Dragon's smallest minimum block
inline constexpr std::uint32_t k_granule_order_floor = 6;    // 64 B: every block is whole granules
inline constexpr std::uint64_t k_default_max_allocations_cap = 1048576;
inline constexpr std::uint32_t k_cache_entries = 64;        // threads that may cache blocks at once
inline constexpr std::uint64_t k_backing_dir_offset = 1 * k_page_bytes;
inline constexpr std::uint64_t k_procs_offset = 2 * k_page_bytes;   // attached processes (process_table.hpp)
inline constexpr std::uint64_t k_procs_bytes = k_page_bytes;
inline constexpr std::uint64_t k_id_blocks_offset = 3 * k_page_bytes;
inline constexpr std::uint64_t k_heap_state_offset = 4 * k_page_bytes;
inline constexpr std::uint64_t k_heap_state_bytes = 2 * k_page_bytes;
inline constexpr std::uint64_t k_backing_map_offset = 6 * k_page_bytes;
inline constexpr std::uint32_t k_bits_per_page = 8 * k_page_bytes;  // 32768
inline constexpr std::size_t k_heap_file_capacity = 192;           // a hugepage pool's heap file path
inline constexpr std::size_t k_secret_bytes = 16;                  // the pool's capability secret

// The heap's free lists (tlsf_heap.hpp: two-level segregated fit). Block sizes are whole
// granules; list i holds free blocks of at least lower_bound(i) granules and less than
// lower_bound(i + 1): lists 0-31 one granule apart, then 16 lists per power of two.
// Free blocks carry their links in-band, so this is fixed-size whatever the pool size;
// the one per-granule structure is the free map (outside this struct). Pages 4-5.
inline constexpr std::uint32_t k_heap_sl_log2 = 4;                  // 16 lists per power of two
inline constexpr std::uint32_t k_heap_sl_count = 1u << k_heap_sl_log2;
inline constexpr std::uint32_t k_heap_fl_count = 38;                // granule counts below 2^41
inline constexpr std::uint32_t k_heap_lists = k_heap_fl_count * k_heap_sl_count;  // 608
struct HeapState {
    std::uint64_t free_head[k_heap_lists];      // doubly-linked free blocks, by size class
    std::uint32_t sl_mask[k_heap_fl_count];     // bit s of [f]: list f * 16 + s non-empty
    std::uint64_t fl_mask;                      // bit f: sl_mask[f] != 0
    std::uint64_t free_bytes;                   // bytes in listed free blocks
    std::uint64_t free_blocks;                  // listed free blocks
    std::uint64_t tag_secret;                   // keys in-band header tags; renewed by repair
};

// A thread that caches blocks of this pool (thread_cache.hpp). `owner` is the thread's
// owner word (robust_lock.hpp), 0 when the entry is unclaimed; `pid` its process, so a
// process that unmaps the pool can hand back its threads' caches.
struct CacheEntry {
    std::atomic<std::uint64_t> owner;
    std::atomic<std::uint32_t> pid;
    std::uint32_t reserved;
};

// The block of id counters the thread owning cache entry e hands out without touching
// the pool's counter (manifest.hpp, "Ids"): counters [next, end) are reserved for that
// thread and not issued yet. Only the entry's owner thread writes it (next once per
// allocation, end once per block); attach reads it to refuse ids not issued yet. One
// cache line per entry, on a page of its own: no other thread or process writes the
// line an allocation writes.
// `allocs` and `frees` count the entry's lock-free allocations and frees (thread_cache.hpp),
// for statistics: stored by the owner thread on the line it writes anyway, never reset,
// and carried on by the entry's next owner, so the pool's totals are the header's locked
// counts plus the sum over entries (docs/design.md, "Counting without a shared line").
struct alignas(64) IdBlock {
    std::atomic<std::uint64_t> next;
    std::atomic<std::uint64_t> end;
    std::atomic<std::uint64_t> allocs;
    std::atomic<std::uint64_t> frees;
    std::uint64_t reserved[4];
};

// Who is formatting (or formatted) the pool. The creator writes it with one pwrite right
// after sizing the object, before anything else: an attacher that finds the pool not
// ready yet waits while this thread lives and refuses at once if it died
// (pool_creator.hpp). `owner` is the creating thread's owner word (robust_lock.hpp),
// `pid_ns` the inode of the creator's /proc/self/ns/pid: thread ids only mean something
// inside one PID namespace, so processes of another are refused (0: unknown).
struct CreatorRecord {
    std::uint64_t owner;            // (start stamp << 32) | tid of the creating thread
    std::uint64_t pid_ns;           // inode of /proc/<creator>/ns/pid, 0 if unknown
    std::uint64_t created_ns;       // CLOCK_REALTIME at creation
    std::uint32_t pid;              // the creating process
    std::uint32_t uid;              // its effective uid
};

// A page of bits (the backing directory, and each page of the backing map): a bit is set
// once what it stands for has memory (pool_backing.hpp), and never cleared.
struct BitPage {
    std::atomic<std::uint64_t> words[k_bits_per_page / 64];
};

struct PoolHeader {
    // ---- identity: written once by the creator before `ready`, read-only afterwards.
    std::atomic<std::uint64_t> magic;           // k_pool_magic, stored last at creation
    std::uint32_t layout_version;
    std::uint32_t header_bytes;                 // sizeof(PoolHeader)
    std::uint64_t total_bytes;                  // size of the shm object
    std::uint64_t manifest_offset;              // from the object start
    std::uint64_t manifest_capacity;            // max_allocations
    std::uint64_t heap_offset;                  // from the object start, page aligned
    std::uint64_t heap_bytes;                   // 1 << max_block_order
    std::uint32_t min_block_order;
    std::uint32_t max_block_order;
    std::uint32_t id_slot_bits;                 // an id's low bits are its manifest slot
    std::uint32_t mode;
    std::uint64_t m_uid;
    std::uint64_t hostid;
    std::uint64_t rt_uid;
    std::uint64_t nonce;                        // random per pool instance
    std::uint32_t lock_type;
    std::uint32_t mem_type;
    std::uint32_t growth_type;
    std::uint32_t reserved0;
    std::uint64_t segment_size;
    std::uint64_t max_size;
    std::uint64_t heap_alignment;               // mappings place the heap at this alignment
    char name[k_name_capacity];
    std::atomic<std::uint32_t> ready;           // k_pool_ready once creation committed
    std::uint32_t record_bytes;                 // sizeof(ManifestRecord)
    std::uint64_t backing_dir_offset;           // k_backing_dir_offset
    std::uint64_t procs_offset;                 // k_procs_offset: the process table
    std::uint64_t procs_bytes;                  // k_procs_bytes
    std::uint64_t backing_map_offset;           // k_backing_map_offset
    std::uint64_t backing_map_bytes;            // backing_map_bytes_for(max_block_order)
    std::uint32_t heap_chunk_shift;             // bytes per map bit, log2 (a page up to 4 TiB heaps)
    std::uint32_t fully_backed;                 // 1: the whole object was backed at creation (reserve)
    std::uint64_t free_map_offset;              // manifest end, page-rounded; the free map ends at heap_offset
    std::uint64_t free_map_bytes;               // TlsfHeap::free_map_bytes(heap_bytes, min_block_order)
    CreatorRecord creator;                      // written first of all (see CreatorRecord)
    // Records [0, manifest_backed) are backed; grows under `lock`, read without it (a
    // record past it was never used, so a lookup stops there without touching it).
    std::atomic<std::uint64_t> manifest_backed;

    // ---- synchronisation
    alignas(64) OwnerLock lock;                 // robust_lock.hpp: guards the mutable state below
    // Read by every lock-free alloc and free, written almost never: apart from wake_seq,
    // which every locked free bumps (one process's flushes must not slow every other
    // process's fast path).
    alignas(64) std::atomic<std::uint32_t> destroyed;  // set by pool_destroy, never cleared
    std::atomic<std::uint32_t> has_waiters;     // a sleeper exists: frees must FUTEX_WAKE
    alignas(64) std::atomic<std::uint32_t> wake_seq;   // futex word: bumped by every free
    std::uint32_t reserved2;

    // ---- ids: the highest id counter reserved so far (manifest.hpp, "Ids"). Only moves
    // forward, by CAS, with or without the lock: one counter per locked allocation of a
    // thread without a cache entry, a block of k_id_block_counters at a time for a thread
    // with one. On a line of its own.
    alignas(64) std::atomic<std::uint64_t> id_counter;  // ids are (counter << id_slot_bits) | slot

    // ---- thread-cache entries (thread_cache.hpp): claimed and released under `lock`;
    // an entry's index marks the manifest records its thread holds cached.
    alignas(64) CacheEntry cache_entries[k_cache_entries];

    // ---- mutable state, guarded by `lock`
    alignas(64) std::uint64_t live_count;       // records in use: live allocations + cached blocks
    std::uint64_t max_live_count;
    std::uint64_t slot_free_head;               // 1 + index of a free slot below slot_hwm, 0: none
    std::uint64_t slot_hwm;                     // slots at or above it were never used
    std::uint64_t recoveries;                   // repairs after a holder died
    std::uint64_t cache_records_possible;       // 0: no manifest record is a cache word (scans skipped)

    // ---- placement: written once by the creator before `ready`.
    std::int32_t numa_node;                     // the node the pages are bound to (mbind); -1: none
    std::uint32_t reserved3;
    // DRAGON_MEMORY_TYPE_HUGEPAGE pools (os/hugepage_file.hpp): the heap is not in this
    // object but in a hugetlbfs file, mapped right after it; the object holds
    // [0, heap_offset) and total_bytes counts the heap as for any pool. Empty path: shm.
    std::uint64_t heap_file_dev;
    std::uint64_t heap_file_ino;
    char heap_file[k_heap_file_capacity];       // NUL-terminated
    // DRAGON_MEMORY_TYPE_GPU pools (device_region.hpp): the heap's bytes are in a region of
    // the GPU `gpu_uuid` (`gpu_device_id` is its ordinal in the creating process only: each
    // process numbers the devices its CUDA_VISIBLE_DEVICES shows), which other processes
    // open through `ipc_handle`; this object's heap range is a sparse host-side shadow
    // holding the free blocks' headers and footers only. Any other pool records the
    // device id asked for (Dragon's attribute; register_with_gpu uses it) and no handle.
    std::uint64_t gpu_device_id;
    std::uint32_t ipc_handle_bytes;             // k_ipc_handle_bytes for a GPU pool, else 0
    std::uint32_t reserved4;
    unsigned char ipc_handle[k_ipc_handle_bytes];
    unsigned char gpu_uuid[k_gpu_uuid_bytes];   // a GPU pool's device (CUuuid); zeros otherwise

    // ---- process-local pools (lib/descr/process_local.cpp). `local_owner` is the owning
    // process's word, (start stamp << 32) | pid (robust_lock.hpp current_process_word), 0
    // when the pool is not process-local; changed only by one CAS, so a process killed at
    // any instant leaves either the old owner or the new one. `local_owner_pid_ns` is
    // stored by the new owner after its CAS (0: not yet, judged from the reader's namespace).
    alignas(64) std::atomic<std::uint64_t> local_owner;
    std::atomic<std::uint64_t> local_owner_pid_ns;

    // ---- statistics, guarded by `lock`: allocations and frees made on the locked path
    // (the lock-free ones are counted in the IdBlocks). Plain counts, bumped after the
    // operation's commit point: a holder killed in between misses one, nothing else.
    alignas(64) std::uint64_t locked_allocs;
    std::uint64_t locked_frees;

    // ---- the capability: written once by the creator before `ready` (getrandom), never
    // changed. Every descriptor of the pool carries it (descriptor_codec.hpp) and the
    // remote agent serves only requests that present it (lib/remote/agent.cpp). Anyone
    // who can map the pool can read it: it protects the pool from those who cannot.
    // On the statistics' line (read only at attach): the header has no line to spare.
    std::uint8_t secret[k_secret_bytes];
};

// A manifest record: one per allocated block. `id` is the commit point and says what the
// record is (manifest.hpp): 0 free; a live allocation's id; or a block parked in a
// thread's cache (cached, or claimed while that thread turns it into an allocation).
// A live id is stored (release) only after every other field is written, so a process
// killed at any instant leaves a complete record, a cached block or a free slot. The
// fields are atomics because a cache's owner writes them without the pool lock.
// One cache line per record: threads in different processes cache neighbouring slots
// and CAS their ids on every alloc and free; sharing a line halved two-process
// throughput (measured). The manifest is reserved, not touched, until used.
struct alignas(64) ManifestRecord {
    std::atomic<std::uint64_t> id;
    std::atomic<std::uint64_t> offset;           // block offset in the heap; next-free-slot link when free
    std::atomic<std::uint64_t> requested_bytes;  // a cached block: its block size
    std::atomic<std::uint64_t> type;
    // The size class of the block (tlsf_heap.hpp), written with the other fields before
    // the id: a hint for a thread cache's free, which finds the block's magazine without
    // computing the class from the size (a chain of a dozen dependent instructions ahead
    // of the free's CAS). Never trusted for the heap: take-back, repair and check derive
    // the block from `requested_bytes`; a wrong hint files a block in the wrong
    // magazine, where the allocation that pops it finds its size out of the class and
    // drops it (it stays cached until a take-back).
    std::atomic<std::uint32_t> size_class;
    std::uint32_t reserved32;
    std::uint64_t reserved[3];
};

// The in-band header of a free block (its first 32 bytes) and its footer (the last 16
// bytes of its last granule; in a one-granule block both fit: 32 + 16 <= 64). `tag` is a
// keyed hash of (offset, bytes, kind, secret): user data cannot pass for one by accident,
// and a stale one left inside an allocated block never matches, because tags are cleared
// when blocks leave the lists and the secret is renewed on repair. The footer names the
// block's start, so a block being freed finds a free block ending right before it.
struct FreeBlockHeader {
    std::uint64_t tag;
    std::uint64_t next;
    std::uint64_t prev;
    std::uint64_t bytes;  // the whole block, a multiple of the granule
};
struct FreeBlockFooter {
    std::uint64_t tag;
    std::uint64_t start;  // offset of the block's header
};

inline constexpr std::uint32_t k_block_free = 0x46524545;    // "FREE": a header
inline constexpr std::uint32_t k_block_footer = 0x464F4F54;  // "FOOT": a footer

// The heap state of the pool whose object is mapped at `base`.
inline HeapState& heap_state_at(void* base) noexcept {
    return *reinterpret_cast<HeapState*>(static_cast<std::uint8_t*>(base) + k_heap_state_offset);
}

static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "ids must be stored in one instruction");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free, "futex words must be plain 32-bit");
static_assert(sizeof(std::atomic<std::uint32_t>) == 4, "futex word must be 4 bytes");
static_assert(sizeof(ManifestRecord) == 64, "manifest records are one cache line");
static_assert(sizeof(FreeBlockHeader) == 32 && sizeof(FreeBlockFooter) == 16);
static_assert(sizeof(FreeBlockHeader) + sizeof(FreeBlockFooter) <= (1u << k_granule_order_floor),
              "a one-granule free block holds its header and its footer");
static_assert(sizeof(HeapState) <= k_heap_state_bytes, "the heap state fits its pages");
static_assert(sizeof(PoolHeader) <= k_page_bytes, "the header fits one page");
static_assert(offsetof(PoolHeader, magic) == 0, "magic first, so a zeroed object is recognised");
static_assert(offsetof(PoolHeader, lock) % 64 == 0);
static_assert(sizeof(CacheEntry) == 16);
static_assert(sizeof(BitPage) == k_page_bytes, "a bit page is one page");
static_assert(sizeof(IdBlock) == 64 && k_cache_entries * sizeof(IdBlock) == k_page_bytes,
              "one cache line per entry's id block, one page in all");
static_assert(sizeof(CreatorRecord) == 32);
static_assert(k_secret_bytes == 16, "128 random bits: a secret cannot be guessed over the network");
static_assert(offsetof(PoolHeader, creator) % 8 == 0, "the creator's owner word is read as one aligned word");
static_assert(k_procs_offset == k_backing_dir_offset + k_page_bytes &&
              k_id_blocks_offset == k_procs_offset + k_procs_bytes &&
              k_heap_state_offset == k_id_blocks_offset + k_page_bytes &&
              k_backing_map_offset == k_heap_state_offset + k_heap_state_bytes, "the fixed pages are contiguous");

}  // namespace dragonmem::detail
