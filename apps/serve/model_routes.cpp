// POST /v1/classify, /v1/vqa and /v1/caption: the optional models (each 501
// not_loaded unless `mmkit serve` loaded it). Not batched: one forward per
// request on its own thread, under CLIP's engine mutex.
#include <httplib.h>

#include "api_server.h"
#include "mmkit/serve/api_error.h"
#include "request_adapter.h"
#include "route_util.h"

namespace mmkit::serve {

namespace {

using json = nlohmann::json;

// The question's problems as 400s with their own codes (check_question names
// the word / the counts), before the image is decoded.
void check_vqa_question(const VqaService& vqa, const std::string& q, const RequestLimits& lim) {
  if (q.find_first_not_of(" \t\r\n") == std::string::npos)
    api_fail(400, "empty_question", "'question' is empty; ask something about the image");
  check_text(q, lim, "question");
  QuestionProblem p = vqa.check(q);
  switch (p.kind) {
    case QuestionProblem::none: return;
    case QuestionProblem::empty: api_fail(400, "empty_question", p.message);
    case QuestionProblem::unknown_word: api_fail(400, "unknown_word", p.message);
    case QuestionProblem::too_long: api_fail(400, "question_too_long", p.message);
    case QuestionProblem::bad_text: api_fail(400, "bad_text", p.message);
  }
}

}  // namespace

void ApiServer::post_classify(const Request& req, Response& res) {
  if (!m_.classify) api_fail(501, "not_loaded", "no --classifier model loaded");
  RequestBody b = request_body(req, opt_.limits);
  Image img = one_image(b);
  const int64_t k = b.integer("top_k", 5, 1, 1000);
  std::vector<LabelProb> r;
  {
    std::lock_guard<std::mutex> l(m_.clip->engine_mutex());
    r = m_.classify(img);
  }
  json top = json::array();
  for (size_t i = 0; i < r.size() && int64_t(i) < k; ++i)
    top.push_back({{"label", r[i].label}, {"probability", r[i].prob}});
  send_json(res, 200, {{"label", r.empty() ? "" : r[0].label}, {"probability", r.empty() ? 0.f : r[0].prob}, {"top", top}});
}

void ApiServer::post_vqa(const Request& req, Response& res) {
  if (!m_.vqa) api_fail(501, "not_loaded", "no VQA model loaded (start the server with --vqa MODEL)");
  RequestBody b = request_body(req, opt_.limits);
  require(b, "question", "a question about the image, in words the model was trained on");
  if (!b.has("image") && !b.has("images")) require(b, "image", "a PNG or JPEG (base64 in JSON, or a file)");
  const std::string q = b.str("question");
  check_vqa_question(*m_.vqa, q, opt_.limits);
  const int64_t top_k = b.integer("top_k", 5, 1, m_.vqa->num_answers());
  Image img = one_image(b);
  VqaAnswer a = m_.vqa->answer(img, q, int(top_k));
  json top = json::array();
  for (auto& [ans, p] : a.top) top.push_back({{"answer", ans}, {"probability", p}});
  send_json(res, 200, {{"model", m_.vqa->name()}, {"question", q}, {"answer", a.answer},
                       {"probability", a.probability}, {"top", top}});
}

void ApiServer::post_caption(const Request& req, Response& res) {
  if (!m_.caption) api_fail(501, "not_loaded", "no captioning model loaded (start the server with --caption MODEL)");
  RequestBody b = request_body(req, opt_.limits);
  if (!b.has("image") && !b.has("images")) require(b, "image", "a PNG or JPEG (base64 in JSON, or a file)");
  GenerateOptions g;
  g.beam = int(b.integer("beam", 1, 1, opt_.limits.max_beam));
  g.max_tokens = b.integer("max_tokens", m_.caption->max_len(), 1, m_.caption->max_len());
  const double lp = b.number("length_penalty", 0.6, 0, 10);  // GenerateOptions' default
  g.length_penalty = float(lp);
  Image img = one_image(b);
  ImageCaption c = m_.caption->caption(img, g);
  send_json(res, 200, {{"model", m_.caption->name()}, {"caption", c.text}, {"log_prob", c.gen.log_prob},
                       {"score", c.gen.score}, {"finished", c.gen.finished}, {"tokens", c.gen.tokens.size()},
                       {"beam", g.beam}, {"max_tokens", g.max_tokens}, {"length_penalty", lp}});
}

}  // namespace mmkit::serve
