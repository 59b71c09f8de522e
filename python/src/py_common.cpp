#include "py_common.h"

#include <cerrno>
#include <cstring>

#include "mmkit/core/parallel.h"
#include "mmkit/util/file_util.h"

namespace mmkit::py {

PyObject* g_error_type = nullptr;

void raise_library_error(const std::string& message, const std::vector<std::string>& paths) {
  for (const std::string& p : paths) {
    if (p.empty() || path_exists(p)) continue;
    // FileNotFoundError(ENOENT, message, path), as open() raises it: errno and filename set, and
    // str() is "[Errno 2] <the library's message>: '<path>'".
    pb::object e = pb::reinterpret_steal<pb::object>(
        PyObject_CallFunction(PyExc_FileNotFoundError, "iss", ENOENT, message.c_str(), p.c_str()));
    if (!e) throw pb::error_already_set();
    PyErr_SetObject(PyExc_FileNotFoundError, e.ptr());
    throw pb::error_already_set();
  }
  PyErr_SetString(g_error_type ? g_error_type : PyExc_RuntimeError, message.c_str());
  throw pb::error_already_set();
}

namespace {
int g_threads = 0;
}

void set_threads(int n) {
  MMKIT_CHECK(n >= 0, "threads must be >= 0 (0: all cores), got ", n);
  g_threads = n;
}

void apply_threads() { set_num_threads(g_threads); }

pb::array_t<float> to_numpy(Tensor t) {
  auto* owned = new Tensor(std::move(t));
  pb::capsule free_when_done(owned, [](void* p) { delete static_cast<Tensor*>(p); });
  std::vector<pb::ssize_t> shape, strides;
  for (int i = 0; i < owned->shape().n; ++i) shape.push_back(owned->shape()[i]);
  pb::ssize_t s = sizeof(float);
  strides.resize(shape.size());
  for (int i = int(shape.size()) - 1; i >= 0; --i) {
    strides[size_t(i)] = s;
    s *= shape[size_t(i)];
  }
  return pb::array_t<float>(shape, strides, owned->f32(), free_when_done);
}

pb::array_t<float> vector_to_numpy(const std::vector<float>& v) {
  pb::array_t<float> a(pb::ssize_t(v.size()));
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(float));
  return a;
}

pb::array_t<float> rows_to_numpy(const std::vector<std::vector<float>>& rows, size_t cols) {
  pb::array_t<float> a({pb::ssize_t(rows.size()), pb::ssize_t(cols)});
  float* d = a.mutable_data();
  for (size_t i = 0; i < rows.size(); ++i) {
    MMKIT_ASSERT(rows[i].size() == cols);
    std::memcpy(d + i * cols, rows[i].data(), cols * sizeof(float));
  }
  return a;
}

namespace {

bool is_path_like(const pb::handle& obj) {
  return pb::isinstance<pb::str>(obj) || pb::hasattr(obj, "__fspath__");
}

bool is_pil_image(const pb::handle& obj) {
  return pb::hasattr(obj, "mode") && pb::hasattr(obj, "getdata") && pb::hasattr(obj, "convert");
}

Image image_from_array(const pb::handle& obj, const std::string& where) {
  pb::array arr = pb::reinterpret_borrow<pb::array>(obj);
  if (!arr.dtype().is(pb::dtype::of<uint8_t>()))
    throw pb::value_error(where + ": expected a uint8 array HxW or HxWxC (C = 1, 3 or 4), got dtype " +
                          std::string(pb::str(arr.dtype())) +
                          " (preprocessed float32 NxCxHxW pixels go to encode_image as one array)");
  const int nd = int(arr.ndim());
  const int64_t C = nd == 3 ? arr.shape(2) : 1;
  if ((nd != 2 && nd != 3) || (C != 1 && C != 3 && C != 4) || arr.shape(0) < 1 || arr.shape(1) < 1) {
    std::string shape = "(";
    for (int i = 0; i < nd; ++i) shape += (i ? ", " : "") + std::to_string(arr.shape(i));
    throw pb::value_error(where + ": expected a uint8 array HxW or HxWxC with C = 1, 3 or 4, got shape " +
                          shape + (nd == 1 ? ",)" : ")"));
  }
  const int H = int(arr.shape(0)), W = int(arr.shape(1));
  Image img(W, H, int(C));
  // Any strides (a slice, a transposed view): copy element by element through numpy's C-order view.
  pb::array_t<uint8_t, pb::array::c_style | pb::array::forcecast> c = pb::array_t<uint8_t, pb::array::c_style | pb::array::forcecast>::ensure(arr);
  if (!c) throw pb::error_already_set();
  std::memcpy(img.pixels.data(), c.data(), img.pixels.size());
  return img;
}

}  // namespace

std::string path_arg(const pb::handle& obj, const std::string& where) {
  if (!is_path_like(obj))
    throw pb::type_error(where + ": expected a path (str or os.PathLike), got " +
                         std::string(pb::str(obj.get_type().attr("__name__"))));
  pb::object fs = pb::module_::import("os").attr("fspath")(obj);
  if (!pb::isinstance<pb::str>(fs)) throw pb::type_error(where + ": expected a str path");
  return text_arg(fs, where);
}

ImageArg image_arg(const pb::handle& obj, const std::string& where) {
  ImageArg a;
  if (is_path_like(obj)) {
    a.path = path_arg(obj, where);
    return a;
  }
  if (is_pil_image(obj)) {
    // L, RGB and RGBA are what the decoder itself produces; other modes (P, I;16, CMYK, ...) as RGB.
    std::string mode = pb::str(obj.attr("mode"));
    pb::object im = (mode == "L" || mode == "RGB" || mode == "RGBA") ? pb::reinterpret_borrow<pb::object>(obj)
                                                                        : obj.attr("convert")("RGB");
    pb::object arr = pb::module_::import("numpy").attr("asarray")(im);
    a.image = image_from_array(arr, where);
    return a;
  }
  if (pb::isinstance<pb::array>(obj)) {
    a.image = image_from_array(obj, where);
    return a;
  }
  throw pb::type_error(where + ": expected a path, a PIL image or a uint8 numpy array, got " +
                       std::string(pb::str(obj.get_type().attr("__name__"))));
}

std::vector<ImageArg> image_args(const pb::handle& obj, const std::string& what) {
  std::vector<ImageArg> out;
  if (is_path_like(obj) || is_pil_image(obj) || pb::isinstance<pb::array>(obj)) {
    out.push_back(image_arg(obj, what));
    return out;
  }
  if (!pb::isinstance<pb::sequence>(obj) || pb::isinstance<pb::bytes>(obj))
    throw pb::type_error(what + ": expected an image or a list of images (paths, PIL images, uint8 arrays), got " +
                         std::string(pb::str(obj.get_type().attr("__name__"))));
  size_t i = 0;
  for (pb::handle item : obj) out.push_back(image_arg(item, what + "[" + std::to_string(i++) + "]"));
  return out;
}

std::vector<Image> decode_all(std::vector<ImageArg>& args) {
  std::vector<Image> out;
  out.reserve(args.size());
  for (ImageArg& a : args) out.push_back(a.path.empty() ? std::move(a.image) : decode_image_file(a.path));
  return out;
}

std::vector<std::string> paths_of(const std::vector<ImageArg>& args) {
  std::vector<std::string> p;
  for (const ImageArg& a : args)
    if (!a.path.empty()) p.push_back(a.path);
  return p;
}

std::string text_arg(const pb::handle& obj, const std::string& where) {
  if (pb::isinstance<pb::bytes>(obj)) return std::string(pb::reinterpret_borrow<pb::bytes>(obj));
  if (!pb::isinstance<pb::str>(obj))
    throw pb::type_error(where + ": expected str or bytes, got " +
                         std::string(pb::str(obj.get_type().attr("__name__"))));
  Py_ssize_t n = 0;
  const char* s = PyUnicode_AsUTF8AndSize(obj.ptr(), &n);
  if (!s) {  // lone surrogates: not encodable as UTF-8
    PyErr_Clear();
    throw pb::value_error(where + ": text is not valid Unicode (it holds a lone surrogate); pass bytes or a "
                          "valid str");
  }
  return std::string(s, size_t(n));
}

std::vector<std::string> text_args(const pb::handle& obj, const std::string& what) {
  std::vector<std::string> out;
  if (pb::isinstance<pb::str>(obj) || pb::isinstance<pb::bytes>(obj)) {
    out.push_back(text_arg(obj, what));
    return out;
  }
  if (!pb::isinstance<pb::sequence>(obj))
    throw pb::type_error(what + ": expected a str or a list of str, got " +
                         std::string(pb::str(obj.get_type().attr("__name__"))));
  size_t i = 0;
  for (pb::handle item : obj) out.push_back(text_arg(item, what + "[" + std::to_string(i++) + "]"));
  return out;
}

}  // namespace mmkit::py
