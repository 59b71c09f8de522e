// Optimizer state in training checkpoints, shared by every trainer (ViT,
// CLIP, VQA, captioning). Directories and atomic text files are in
// util/file_util.h; SIGINT/SIGTERM handling in train/stop_signal.h.
#pragma once
#include <vector>

#include "mmkit/autograd/optimizer.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/io/safetensors.h"

namespace mmkit::train {

// AdamW moments as extra checkpoint tensors "optim.exp_avg.<param>" and
// "optim.exp_avg_sq.<param>".
std::vector<io::NamedTensor> optimizer_tensors(AdamW& opt);
// Restores them (shapes checked, messages name the checkpoint) and the step count.
void load_optimizer_state(const io::SafetensorsFile& ck, AdamW& opt, int64_t steps);
// --resume: the weights (every tensor but "optim.*", names and shapes
// checked) and then the optimizer state, from a training checkpoint.
void resume_from_checkpoint(const io::SafetensorsFile& ck, const std::vector<Parameter*>& params, AdamW& opt,
                            int64_t steps);

}  // namespace mmkit::train
