#pragma once

// The MPI world of a command launched by mpirun (Open MPI): its rank and size, and a gather of
// one string per rank. Only the command-line tool initialises MPI, and only when a launcher
// started it, so that a plain `glimpse eval` stays a plain process.

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace glimpse::cli {

class MpiWorld {
 public:
  // The world when the environment says an MPI launcher started this process (Open MPI's
  // OMPI_COMM_WORLD_SIZE, or PMIx's PMIX_RANK); nothing otherwise. Initialises MPI.
  static std::unique_ptr<MpiWorld> from_environment();
  ~MpiWorld();  // MPI_Finalize
  MpiWorld(const MpiWorld&) = delete;
  MpiWorld& operator=(const MpiWorld&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Every rank's `value`, in rank order, on rank 0; empty on the other ranks.
  std::vector<std::string> gather(const std::string& value) const;
  // Ends every rank with `code` (one rank's error must not leave the others waiting in a gather).
  [[noreturn]] void abort(int code) const;

 private:
  MpiWorld();
  int rank_ = 0, size_ = 1;
};

}  // namespace glimpse::cli
