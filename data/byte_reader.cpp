#include "data/byte_reader.hpp"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <new>

#include "core/error.hpp"
#include "core/file.hpp"

namespace shears::data {

struct ByteReader::Stream {
  static constexpr size_t kBuffer = size_t{1} << 17;
  Stream(const std::string& path, const std::string& format) : file(path, format + " file") {}
  ~Stream() {
    if (inflating) inflateEnd(&z);
  }
  InputFile file;
  bool gzip = false, inflating = false, member_done = false, eof = false;
  z_stream z{};
  std::vector<uint8_t> in = std::vector<uint8_t>(kBuffer), out = std::vector<uint8_t>(kBuffer);
  size_t in_begin = 0, in_end = 0, out_begin = 0, out_end = 0;
  int64_t file_offset = 0;  // compressed bytes consumed from the file

  size_t in_left() const { return in_end - in_begin; }
  // Tops the input buffer up (keeping what is left); false when the file has no more bytes.
  bool read_input() {
    if (eof) return false;
    std::memmove(in.data(), in.data() + in_begin, in_left());
    in_end = in_left(), in_begin = 0;
    ssize_t n;
    while ((n = ::read(file.fd(), in.data() + in_end, in.size() - in_end)) < 0 && errno == EINTR) {
    }
    SHEARS_CHECK(n >= 0, file.path(), "cannot read (", std::strerror(errno), ")");
    eof = n == 0;
    in_end += static_cast<size_t>(n);
    return n > 0;
  }
};

namespace {
// Named before opening, in the words the dataset readers' errors have always used.
std::string existing(std::string path, const std::string& format) {
  std::error_code ec;
  SHEARS_CHECK(std::filesystem::exists(path, ec), format, path, ": no such file");
  return path;
}
}  // namespace

ByteReader::ByteReader(std::string path, std::string format)
    : path_(existing(std::move(path), format)),
      format_(std::move(format)),
      stream_(std::make_unique<Stream>(path_, format_)) {
  Stream& s = *stream_;
  while (s.in_left() < 2 && s.read_input()) {
  }
  s.gzip = s.in_left() >= 2 && s.in[0] == 0x1f && s.in[1] == 0x8b;
  if (s.gzip) {
    SHEARS_CHECK(inflateInit2(&s.z, 15 + 16) == Z_OK, format_, path_, ": cannot start inflating (out of memory)");
    s.inflating = true;
  }
}

ByteReader::~ByteReader() = default;

bool ByteReader::gzipped() const { return stream_->gzip; }
int64_t ByteReader::file_size() const { return stream_->file.size(); }

bool ByteReader::fill() {
  Stream& s = *stream_;
  s.out_begin = s.out_end = 0;
  if (!s.gzip) {  // raw: the input buffer is the data
    if (s.in_left() == 0 && !s.read_input()) return false;
    std::swap(s.in, s.out);
    s.out_begin = s.in_begin, s.out_end = s.in_end, s.in_begin = s.in_end = 0;
    return true;
  }
  while (s.out_end == 0) {
    if (s.in_left() == 0 && !s.read_input()) {
      SHEARS_CHECK(s.member_done, format_, path_, ": corrupt or truncated gzip data (the stream ends inside a member) ",
                   "after ", offset_, " decompressed bytes");
      return false;
    }
    if (s.member_done) {  // more bytes after a member: another member, or trailing garbage
      while (s.in_left() < 2 && s.read_input()) {
      }
      SHEARS_CHECK(s.in_left() >= 2 && s.in[s.in_begin] == 0x1f && s.in[s.in_begin + 1] == 0x8b, format_, path_,
                   ": unexpected data after the last gzip member at file offset ", s.file_offset,
                   ": expected another gzip member (1f 8b) or the end of the file");
      inflateReset(&s.z);
      s.member_done = false;
    }
    s.z.next_in = s.in.data() + s.in_begin;
    s.z.avail_in = static_cast<uInt>(s.in_left());
    s.z.next_out = s.out.data();
    s.z.avail_out = static_cast<uInt>(s.out.size());
    const int status = inflate(&s.z, Z_NO_FLUSH);
    const size_t used = s.in_left() - s.z.avail_in;
    s.in_begin += used, s.file_offset += static_cast<int64_t>(used);
    s.out_end = s.out.size() - s.z.avail_out;
    SHEARS_CHECK(status != Z_MEM_ERROR, format_, path_, ": out of memory while inflating");
    SHEARS_CHECK(status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR, format_, path_,
                 ": corrupt or truncated gzip data (", s.z.msg ? s.z.msg : zError(status), ") after ",
                 offset_ + static_cast<int64_t>(s.out_end), " decompressed bytes");
    s.member_done = status == Z_STREAM_END;
    if (!s.member_done && used == 0 && s.out_end == 0)  // inflate needs more than the buffer holds
      SHEARS_CHECK(s.read_input(), format_, path_, ": corrupt or truncated gzip data (the stream ends inside a ",
                   "member) after ", offset_, " decompressed bytes");
  }
  return true;
}

int64_t ByteReader::read(uint8_t* dst, int64_t n) {
  Stream& s = *stream_;
  int64_t got = 0;
  while (got < n) {
    if (s.out_begin == s.out_end && !fill()) break;
    const int64_t take = std::min<int64_t>(n - got, static_cast<int64_t>(s.out_end - s.out_begin));
    std::memcpy(dst + got, s.out.data() + s.out_begin, static_cast<size_t>(take));
    s.out_begin += static_cast<size_t>(take), got += take, offset_ += take;
  }
  return got;
}

int64_t ByteReader::append(std::vector<uint8_t>& out, int64_t n) {
  constexpr int64_t kChunk = int64_t{1} << 24;
  if (!gzipped()) n = std::min(n, std::max<int64_t>(file_size() - offset_, 0));
  const size_t start = out.size();
  int64_t got = 0;
  while (got < n) {
    // Grow geometrically, but only past data that has actually arrived.
    int64_t step = std::min(n - got, std::max<int64_t>(kChunk, static_cast<int64_t>(out.size())));
    try {
      out.resize(start + got + step);
    } catch (const std::bad_alloc&) {
      throw Error(
          detail::concat(format_, ": ", path_, ": out of memory holding ", start + got + step, " bytes of its data"));
    }
    int64_t r = read(out.data() + start + got, step);
    got += r;
    if (r < step) break;
  }
  out.resize(start + got);
  return got;
}

bool ByteReader::at_end() {
  Stream& s = *stream_;
  return s.out_begin == s.out_end && !fill();
}

}  // namespace shears::data
