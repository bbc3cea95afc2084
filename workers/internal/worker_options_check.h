// The Worker's check of its options (workers/worker_options.cc). Private to
// //workers.
#pragma once

#include "workers/worker_options.h"

namespace weave::internal {

// Throws std::invalid_argument naming the option and its allowed range.
// Any thread. Never blocks. Allocates (only to throw).
void validate_worker_options(const WorkerOptions& options);

}  // namespace weave::internal
