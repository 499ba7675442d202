#include "core/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <new>
#include <system_error>
#include <utility>

#include "core/error.hpp"

namespace shears {

namespace {

std::string errno_text() { return std::generic_category().message(errno); }

}  // namespace

std::string file_kind(unsigned mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

InputFile::InputFile(const std::string& path, const std::string& what, int64_t max_bytes) : path_(path), what_(what) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  SHEARS_CHECK(fd_ >= 0, path, what, ": expected a readable file, got ", errno_text());
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    const std::string reason = errno_text();
    ::close(fd_);
    throw Error(path + ": " + what + ": expected a readable file, got " + reason);
  }
  if (!S_ISREG(st.st_mode) || st.st_size > max_bytes) {
    ::close(fd_);
    SHEARS_CHECK(S_ISREG(st.st_mode), path, what, ": expected a regular file, got ", file_kind(st.st_mode));
    throw Error(
        detail::concat(path, ": ", what, ": expected at most ", max_bytes, " bytes, got ", st.st_size, " bytes"));
  }
  size_ = st.st_size;
  // Reads of a regular file never block anyway; clear the flag so zlib and others see a plain fd.
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

int InputFile::release() { return std::exchange(fd_, -1); }

std::string InputFile::read_all() {
  std::string bytes;
  try {
    bytes.resize(static_cast<std::size_t>(size_));
  } catch (const std::bad_alloc&) {
    throw Error(detail::concat(path_, ": ", what_, ": out of memory holding its ", size_, " bytes"));
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    SHEARS_CHECK(n >= 0, path_, what_, ": expected a readable file, got ", errno_text());
    SHEARS_CHECK(n > 0, path_, what_, ": expected ", bytes.size(), " bytes (its size when opened), got ", done,
                 ": it shrank while being read");
    done += static_cast<std::size_t>(n);
  }
  char extra;
  ssize_t n;
  while ((n = ::read(fd_, &extra, 1)) < 0 && errno == EINTR) {
  }
  SHEARS_CHECK(n == 0, path_, what_, ": expected ", bytes.size(),
               " bytes (its size when opened): it grew while being read");
  return bytes;
}

std::string read_input_file(const std::string& path, const std::string& what, int64_t max_bytes) {
  return InputFile(path, what, max_bytes).read_all();
}

}  // namespace shears
