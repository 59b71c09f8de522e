// Training charts written as PNG (drawn with mmkit::Canvas, no plotting
// dependency).
//
//   std::vector<mmkit::EpochPoint> pts = {{1, 0.61, 0.47, 0.78, 0.83}, {2, 0.40, 0.41, 0.85, 0.85}};
//   mmkit::plot_training_curves("curves.png", pts, "ViT on Fashion-MNIST");
//   mmkit::plot_confusion_matrix("confusion.png", counts, mmkit::data::fashion_mnist_classes(), "test set");
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace mmkit {

// One row of a training log. Accuracies are fractions in [0, 1] (plotted as
// percent). Missing values are NaN; infinities are treated as missing too.
struct EpochPoint {
  int epoch = 0;
  double train_loss = NAN;
  double test_loss = NAN;
  double train_acc = NAN;
  double test_acc = NAN;
};

// Two panels side by side (1400x600): loss per epoch and accuracy per epoch,
// train and test series each, with grid, numbered ticks, legend and title.
// Points are sorted by epoch; a NaN is skipped and the line bridges the gap
// (so a test metric measured every k epochs still draws a line). Handles a
// single epoch, all-NaN series ("no data") and constant series.
void plot_training_curves(const std::string& png_path, const std::vector<EpochPoint>& pts,
                          const std::string& title);

// Heat map of a k x k confusion matrix (row = true class, column =
// predicted), shaded by the row-normalised fraction (per-class recall on the
// diagonal) with the raw count printed in each cell, class names on both
// axes, a colour bar, and the overall accuracy (trace / total) in the title.
// class_names may be empty (classes are then numbered); otherwise size k.
void plot_confusion_matrix(const std::string& png_path, const std::vector<int64_t>& counts,
                           const std::vector<std::string>& class_names, const std::string& title);

}  // namespace mmkit
