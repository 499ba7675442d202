#include "data/byte_reader.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>

#include "core/error.hpp"

namespace shears::data {

namespace {
gzFile as_gz(void* file) { return static_cast<gzFile>(file); }
}  // namespace

ByteReader::ByteReader(std::string path, std::string format) : path_(std::move(path)), format_(std::move(format)) {
  std::error_code ec;
  SHEARS_CHECK(std::filesystem::is_regular_file(path_, ec), format_, path_, ": no such file");
  file_size_ = static_cast<int64_t>(std::filesystem::file_size(path_, ec));
  SHEARS_CHECK(!ec, format_, path_, ": cannot read its size (", ec.message(), ")");
  file_ = gzopen(path_.c_str(), "rb");
  SHEARS_CHECK(file_ != nullptr, format_, path_, ": cannot open (", std::strerror(errno), ")");
  gzbuffer(as_gz(file_), 1 << 17);
  if (gzdirect(as_gz(file_))) raw_size_ = file_size_;
}

ByteReader::~ByteReader() { gzclose(as_gz(file_)); }

int64_t ByteReader::read(uint8_t* dst, int64_t n) {
  int64_t got = 0;
  while (got < n) {
    unsigned want = static_cast<unsigned>(std::min<int64_t>(n - got, INT_MAX));
    int r = gzread(as_gz(file_), dst + got, want);
    int err = Z_OK;
    const char* message = gzerror(as_gz(file_), &err);
    // zlib reports a gzip stream cut short as Z_BUF_ERROR alongside a short (even zero) read.
    SHEARS_CHECK(r >= 0 && (err == Z_OK || err == Z_STREAM_END), format_, path_, ": corrupt or truncated gzip data (",
                 message, ") after ", offset_ + std::max(r, 0), " decompressed bytes");
    got += r;
    offset_ += r;
    if (static_cast<unsigned>(r) < want) break;
  }
  return got;
}

int64_t ByteReader::append(std::vector<uint8_t>& out, int64_t n) {
  constexpr int64_t kChunk = int64_t{1} << 24;
  if (raw_size_ >= 0) n = std::min(n, std::max<int64_t>(raw_size_ - offset_, 0));
  const size_t start = out.size();
  int64_t got = 0;
  while (got < n) {
    // Grow geometrically, but only past data that has actually arrived.
    int64_t step = std::min(n - got, std::max<int64_t>(kChunk, static_cast<int64_t>(out.size())));
    out.resize(start + got + step);
    int64_t r = read(out.data() + start + got, step);
    got += r;
    if (r < step) break;
  }
  out.resize(start + got);
  return got;
}

bool ByteReader::at_end() {
  uint8_t byte;
  if (read(&byte, 1) == 0) return true;
  SHEARS_CHECK(gzungetc(byte, as_gz(file_)) != -1, format_, path_, ": cannot push back a byte");
  --offset_;
  return false;
}

}  // namespace shears::data
