// Writes the seed corpus of the fuzz targets (committed under tests/fuzz/corpus/):
//   decode_pool/    pool descriptors (several names, sizes, slot widths)
//   decode_memory/  allocation descriptors (whole, views, zero-byte)
//   attach_header/  header pages of a real pool: fresh, busy, lock held by a dead owner,
//                   destroyed, a scribbled heap geometry
// Descriptors get a fixed fake hostid so that fuzzing them never maps a pool of the
// machine the corpus was made on. Run: fuzz_make_corpus OUTDIR (the three folders are
// created under it).
#include <dragonmem/dragonmem.hpp>

#include "descriptor_seal.hpp"

#include "pool/pool_layout.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

using namespace dragonmem::detail;

namespace {

// Throws on failure, so that the pool being read is destroyed on the way out.
void write(const std::string& path, const std::vector<std::uint8_t>& bytes) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) throw std::runtime_error(path + ": " + std::strerror(errno));
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
}

// Sets the hostid (offset 16) to a fixed value and re-seals (length and CRC fields).
std::vector<std::uint8_t> foreign(std::vector<std::uint8_t> d) {
    const std::uint64_t fake_host = 0x0123456789ABCDEFULL;
    for (int i = 0; i < 8; ++i) d[16 + i] = static_cast<std::uint8_t>(fake_host >> (8 * i));
    dmtest::reseal(d);
    return d;
}

std::vector<std::uint8_t> header_page(const std::string& name) {
    std::string path = "/dev/shm/dragonmem." + name;
    int fd = ::open(path.c_str(), O_RDONLY);
    std::vector<std::uint8_t> page(k_page_bytes);
    const bool read = fd >= 0 && ::pread(fd, page.data(), page.size(), 0) == static_cast<ssize_t>(page.size());
    if (fd >= 0) ::close(fd);
    if (!read) throw std::runtime_error(path + ": cannot read its header page");
    return page;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: fuzz_make_corpus OUTDIR\n");
        return 2;
    }
    std::string out = argv[1];
    ::mkdir(out.c_str(), 0755);  // an existing OUTDIR is fine; a missing parent fails at the first write
    for (const char* sub : {"/decode_pool", "/decode_memory", "/attach_header"}) ::mkdir((out + sub).c_str(), 0755);
    int n = 0;
    const std::string prefix = "dmcorpus" + std::to_string(::getpid());
    struct Shape {
        std::string suffix;
        std::size_t bytes;
        std::size_t max_allocations;
    };
    try {
        for (const Shape& shape :
             {Shape{"a", 64 * 1024, 0}, Shape{"_long.name-x", 1 << 20, 5}, Shape{"b", 4096, 1 << 20}}) {
            std::string name = (prefix + shape.suffix).substr(0, 29);
            dragonmem::PoolOptions options;
            options.max_allocations = shape.max_allocations;
            dragonmem::Pool pool = dragonmem::Pool::create(name, shape.bytes, 42 + n, options);
            // A failed write leaves nothing in /dev/shm: the pool goes with the error.
            struct DestroyUnlessDone {
                dragonmem::Pool& pool;
                bool done = false;
                ~DestroyUnlessDone() {
                    if (!done) try {
                            pool.destroy();
                        } catch (const dragonmem::Error&) {
                        }
                }
            } cleanup{pool};
            write(out + "/decode_pool/pool_" + std::to_string(n), foreign(pool.serialize()));
            dragonmem::Memory whole = pool.alloc(100, 3);
            write(out + "/decode_memory/mem_" + std::to_string(n) + "_whole", foreign(whole.serialize()));
            dragonmem::Memory view = whole.clone(10, 20);
            write(out + "/decode_memory/mem_" + std::to_string(n) + "_view", foreign(view.serialize()));
            dragonmem::Memory zero = pool.alloc(0);
            write(out + "/decode_memory/mem_" + std::to_string(n) + "_zero", foreign(zero.serialize()));
            if (n == 0) {
                write(out + "/attach_header/fresh_with_allocations", header_page(name));
                dragonmem::Memory more = pool.alloc(3000, 7);
                more.free();  // a deferred block
                std::vector<std::uint8_t> busy = header_page(name);
                write(out + "/attach_header/busy", busy);
                auto* h = reinterpret_cast<PoolHeader*>(busy.data());
                std::vector<std::uint8_t> dead_owner = busy;
                reinterpret_cast<PoolHeader*>(dead_owner.data())->lock.word.store((std::uint64_t{1} << 32) | 4194300u);
                write(out + "/attach_header/lock_held_by_dead_owner", dead_owner);
                std::vector<std::uint8_t> destroyed = busy;
                reinterpret_cast<PoolHeader*>(destroyed.data())->destroyed.store(1);
                write(out + "/attach_header/destroyed", destroyed);
                // The heap's free lists live on pages 4-5 now, out of the fuzzer's reach (it
                // writes the header page); what the header says of the heap's geometry is in it.
                std::vector<std::uint8_t> scribbled = busy;
                auto* hs = reinterpret_cast<PoolHeader*>(scribbled.data());
                hs->free_map_bytes = 1;
                hs->heap_chunk_shift = 40;
                write(out + "/attach_header/scribbled_heap_geometry", scribbled);
                (void)h;
            }
            whole.free();
            pool.destroy();
            cleanup.done = true;
            ++n;
        }
    } catch (const std::exception& e) {  // dragonmem::Error included
        std::fprintf(stderr, "fuzz_make_corpus: %s\n", e.what());
        return 1;
    }
    std::printf("corpus written under %s\n", out.c_str());
    return 0;
}
