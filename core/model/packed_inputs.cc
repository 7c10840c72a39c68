#include "core/model/packed_inputs.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace dylora {

PackedInputs PackRows(const std::vector<PackedRow>& rows,
                      const EncoderConfig& config, c10::Device device) {
  int64_t tokens = 0;
  int64_t longest = 0;
  for (const PackedRow& row : rows) {
    const auto length = static_cast<int64_t>(row.ids.size());
    tokens += length;
    longest = std::max(longest, length);
  }
  at::Tensor ids = at::empty({tokens}, at::kLong);
  at::Tensor types = at::empty({tokens}, at::kLong);
  at::Tensor positions = at::empty({tokens}, at::kLong);
  at::Tensor index = at::empty({tokens}, at::kLong);
  const auto batch = static_cast<int64_t>(rows.size());
  at::Tensor mask = at::zeros({batch, longest}, at::kLong);
  int64_t* ids_out = ids.data_ptr<int64_t>();
  int64_t* types_out = types.data_ptr<int64_t>();
  int64_t* positions_out = positions.data_ptr<int64_t>();
  int64_t* index_out = index.data_ptr<int64_t>();
  int64_t* mask_out = mask.data_ptr<int64_t>();
  bool padded = false;
  int64_t t = 0;
  for (int64_t r = 0; r < batch; ++r) {
    const PackedRow& row = rows[static_cast<size_t>(r)];
    const auto length = static_cast<int64_t>(row.ids.size());
    padded |= length != longest;
    int64_t real_so_far = 0;  // RoBERTa counts non-pad tokens
    for (int64_t i = 0; i < length; ++i, ++t) {
      const int64_t id = row.ids[static_cast<size_t>(i)];
      ids_out[t] = id;
      types_out[t] = row.type_ids[static_cast<size_t>(i)];
      if (config.family == EncoderFamily::kRoberta) {
        // HF create_position_ids_from_input_ids: a pad id keeps padding_idx,
        // real tokens count up from padding_idx + 1.
        const bool real = id != config.pad_token_id;
        real_so_far += real ? 1 : 0;
        positions_out[t] =
            real ? config.pad_token_id + real_so_far : config.pad_token_id;
      } else {
        positions_out[t] = config.position_offset + i;
      }
      index_out[t] = r * longest + i;
      mask_out[r * longest + i] = 1;
    }
  }
  PackedInputs packed;
  packed.input_ids = ids.to(device);
  packed.token_type_ids = types.to(device);
  packed.position_ids = positions.to(device);
  packed.padded_index = index.to(device);
  if (padded) packed.attention_mask = mask.to(device);
  packed.rows = batch;
  packed.longest = longest;
  return packed;
}

}  // namespace dylora
