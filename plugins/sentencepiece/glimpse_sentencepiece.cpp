// The glimpse_sentencepiece plug-in: sentencepiece behind a plain C interface
// (src/text/sentencepiece_abi.h). No C++ type or exception crosses the boundary.
#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "text/sentencepiece_abi.h"

struct glimpse_spm_model {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

void set_error(char* error, size_t error_size, const std::string& message) {
  if (!error || error_size == 0) return;
  const size_t n = message.size() < error_size - 1 ? message.size() : error_size - 1;
  std::memcpy(error, message.data(), n);
  error[n] = '\0';
}

bool valid_id(const glimpse_spm_model* model, int32_t id) {
  return model && id >= 0 && id < model->processor.GetPieceSize();
}

}  // namespace

extern "C" {

int glimpse_spm_abi_version(void) {
  return GLIMPSE_SPM_ABI_VERSION;
}

glimpse_spm_model* glimpse_spm_load(const char* bytes, size_t size, char* error,
                                    size_t error_size) {
  try {
    auto* model = new glimpse_spm_model;
    const auto status = model->processor.LoadFromSerializedProto(absl::string_view(bytes, size));
    if (!status.ok()) {
      set_error(error, error_size, status.ToString());
      delete model;
      return nullptr;
    }
    return model;
  } catch (const std::exception& e) {
    set_error(error, error_size, e.what());
  } catch (...) {
    set_error(error, error_size, "unknown error");
  }
  return nullptr;
}

void glimpse_spm_free(glimpse_spm_model* model) {
  delete model;
}

int32_t glimpse_spm_piece_size(const glimpse_spm_model* model) {
  return model ? model->processor.GetPieceSize() : 0;
}

int glimpse_spm_id_to_piece(const glimpse_spm_model* model, int32_t id, const char** piece,
                            size_t* size) {
  if (!valid_id(model, id)) return 0;
  const std::string& p = model->processor.IdToPiece(id);
  *piece = p.data();
  *size = p.size();
  return 1;
}

int glimpse_spm_piece_type(const glimpse_spm_model* model, int32_t id) {
  if (!valid_id(model, id)) return -1;
  const auto& sp = model->processor;
  if (sp.IsUnknown(id)) return GLIMPSE_SPM_UNKNOWN;
  if (sp.IsControl(id)) return GLIMPSE_SPM_CONTROL;
  if (sp.IsByte(id)) return GLIMPSE_SPM_BYTE;
  if (sp.IsUnused(id)) return GLIMPSE_SPM_UNUSED;
  return GLIMPSE_SPM_NORMAL;
}

int32_t glimpse_spm_special_id(const glimpse_spm_model* model, int which) {
  if (!model) return -1;
  switch (which) {
    case 0:
      return model->processor.unk_id();
    case 1:
      return model->processor.bos_id();
    case 2:
      return model->processor.eos_id();
    case 3:
      return model->processor.pad_id();
    default:
      return -1;
  }
}

glimpse_spm_encoding* glimpse_spm_encode(const glimpse_spm_model* model, const char* text,
                                         size_t size, char* error, size_t error_size) {
  if (!model) {
    set_error(error, error_size, "no model");
    return nullptr;
  }
  try {
    const auto spt = model->processor.EncodeAsImmutableProto(absl::string_view(text, size));
    const size_t n = spt.pieces_size();
    size_t bytes = 0;
    for (size_t i = 0; i < n; ++i) bytes += spt.pieces(static_cast<int>(i)).piece().size();
    auto* enc = static_cast<glimpse_spm_encoding*>(std::calloc(1, sizeof(glimpse_spm_encoding)));
    if (!enc) throw std::bad_alloc();
    enc->size = n;
    enc->ids = static_cast<int32_t*>(std::malloc(sizeof(int32_t) * (n ? n : 1)));
    enc->piece_offsets = static_cast<size_t*>(std::malloc(sizeof(size_t) * (n + 1)));
    enc->piece_bytes = static_cast<char*>(std::malloc(bytes ? bytes : 1));
    if (!enc->ids || !enc->piece_offsets || !enc->piece_bytes) {
      glimpse_spm_encoding_free(enc);
      throw std::bad_alloc();
    }
    size_t offset = 0;
    for (size_t i = 0; i < n; ++i) {
      const auto piece = spt.pieces(static_cast<int>(i));
      enc->ids[i] = static_cast<int32_t>(piece.id());
      enc->piece_offsets[i] = offset;
      std::memcpy(enc->piece_bytes + offset, piece.piece().data(), piece.piece().size());
      offset += piece.piece().size();
    }
    enc->piece_offsets[n] = offset;
    return enc;
  } catch (const std::exception& e) {
    set_error(error, error_size, e.what());
  } catch (...) {
    set_error(error, error_size, "unknown error");
  }
  return nullptr;
}

void glimpse_spm_encoding_free(glimpse_spm_encoding* encoding) {
  if (!encoding) return;
  std::free(encoding->ids);
  std::free(encoding->piece_offsets);
  std::free(encoding->piece_bytes);
  std::free(encoding);
}

char* glimpse_spm_decode_pieces(const glimpse_spm_model* model, const char* const* pieces,
                                const size_t* sizes, size_t count, size_t* out_size, char* error,
                                size_t error_size) {
  if (!model) {
    set_error(error, error_size, "no model");
    return nullptr;
  }
  try {
    std::vector<std::string> list;
    list.reserve(count);
    for (size_t i = 0; i < count; ++i) list.emplace_back(pieces[i], sizes[i]);
    std::string text;
    const auto status = model->processor.Decode(list, &text);
    if (!status.ok()) {
      set_error(error, error_size, status.ToString());
      return nullptr;
    }
    char* out = static_cast<char*>(std::malloc(text.size() + 1));
    if (!out) throw std::bad_alloc();
    std::memcpy(out, text.data(), text.size());
    out[text.size()] = '\0';
    *out_size = text.size();
    return out;
  } catch (const std::exception& e) {
    set_error(error, error_size, e.what());
  } catch (...) {
    set_error(error, error_size, "unknown error");
  }
  return nullptr;
}

void glimpse_spm_string_free(char* text) {
  std::free(text);
}

}  // extern "C"
