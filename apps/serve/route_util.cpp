#include "route_util.h"

#include <chrono>

#include "mmkit/serve/api_error.h"
#include "mmkit/serve/dynamic_batcher.h"

namespace mmkit::serve {

void answer_route(Metrics& metrics, const std::string& route, httplib::Response& res,
                  const std::function<void()>& handle) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  res.status = 200;  // httplib leaves -1 until it sends; handlers change it on errors
  try {
    handle();
  } catch (const ApiError& e) {
    send_error(res, e.status, e.code, e.what());
  } catch (const QueueFull& e) {
    send_error(res, 503, "overloaded", std::string(e.what()) + "; retry later");
  } catch (const Error& e) {
    send_error(res, 400, "bad_request", e.what());
  } catch (const std::exception& e) {
    send_error(res, 500, "internal", e.what());
  } catch (...) {
    send_error(res, 500, "internal", "unknown error");
  }
  metrics.observe(route, res.status, std::chrono::duration<double>(Clock::now() - t0).count());
}

void send_json(httplib::Response& res, int status, const nlohmann::json& j) {
  res.status = status;
  res.set_content(json_text(j), "application/json");  // error messages may quote invalid UTF-8
}

void send_error(httplib::Response& res, int status, const std::string& code, const std::string& message) {
  send_json(res, status, {{"error", {{"code", code}, {"message", message}}}});
}

Image one_image(const RequestBody& b) {
  std::vector<Image> imgs = b.images();
  if (imgs.size() != 1) api_fail(400, "bad_request", "send exactly one image in 'image', got ", imgs.size());
  return std::move(imgs[0]);
}

void require(const RequestBody& b, const std::string& k, const std::string& what) {
  if (!b.has(k)) api_fail(400, "missing_field", "'", k, "' is required: ", what);
}

void need_text(const ClipService& clip, const char* what) {
  if (!clip.has_text())
    api_fail(501, "no_text_model", what, " needs the CLIP text tower's tokenizer, which is not loaded: ", clip.text_error());
}

}  // namespace mmkit::serve
