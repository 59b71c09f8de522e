// `mmkit index add | update | remove | duplicates | compact` on a live index
// folder (mmkit/index/live_index.h; docs/LIVE_INDEX.md), and `mmkit search` on
// one (run_live_search). The folder must not be open in a running server at
// the same time (its lock refuses that): send changes to the server instead.
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "live_index_commands.h"
#include "mmkit/core/parallel.h"
#include "mmkit/image/image.h"
#include "mmkit/index/embedding_index.h"
#include "mmkit/index/image_fingerprint.h"
#include "mmkit/index/live_index.h"
#include "mmkit/index/thumbnail_cache.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/util/file_util.h"

namespace mmkit::cli {
namespace {

using json = nlohmann::json;

inline constexpr int kThumbSide = 128;  // as `mmkit serve` stores (ServerOptions::live_thumb_size)

json parse_json_option(const std::string& text, const char* option) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(option, ": not valid JSON: ", e.what());
  }
}

std::string absolute(const std::string& p) {
  char abs[PATH_MAX];
  return ::realpath(p.c_str(), abs) ? std::string(abs) : p;
}

// The index's model (or --model, checked against it), loaded.
ClipRunner open_model(const index::LiveIndex& li, const std::string& model, const std::string& vocab) {
  const std::string m = model.empty() ? li.info().value("model", std::string()) : model;
  MMKIT_CHECK(!m.empty(), li.dir(), " does not record its model; pass --model");
  ClipRunner r = ClipRunner::open(m, vocab);
  index::check_index_model(li.info(), li.dir(), r, m);
  return r;
}

struct AddArgs {
  std::string index, model, vocab, id, metadata;
  std::vector<std::string> images;
  int threads = 0;
  int64_t compact_every = 10000;
};

int run_add(const AddArgs& a) {
  set_num_threads(a.threads);
  MMKIT_CHECK(a.id.empty() || a.images.size() == 1, "--id names one image; got ", a.images.size(),
              " (without --id each image's file name is its id)");
  const json meta = a.metadata.empty() ? json::object() : parse_json_option(a.metadata, "--metadata");
  index::check_metadata(meta);
  index::LiveIndex::Options o;
  o.compact_every = a.compact_every;
  std::unique_ptr<index::LiveIndex> li;
  std::unique_ptr<ClipRunner> r;
  if (!index::LiveIndex::exists(a.index)) {
    MMKIT_CHECK(!a.model.empty(), a.index, " is not a live index yet: pass --model to create it");
    r = std::make_unique<ClipRunner>(ClipRunner::open(a.model, a.vocab));
    li = index::LiveIndex::create(a.index, *r, absolute(a.model), o);
    std::fprintf(stderr, "created live index %s\n", a.index.c_str());
  } else {
    li = index::LiveIndex::open(a.index, o);
    r = std::make_unique<ClipRunner>(open_model(*li, a.model, a.vocab));
  }
  for (const std::string& path : a.images) {
    std::string id = a.id;
    if (id.empty()) id = path.substr(path.find_last_of('/') + 1);
    index::check_item_id(id);
    if (li->get(id)) throw index::DuplicateItemId("id '" + id + "' is already in " + a.index + " (use mmkit index update)");
    Image im = decode_image_file(path);
    Tensor e = r->embed_images({im}, true);
    li->add({id, meta, im.width, im.height, index::thumbnail_png(im, kThumbSide), index::image_fingerprint(im)}, e.f32());
    std::printf("added %s\n", id.c_str());
  }
  std::fprintf(stderr, "%s: %lld items\n", a.index.c_str(), (long long)li->stats().count);
  return 0;
}

struct UpdateArgs {
  std::string index, model, vocab, id, metadata, image;
  int threads = 0;
};

int run_update(const UpdateArgs& a) {
  set_num_threads(a.threads);
  MMKIT_CHECK(!a.metadata.empty() || !a.image.empty(), "nothing to update: give --metadata and/or --image");
  auto li = index::LiveIndex::open(a.index, {});
  std::optional<json> meta;
  if (!a.metadata.empty()) meta = parse_json_option(a.metadata, "--metadata");
  if (!li->get(a.id)) throw index::UnknownItemId("no item with id '" + a.id + "' in " + a.index);
  if (a.image.empty()) {
    li->update(a.id, meta, nullptr);
  } else {
    ClipRunner r = open_model(*li, a.model, a.vocab);
    Image im = decode_image_file(a.image);
    Tensor e = r.embed_images({im}, true);
    li->update(a.id, meta, e.f32(),
               {"", {}, im.width, im.height, index::thumbnail_png(im, kThumbSide), index::image_fingerprint(im)});
  }
  std::printf("updated %s\n", a.id.c_str());
  return 0;
}

struct RemoveArgs {
  std::string index;
  std::vector<std::string> ids;
};

int run_remove(const RemoveArgs& a) {
  auto li = index::LiveIndex::open(a.index, {});
  for (const std::string& id : a.ids) {
    li->remove(id);
    std::printf("removed %s\n", id.c_str());
  }
  return 0;
}

struct DuplicatesArgs {
  std::string index, filter;
  double threshold = index::kDefaultDuplicateThreshold;
  bool json = false;
};

int run_duplicates(const DuplicatesArgs& a) {
  auto li = index::LiveIndex::open(a.index, {});
  const index::MetadataFilter f =
      index::MetadataFilter::parse(a.filter.empty() ? json() : parse_json_option(a.filter, "--filter"));
  auto groups = li->duplicate_groups(float(a.threshold), f);
  if (a.json) {
    std::cout << json{{"threshold", a.threshold}, {"groups", groups}}.dump() << "\n";
  } else {
    for (auto& g : groups) {
      for (size_t i = 0; i < g.size(); ++i) std::printf("%s%s", i ? " " : "", g[i].c_str());
      std::printf("\n");
    }
    std::fprintf(stderr, "%zu groups of near-duplicates at cosine >= %.3f\n", groups.size(), a.threshold);
  }
  return 0;
}

struct CompactArgs {
  std::string index;
};

int run_compact(const CompactArgs& a) {
  auto li = index::LiveIndex::open(a.index, {});
  const int64_t before = li->stats().wal_records;
  li->compact();
  std::printf("%s: %lld items, %lld log records compacted into live.snapshot\n", a.index.c_str(),
              (long long)li->stats().count, (long long)before);
  return 0;
}

}  // namespace

int run_live_search(const std::string& dir, const std::string& model, const std::string& vocab, const std::string& text,
                    const std::string& image, int top_k, const std::string& filter, double min_score, bool as_json) {
  auto li = index::LiveIndex::open(dir, {});
  const index::MetadataFilter f = index::MetadataFilter::parse(filter.empty() ? json() : parse_json_option(filter, "--filter"));
  ClipRunner r = open_model(*li, model, vocab);
  Tensor q = image.empty() ? r.embed_texts({text}, true) : r.embed_images({decode_image_file(image)}, true);
  auto hits = li->search(q.f32(), top_k, f, float(min_score));
  json out = json::array();
  for (size_t i = 0; i < hits.size(); ++i) {
    if (as_json)
      out.push_back({{"rank", i + 1}, {"id", hits[i].id}, {"score", hits[i].score}, {"metadata", hits[i].metadata},
                     {"width", hits[i].width}, {"height", hits[i].height}});
    else
      std::printf("%2zu  %.4f  %s  %s\n", i + 1, hits[i].score, hits[i].id.c_str(), hits[i].metadata.dump().c_str());
  }
  if (as_json) std::cout << json{{"results", out}}.dump() << "\n";
  return 0;
}

void add_live_index_commands(Cli& c, CLI::App* ix) {
  auto aa = std::make_shared<AddArgs>();
  auto* add = ix->add_subcommand("add", "add images to a live index (created with --model if missing); durable on return");
  add->add_option("--index", aa->index, "live index folder")->required();
  add_model_option(add, &aa->model, "CLIP or SigLIP")
      ->description("CLIP model: a .safetensors file, a run folder or a Hugging Face folder (default: the one the "
                    "index records; needed to create one)");
  add_vocab_option(add, &aa->vocab);
  add->add_option("--id", aa->id, "the item's id, for one image (default: the file name)");
  add->add_option("--metadata", aa->metadata, "JSON object stored with each image (default: {})");
  add->add_option("--compact-every", aa->compact_every, "compact the live index's log into its snapshot after this many records (0: only when asked)")
      ->capture_default_str();
  add->add_option("images", aa->images, "PNG/JPEG files")->required();
  add_threads_option(add, &aa->threads);
  c.on(add, aa, run_add);

  auto ua = std::make_shared<UpdateArgs>();
  auto* up = ix->add_subcommand("update", "replace an item's metadata and/or image in a live index");
  up->add_option("--index", ua->index, "live index folder")->required();
  up->add_option("--id", ua->id, "the item's id")->required();
  up->add_option("--metadata", ua->metadata, "JSON object replacing the item's metadata (default: keep it)");
  up->add_option("--image", ua->image, "PNG/JPEG replacing the item's image (default: keep it)");
  add_model_option(up, &ua->model, "CLIP or SigLIP")
      ->description("CLIP model for --image: a .safetensors file, a run folder or a Hugging Face folder (default: the "
                    "one the index records)");
  add_vocab_option(up, &ua->vocab);
  add_threads_option(up, &ua->threads);
  c.on(up, ua, run_update);

  auto ra = std::make_shared<RemoveArgs>();
  auto* rm = ix->add_subcommand("remove", "remove items from a live index by id");
  rm->add_option("--index", ra->index, "live index folder")->required();
  rm->add_option("ids", ra->ids, "item ids")->required();
  c.on(rm, ra, run_remove);

  auto da = std::make_shared<DuplicatesArgs>();
  auto* du = ix->add_subcommand("duplicates", "groups of near-duplicate images in a live index");
  du->add_option("--index", da->index, "live index folder")->required();
  du->add_option("--threshold", da->threshold,
                 "cosine similarity of image fingerprints at or above which two images are near-duplicates")
      ->capture_default_str();
  du->add_option("--filter", da->filter, "metadata filter of a live index, JSON (docs/LIVE_INDEX.md; default: every item)");
  add_json_flag(du, &da->json);
  c.on(du, da, run_duplicates);

  auto ca = std::make_shared<CompactArgs>();
  auto* co = ix->add_subcommand("compact", "write a live index's items into a new snapshot and empty its log");
  co->add_option("--index", ca->index, "live index folder")->required();
  c.on(co, ca, run_compact);
}

}  // namespace mmkit::cli
