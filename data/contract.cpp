#include "data/contract.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace shears::data {

namespace {

// Shortest text that reads back as the same number.
template <class T>
std::string float_text(T value) {
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, end);
}

std::string float_list(const std::vector<float>& values) {
  std::string text;
  for (float v : values) text += (text.empty() ? "" : ",") + float_text(v);
  return text;
}

const char* resize_name(EvalResize resize) {
  switch (resize) {
    case EvalResize::pad:
      return "pad";
    case EvalResize::resize_crop:
      return "resize-crop";
    default:
      return "none";
  }
}

// One key of a checkpoint's contract, read and checked; errors name the file and the key.
class ContractReader {
 public:
  ContractReader(const std::map<std::string, std::string>& metadata, std::string path)
      : metadata_(metadata), path_(std::move(path)) {}

  const std::string& text(const std::string& key) const {
    auto it = metadata_.find(key);
    SHEARS_CHECK(it != metadata_.end(), path_, "metadata key '", key,
                 "' is missing (the input contract has other "
                 "input.* keys): the file is incomplete");
    return it->second;
  }
  int64_t integer(const std::string& key, int64_t lo, int64_t hi) const {
    const std::string& t = text(key);
    int64_t value = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
    SHEARS_CHECK(ec == std::errc() && end == t.data() + t.size() && value >= lo && value <= hi, path_, "metadata key '",
                 key, "': expected an integer in [", lo, ", ", hi, "], got '", t, "'");
    return value;
  }
  std::vector<float> floats(const std::string& key, size_t count, bool positive) const {
    const std::string& t = text(key);
    std::vector<float> values;
    for (size_t start = 0; start <= t.size();) {
      const size_t comma = std::min(t.find(',', start), t.size());
      float v = 0.f;
      const auto [end, ec] = std::from_chars(t.data() + start, t.data() + comma, v);
      SHEARS_CHECK(ec == std::errc() && end == t.data() + comma && std::isfinite(v) && (!positive || v > 0.f), path_,
                   "metadata key '", key, "': expected ", count, " comma-separated ", positive ? "positive " : "",
                   "numbers, got '", t, "'");
      values.push_back(v);
      start = comma + 1;
    }
    SHEARS_CHECK(values.size() == count, path_, "metadata key '", key, "': expected ", count,
                 " values (one per channel), got ", values.size(), ": '", t, "'");
    return values;
  }
  std::vector<std::string> strings(const std::string& key) const {
    const nlohmann::json list = nlohmann::json::parse(text(key), nullptr, false);
    bool ok = list.is_array() && !list.empty();
    for (const auto& item : list)
      if (!item.is_string()) ok = false;
    SHEARS_CHECK(ok, path_, "metadata key '", key, "': expected a JSON array of class names, got '", text(key), "'");
    return list.get<std::vector<std::string>>();
  }
  const std::string& path() const { return path_; }

 private:
  const std::map<std::string, std::string>& metadata_;
  std::string path_;
};

EvalResize parse_resize(const ContractReader& r) {
  const std::string& t = r.text("input.transform");
  if (t == "none") return EvalResize::none;
  if (t == "pad") return EvalResize::pad;
  SHEARS_CHECK(t == "resize-crop", r.path(), "metadata key 'input.transform': expected none, pad or resize-crop, got '",
               t, "'");
  return EvalResize::resize_crop;
}

}  // namespace

std::map<std::string, std::string> contract_metadata(const InputContract& c) {
  std::map<std::string, std::string> meta{
      {"input.dataset", c.dataset},
      {"input.shape", std::to_string(c.channels) + "," + std::to_string(c.height) + "," + std::to_string(c.width)},
      {"input.mean", float_list(c.mean)},
      {"input.std", float_list(c.std)},
      {"input.classes", nlohmann::json(c.classes).dump()},
      {"input.transform", resize_name(c.resize)},
  };
  if (c.resize == EvalResize::pad) meta["input.pad"] = std::to_string(c.pad);
  if (c.resize == EvalResize::resize_crop) {
    meta["input.crop_pct"] = float_text(c.crop_pct);
    meta["input.interpolation"] = interpolation_name(c.interpolation);
  }
  return meta;
}

std::optional<InputContract> contract_from_metadata(const std::map<std::string, std::string>& metadata,
                                                    const std::string& path) {
  const auto any_input = metadata.lower_bound("input.");
  if (any_input == metadata.end() || any_input->first.rfind("input.", 0) != 0) return std::nullopt;
  const ContractReader r(metadata, path);
  InputContract c;
  c.dataset = r.text("input.dataset");
  const std::string& shape = r.text("input.shape");
  int64_t* fields[] = {&c.channels, &c.height, &c.width};
  size_t start = 0;
  for (size_t i = 0; i < 3; ++i) {
    const size_t end = i < 2 ? shape.find(',', start) : shape.size();
    const auto [stop, ec] = end == std::string::npos
                                ? std::from_chars_result{shape.data(), std::errc::invalid_argument}
                                : std::from_chars(shape.data() + start, shape.data() + end, *fields[i]);
    SHEARS_CHECK(ec == std::errc() && stop == shape.data() + end && *fields[i] > 0 && *fields[i] <= 65536, path,
                 "metadata key 'input.shape': expected C,H,W as whole numbers in [1, 65536], got '", shape, "'");
    start = end + 1;
  }
  SHEARS_CHECK(c.channels == 1 || c.channels == 3, path, "metadata key 'input.shape': 1 or 3 channels, got '", shape,
               "'");
  c.mean = r.floats("input.mean", static_cast<size_t>(c.channels), false);
  c.std = r.floats("input.std", static_cast<size_t>(c.channels), true);
  c.classes = r.strings("input.classes");
  c.resize = parse_resize(r);
  if (c.resize == EvalResize::pad) c.pad = r.integer("input.pad", 0, (std::min(c.height, c.width) - 1) / 2);
  if (c.resize == EvalResize::resize_crop) {
    const std::string& pct = r.text("input.crop_pct");
    const auto [end, ec] = std::from_chars(pct.data(), pct.data() + pct.size(), c.crop_pct);
    SHEARS_CHECK(ec == std::errc() && end == pct.data() + pct.size() && c.crop_pct >= kMinCropPct && c.crop_pct <= 1.0,
                 path, "metadata key 'input.crop_pct': expected a value in [", kMinCropPct, ", 1], got '", pct, "'");
    c.interpolation = parse_interpolation(r.text("input.interpolation"), path + ": metadata key 'input.interpolation'");
  }
  return c;
}

Compose eval_transform(const InputContract& c) {
  Compose pipeline;
  if (c.resize != EvalResize::resize_crop) {  // stored images of one size: any other is not this data
    const int64_t h = c.height - 2 * c.pad, w = c.width - 2 * c.pad;
    const std::string dataset = c.dataset;
    pipeline.transforms.push_back([h, w, dataset](Image image, Generator&) {
      SHEARS_CHECK(image.height == h && image.width == w, "input contract", "an image of ", image.height, "x",
                   image.width, " pixels: the checkpoint takes ", dataset, "'s ", h, "x", w,
                   " images as stored (it was trained without a resize)");
      return image;
    });
  }
  if (c.resize == EvalResize::pad) pipeline.transforms.push_back(Pad{Padding(c.pad)});
  if (c.resize == EvalResize::resize_crop)
    pipeline.transforms.push_back(ResizeCenterCrop{c.height, c.width, c.crop_pct, c.interpolation});
  for (Transform& step : normalization(c).transforms) pipeline.transforms.push_back(std::move(step));
  return pipeline;
}

Compose normalization(const InputContract& c) { return Compose{{ToFloat{}, Normalize{c.mean, c.std}}}; }

}  // namespace shears::data
