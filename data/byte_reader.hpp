// ByteReader: reads a file front to back as bytes, inflating gzip (one member or several, as
// `cat a.gz b.gz` makes) and passing any other file through unchanged, so every reader accepts `x`
// and `x.gz` alike. Bytes after the last gzip member that are not another member are refused, as
// trailing bytes after a raw file are. Readers count the bytes as they go, which is how their
// errors name the record and offset where data ran out.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace shears::data {

class ByteReader {
 public:
  // Opens `path` (a regular file: a FIFO or device is refused at once); `format` (e.g. "IDX")
  // prefixes errors. Throws shears::Error if it cannot.
  ByteReader(std::string path, std::string format);
  ~ByteReader();
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;

  // Reads up to n bytes into dst and returns how many were read: fewer than n only at the end of
  // the data. A corrupt or truncated gzip stream, or non-gzip bytes after one, throws.
  int64_t read(uint8_t* dst, int64_t n);
  // Appends up to n bytes to `out` and returns how many came. Never allocates more than the file
  // can supply — a raw file's remaining size, a gzip stream's bytes as they arrive — so a header
  // claiming more data than the file holds cannot make us allocate it.
  int64_t append(std::vector<uint8_t>& out, int64_t n);
  bool at_end();                              // no byte left
  int64_t offset() const { return offset_; }  // bytes consumed so far (decompressed)
  bool gzipped() const;
  int64_t file_size() const;  // on disk
  // The most bytes the file can hold: its size, or for gzip 1032 times its size (deflate's
  // largest ratio: a 258-byte match in 2 bits), so a header can be checked before allocating.
  int64_t max_size() const { return gzipped() ? kMaxDeflateRatio * file_size() : file_size(); }
  static constexpr int64_t kMaxDeflateRatio = 1032;

 private:
  struct Stream;  // the file, zlib's state and the buffers, kept out of this header
  bool fill();    // refills the decoded buffer; false at the end of the data
  std::string path_, format_;
  std::unique_ptr<Stream> stream_;
  int64_t offset_ = 0;
};

}  // namespace shears::data
