// Predictions of a trained model: for each image, the top-k classes with their softmax
// probabilities, and optionally the logits, through the same forward pass as evaluation
// (train::forward_batches) and the checkpoint's evaluation pipeline; written as CSV or JSON.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.hpp"
#include "data/transforms.hpp"
#include "nn/module.hpp"

namespace shears::pipeline {

struct Prediction {
  std::string name;                   // the image's file, or "<split>[index]" for a dataset's sample
  int64_t label = -1;                 // the true class when known
  std::vector<int64_t> top;           // the k most probable classes, most probable first
  std::vector<double> probabilities;  // theirs
  std::vector<float> logits;          // every class's, when asked for
};

struct PredictOptions {
  int64_t top_k = 5;
  bool logits = false;
  int64_t batch_size = 256;
  int workers = 2;
  std::string split_name = "test";  // names samples of a dataset without files
};

std::vector<Prediction> predict(nn::Module& model, const std::shared_ptr<const data::Dataset>& images,
                                const data::Compose& transform, const PredictOptions& options);

// `path` ending in .json: an array of objects {image, label, top: [{class, name, probability}],
// logits}; otherwise CSV: image, label, then class_k, name_k, probability_k for each k, then
// logit_c for each class when kept. Written atomically.
void write_predictions(const std::string& path, const std::vector<Prediction>& predictions,
                       const std::vector<std::string>& classes);

}  // namespace shears::pipeline
