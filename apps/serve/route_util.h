// What the route handlers of ApiServer share (internal to apps/serve): the one
// error wrapper every route runs inside, JSON replies, and the checks several
// routes make on a request body.
//
//   answer_route(metrics, "/v1/vqa", res, [&] { ...; send_json(res, 200, j); });
//   // a throw inside -> {"error": {"code", "message", "type", "param"}} with its status, counted either way
#pragma once
#include <httplib.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "http_head.h"
#include "mmkit/serve/clip_service.h"
#include "mmkit/serve/metrics.h"
#include "mmkit/serve/request_body.h"

namespace mmkit::serve {

// Runs `handle` and records the route's status and latency in `metrics`. What
// it throws becomes the standard error JSON: ApiError -> its status and code,
// QueueFull -> 503 overloaded, mmkit::Error -> 400 bad_request, anything else
// -> 500 internal. The library's own messages (not ApiError's, which the
// handlers word for clients) go to the log in full and to the client with
// filesystem paths cut to their last component (redact_paths).
void answer_route(Metrics& metrics, const std::string& route, httplib::Response& res,
                  const std::function<void()>& handle);

// "cannot open /home/u/models/clip.safetensors: ..." -> "cannot open clip.safetensors: ...":
// every absolute path (a '/' at the start of a word, with another '/' in it) becomes its
// file name, so that errors never tell a client where files live.
std::string redact_paths(const std::string& message);

void send_json(httplib::Response& res, int status, const nlohmann::json& j);
// {"error": {"code", "message", "type", "param"}}: OpenAI's error shape, so that its clients
// show the message; "param" is the field at fault or null.
void send_error(httplib::Response& res, int status, const std::string& code, const std::string& message,
                const std::string& param = "");

// The one image of a request (400 unless exactly one).
Image one_image(const RequestBody& b);
// 400 missing_field unless the body has `k`: checked before any decoding, so
// a request missing a field costs nothing.
void require(const RequestBody& b, const std::string& k, const std::string& what);
// 501 no_text_model when the CLIP tokenizer is not loaded.
void need_text(const ClipService& clip, const char* what);

}  // namespace mmkit::serve
