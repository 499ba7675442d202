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
#include "pipeline/checkpoint_data.hpp"

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

// What predict runs on: the model of `weights` and its images with their pipeline and class names.
struct PredictInputs {
  std::shared_ptr<nn::Module> model;
  std::shared_ptr<const data::Dataset> images;
  data::Compose transform;
  std::vector<std::string> classes;
  int64_t skipped_files = 0;       // in `paths`, without an image extension
  nn::LoadReport skipped_tensors;  // a non-strict load's
};

// `paths` (image files or folders) through the checkpoint's input contract, without opening any
// dataset; for weights without a contract, through the pipeline of the data `choice` names. With
// no paths, the data's `split` ("train", "val" or "test") through its test pipeline.
PredictInputs open_predict_inputs(const std::string& weights, const ForeignModel& foreign,
                                  const data::DataChoice& choice, const std::vector<std::string>& paths,
                                  const std::string& split);

std::vector<Prediction> predict(nn::Module& model, const std::shared_ptr<const data::Dataset>& images,
                                const data::Compose& transform, const PredictOptions& options);

// `path` ending in .json: an array of objects {image, label, top: [{class, name, probability}],
// logits}; otherwise CSV: image, label, then class_k, name_k, probability_k for each k, then
// logit_c for each class when kept. Written atomically.
void write_predictions(const std::string& path, const std::vector<Prediction>& predictions,
                       const std::vector<std::string>& classes);

}  // namespace shears::pipeline
