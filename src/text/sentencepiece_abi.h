#pragma once

// The C interface of the glimpse_sentencepiece plug-in (plugins/sentencepiece/). Only C types
// cross it; memory is freed by the side that allocated it (the *_free functions). The plug-in
// exists because libsentencepiece bundles and exports its own protobuf-lite, which clashes with
// the libprotobuf that libtorch loads; glimpse dlopens the plug-in with RTLD_LOCAL |
// RTLD_DEEPBIND so that sentencepiece binds to its own copy.

#include <stddef.h>
#include <stdint.h>

#define GLIMPSE_SPM_ABI_VERSION 1
#define GLIMPSE_SPM_API __attribute__((visibility("default")))

#ifdef __cplusplus
extern "C" {
#endif

typedef struct glimpse_spm_model glimpse_spm_model;

// The result of one encode: `size` pieces with their ids; piece i is
// piece_bytes[piece_offsets[i], piece_offsets[i + 1]).
typedef struct glimpse_spm_encoding {
  size_t size;
  int32_t* ids;
  size_t* piece_offsets;
  char* piece_bytes;
} glimpse_spm_encoding;

enum {
  GLIMPSE_SPM_NORMAL = 0,
  GLIMPSE_SPM_UNKNOWN = 1,
  GLIMPSE_SPM_CONTROL = 2,
  GLIMPSE_SPM_BYTE = 3,
  GLIMPSE_SPM_UNUSED = 4
};

GLIMPSE_SPM_API int glimpse_spm_abi_version(void);

// Loads a serialized ModelProto. On failure returns NULL and writes a NUL-terminated message
// into `error` (at most error_size bytes).
GLIMPSE_SPM_API glimpse_spm_model* glimpse_spm_load(const char* bytes, size_t size, char* error,
                                                    size_t error_size);
GLIMPSE_SPM_API void glimpse_spm_free(glimpse_spm_model* model);

GLIMPSE_SPM_API int32_t glimpse_spm_piece_size(const glimpse_spm_model* model);
// The piece of `id`; the pointer stays valid until glimpse_spm_free. Returns 0 when id is out of
// range.
GLIMPSE_SPM_API int glimpse_spm_id_to_piece(const glimpse_spm_model* model, int32_t id,
                                            const char** piece, size_t* size);
// GLIMPSE_SPM_NORMAL, ... for a valid id, -1 otherwise.
GLIMPSE_SPM_API int glimpse_spm_piece_type(const glimpse_spm_model* model, int32_t id);
// -1 for no such token (0: unk, 1: bos, 2: eos, 3: pad).
GLIMPSE_SPM_API int32_t glimpse_spm_special_id(const glimpse_spm_model* model, int which);

// Encodes UTF-8 text. Returns NULL on failure (message in `error`).
GLIMPSE_SPM_API glimpse_spm_encoding* glimpse_spm_encode(const glimpse_spm_model* model,
                                                         const char* text, size_t size, char* error,
                                                         size_t error_size);
GLIMPSE_SPM_API void glimpse_spm_encoding_free(glimpse_spm_encoding* encoding);

// Decodes pieces (sentencepiece's DecodePieces). Returns a NUL-terminated string owned by the
// plug-in (free with glimpse_spm_string_free) and its length in *out_size, or NULL on failure.
GLIMPSE_SPM_API char* glimpse_spm_decode_pieces(const glimpse_spm_model* model,
                                                const char* const* pieces, const size_t* sizes,
                                                size_t count, size_t* out_size, char* error,
                                                size_t error_size);
GLIMPSE_SPM_API void glimpse_spm_string_free(char* text);

#ifdef __cplusplus
}
#endif
