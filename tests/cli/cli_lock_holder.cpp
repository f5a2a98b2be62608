// Holds a pool's lock and stops, for the CLI tests of a stuck lock holder: maps
// /dev/shm/dragonmem.POOL itself, takes the lock with the library's own lock code
// (lib/pool/robust_lock.hpp), prints "holding", stops itself (SIGSTOP). A live, stopped
// holder is never taken over, so every command that needs the lock must give up in
// time. Once continued (SIGCONT) it releases the lock, prints "released" and exits 0.
//   cli_lock_holder POOL
#include "pool/pool_layout.hpp"
#include "pool/robust_lock.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fputs("usage: cli_lock_holder POOL\n", stderr);
        return 2;
    }
    const std::string path = std::string("/dev/shm/dragonmem.") + argv[1];
    int fd = ::open(path.c_str(), O_RDWR);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 ||
        static_cast<std::size_t>(st.st_size) < sizeof(dragonmem::detail::PoolHeader)) {
        std::perror(path.c_str());
        return 1;
    }
    void* base = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (base == MAP_FAILED) {
        std::perror("mmap");
        return 1;
    }
    auto* header = static_cast<dragonmem::detail::PoolHeader*>(base);
    dragonmem::detail::owner_lock_acquire(header->lock);
    std::puts("holding");
    std::fflush(stdout);
    std::raise(SIGSTOP);
    dragonmem::detail::owner_lock_release(header->lock);
    std::puts("released");
    return 0;
}
