// Opening a file a user named. Every reader goes through here, so that a FIFO, a device or a
// folder given where a file is expected is refused at once instead of blocking or being read
// forever (/dev/zero, /dev/urandom), and so that a size cap is checked before anything is read.
#pragma once
#include <cstdint>
#include <string>

namespace shears {

// A read-only descriptor on a regular file, closed on scope exit.
class InputFile {
 public:
  // Opens `path` without blocking (O_NONBLOCK: opening a FIFO never waits for a writer), then
  // checks the open descriptor itself (fstat, so nothing can be swapped in between): it must be a
  // regular file of at most `max_bytes`. `what` names the file's role in errors ("checkpoint").
  // Throws shears::Error "<path>: <what>: expected a regular file ..., got a FIFO" and the like.
  InputFile(const std::string& path, const std::string& what, int64_t max_bytes = INT64_MAX);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  int fd() const { return fd_; }
  int64_t size() const { return size_; }  // when opened
  const std::string& path() const { return path_; }
  // Hands the descriptor over (to zlib's gzdopen, say); the caller closes it.
  int release();

  // The whole file; a file that shrinks or grows while it is read is refused.
  std::string read_all();

 private:
  std::string path_, what_;
  int fd_ = -1;
  int64_t size_ = 0;
};

// The whole of a regular file of at most `max_bytes` (InputFile's checks).
std::string read_input_file(const std::string& path, const std::string& what, int64_t max_bytes = INT64_MAX);

// "a FIFO", "a directory", "a character device", ...: what a file's mode says it is.
std::string file_kind(unsigned mode);

}  // namespace shears
