// The extension module `mmkit._mmkit`; the package mmkit (python/mmkit/) re-exports
// it with mmkit.load, mmkit.train and the type stubs.
#include <pybind11/pybind11.h>

#include "bindings.h"
#include "mmkit/core/parallel.h"
#include "py_common.h"

#ifndef MMKIT_VERSION_STR
#define MMKIT_VERSION_STR "0.0.0"
#endif

PYBIND11_MODULE(_mmkit, m) {
  namespace pb = pybind11;
  m.doc() = "mmkit's C++ engine (CLIP, ViT, VQA, captioning, image index, training); use the mmkit package.";
  m.attr("__version__") = MMKIT_VERSION_STR;
  static pb::exception<mmkit::Error> error(m, "Error");
  mmkit::py::g_error_type = error.ptr();
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 0) throw pb::value_error("threads must be >= 0 (0: all cores), got " + std::to_string(n));
        mmkit::py::set_threads(n);
      },
      pb::arg("n"), "OpenMP threads of every compute call, as the CLI's --threads (0: all cores, the default).");
  m.def("get_num_threads", [] { return mmkit::num_threads(); }, "OpenMP threads a compute call uses now.");
  mmkit::py::bind_clip(m);
  mmkit::py::bind_models(m);
  mmkit::py::bind_index(m);
  mmkit::py::bind_train(m);
}
