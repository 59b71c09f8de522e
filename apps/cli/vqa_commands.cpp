// `mmkit data sort-of-clevr`: the Sort-of-CLEVR visual question answering
// data set (data/sort_of_clevr.h).
#include <cstdio>

#include "cli.h"
#include "mmkit/data/sort_of_clevr.h"

namespace mmkit::cli {
namespace {

int run_data_soc(const data::SortOfClevrOptions& o) {
  data::write_sort_of_clevr(o);
  std::printf("wrote %lld train + %lld test images (20 questions each) to %s\n",
              (long long)o.train_images, (long long)o.test_images, o.out_dir.c_str());
  return 0;
}

}  // namespace

void add_vqa_commands(Cli& c) {
  auto da = std::make_shared<data::SortOfClevrOptions>();
  auto* ds = c.data->add_subcommand("sort-of-clevr",
                                    "generate Sort-of-CLEVR (PNG images + JSONL questions, train/test split)");
  ds->add_option("--out", da->out_dir, "output directory")->required();
  ds->add_option("--train", da->train_images, "training images")->capture_default_str();
  ds->add_option("--test", da->test_images, "held-out test images")->capture_default_str();
  ds->add_option("--seed", da->seed)->capture_default_str();
  c.on(ds, da, run_data_soc);
}

}  // namespace mmkit::cli
