// Storage for tensors: 64-byte-aligned blocks, with large freed blocks kept for reuse.
// A training step frees and reallocates the same activation sizes every iteration; handing
// such blocks back to the kernel (glibc unmaps anything above 32 MiB) and faulting fresh
// zeroed pages in again cost more than the kernels themselves (batch-norm forward at 64×32×32,
// batch 128: 22 ms with plain allocation, 5 ms with reuse; `make bench`).
#pragma once
#include <cstddef>
#include <string>

namespace shears {

void* allocate_block(size_t bytes);  // throws shears::Error past an AllocationLimit
void free_block(void* p, size_t bytes);
size_t cached_block_bytes();      // held for reuse now
size_t live_block_bytes();        // tensor storage in use now (not counting the cache)
size_t peak_live_block_bytes();   // the most in use at once since start-up
void release_cached_blocks();  // returns every cached block to the system

// The machine's physical memory (sysconf), the default cap of the file readers.
size_t physical_memory_bytes();

// While one lives, the tensor storage allocated on its thread counts against `bytes` (frees do
// not give any back), and the allocation that would pass it throws shears::Error(message) before
// anything is allocated. For building objects whose sizes come from a file: a checkpoint whose
// metadata claims 10^9 classes is refused instead of allocating gigabytes. Limits nest; each
// counts what is allocated under it.
class AllocationLimit {
 public:
  AllocationLimit(size_t bytes, std::string message);
  ~AllocationLimit();
  AllocationLimit(const AllocationLimit&) = delete;
  AllocationLimit& operator=(const AllocationLimit&) = delete;
  void charge(size_t bytes);  // throws when the total would pass the limit (or an outer one)

 private:
  size_t limit_, used_ = 0;
  std::string message_;
  AllocationLimit* outer_;
};

}  // namespace shears
