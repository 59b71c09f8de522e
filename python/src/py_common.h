// What every binding file shares: numpy results that own their memory, Python
// inputs -> library types (images, texts), and the one error translation.
//
// Errors: a mmkit::Error becomes FileNotFoundError when one of the paths the
// call was given does not exist, else mmkit.Error; the message is the library's,
// i.e. the CLI's. Bad Python arguments (dtype, shape, type) raise ValueError /
// TypeError before any compute.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "mmkit/core/error.h"
#include "mmkit/core/tensor.h"
#include "mmkit/image/image.h"

namespace mmkit::py {

namespace pb = pybind11;

// Set by module.cpp: the Python class of mmkit.Error.
extern PyObject* g_error_type;

// Raises FileNotFoundError (the first missing path) or mmkit.Error with `message`.
[[noreturn]] void raise_library_error(const std::string& message, const std::vector<std::string>& paths);

// Runs `f` with the GIL released and maps a mmkit::Error as above. `paths`:
// the files the call reads (for the FileNotFoundError decision).
template <class F>
auto call_released(const std::vector<std::string>& paths, F&& f) -> decltype(f()) {
  try {
    pb::gil_scoped_release nogil;
    return f();
  } catch (const Error& e) {  // the GIL is held again here (nogil's destructor ran)
    raise_library_error(e.what(), paths);
  }
}

// The OpenMP threads of every compute call (mmkit.set_num_threads; 0: all cores). Applied per call
// as the CLI applies --threads, which also sets flush-to-zero on the calling thread's team, so
// results match the CLI's bit for bit whichever Python thread calls.
void apply_threads();
void set_threads(int n);

// A float32 [shape] numpy array that takes over `t`'s storage (no copy; the array owns it).
pb::array_t<float> to_numpy(Tensor t);
// A copy of a vector as a 1-D / 2-D numpy array.
pb::array_t<float> vector_to_numpy(const std::vector<float>& v);
pb::array_t<float> rows_to_numpy(const std::vector<std::vector<float>>& rows, size_t cols);

// One image argument: a path (str / os.PathLike), a PIL image, or a numpy uint8
// array HxW or HxWxC (C = 1, 3 or 4). `where` names the argument in errors.
struct ImageArg {
  std::string path;  // set for a path (decoded later, without the GIL)
  Image image;       // set otherwise (copied from the array)
};
ImageArg image_arg(const pb::handle& obj, const std::string& where);
// A single image or a list of them (a str is one path, an ndarray of ndim 2/3 one image).
std::vector<ImageArg> image_args(const pb::handle& obj, const std::string& what);
// Decodes the paths (call without the GIL).
std::vector<Image> decode_all(std::vector<ImageArg>& args);
std::vector<std::string> paths_of(const std::vector<ImageArg>& args);

// Texts: str (encoded as UTF-8) or bytes (passed through; the tokenizer checks
// them, naming the byte). A single str is one text.
std::vector<std::string> text_args(const pb::handle& obj, const std::string& what);
std::string text_arg(const pb::handle& obj, const std::string& where);
// A path argument (str or os.PathLike).
std::string path_arg(const pb::handle& obj, const std::string& where);

}  // namespace mmkit::py
