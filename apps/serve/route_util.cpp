#include "route_util.h"

#include <chrono>
#include <cstdio>
#include <string_view>

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
    send_error(res, e.status, e.code, e.what(), e.param);
  } catch (const QueueFull& e) {
    send_error(res, 503, "overloaded", std::string(e.what()) + "; retry later");
  } catch (const Error& e) {
    std::fprintf(stderr, "serve: %s: 400: %s\n", route.c_str(), e.what());
    send_error(res, 400, "bad_request", redact_paths(e.what()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "serve: %s: 500: %s\n", route.c_str(), e.what());
    send_error(res, 500, "internal", redact_paths(e.what()));
  } catch (...) {
    send_error(res, 500, "internal", "unknown error");
  }
  metrics.observe(route, res.status, std::chrono::duration<double>(Clock::now() - t0).count());
}

std::string redact_paths(const std::string& m) {
  auto delimiter = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\'' || c == '"' || c == '(' || c == ')' || c == ',' || c == '=' || c == '`'; };
  std::string out;
  out.reserve(m.size());
  for (size_t i = 0; i < m.size();) {
    if (m[i] == '/' && (i == 0 || delimiter(m[i - 1]) || m[i - 1] == ':')) {
      size_t e = i;
      while (e < m.size() && !delimiter(m[e])) ++e;
      std::string_view word(m.data() + i, e - i);
      // "path: message" — a colon right after the path is not part of its name.
      while (!word.empty() && word.back() == ':') word.remove_suffix(1);
      if (word.find('/', 1) != std::string_view::npos) {
        out += word.substr(word.rfind('/') + 1);
        i += word.size();
        continue;
      }
    }
    out += m[i++];
  }
  return out;
}

void send_json(httplib::Response& res, int status, const nlohmann::json& j) {
  res.status = status;
  res.set_content(json_text(j), "application/json");  // error messages may quote invalid UTF-8
}

void send_error(httplib::Response& res, int status, const std::string& code, const std::string& message,
                const std::string& param) {
  send_json(res, status,
            {{"error", {{"code", code}, {"message", message}, {"type", error_type(status)},
                        {"param", param.empty() ? nlohmann::json() : nlohmann::json(param)}}}});
}

Image one_image(const RequestBody& b) {
  const size_t n = b.image_count();  // counted, not decoded
  if (n != 1) api_fail(400, "bad_request", "send exactly one image in 'image', got ", n);
  return b.image(0);
}

void require(const RequestBody& b, const std::string& k, const std::string& what) {
  if (!b.has(k)) api_fail(400, "missing_field", "'", k, "' is required: ", what);
}

void need_text(const ClipService& clip, const char* what) {
  if (!clip.has_text())
    api_fail(501, "no_text_model", what, " needs the CLIP text tower's tokenizer, which is not loaded: ",
             redact_paths(clip.text_error()));
}

}  // namespace mmkit::serve
