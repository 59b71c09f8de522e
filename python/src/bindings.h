// The binding files' registration functions (one per file, called by module.cpp).
#pragma once
#include <pybind11/pybind11.h>

#include <mutex>

namespace mmkit {
class ClipRunner;
}

namespace mmkit::py {

void bind_clip(pybind11::module_& m);    // ClipModel, tokenize
void bind_models(pybind11::module_& m);  // VitModel, VqaModel, CaptionModel, model_kind
void bind_index(pybind11::module_& m);   // Index
void bind_train(pybind11::module_& m);   // run_cli (mmkit.train)

// A ClipModel's runner and the mutex its calls take.
ClipRunner& clip_runner_of(const pybind11::object& model);
std::mutex& clip_mutex_of(const pybind11::object& model);

}  // namespace mmkit::py
