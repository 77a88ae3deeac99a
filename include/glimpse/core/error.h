#pragma once

// Error types shared by every layer. Messages name the file, key or tensor and say what was
// expected against what was found, so that the CLI can print them as one line.

#include <stdexcept>
#include <string>

namespace glimpse {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// A file whose bytes do not follow its format (safetensors header, JSON syntax, image data, ...).
class FormatError : public Error {
 public:
  using Error::Error;
};

// A configuration value that is missing, of the wrong type or out of range.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// Bad user input: a flag, a prompt, a tensor of the wrong shape, a missing file.
class InputError : public Error {
 public:
  using Error::Error;
};

// Valid input that glimpse does not support (yet): an unknown architecture, dtype or component.
class UnsupportedError : public Error {
 public:
  using Error::Error;
};

}  // namespace glimpse
