// internal::PortAccess: the one way for weave's own code to build a
// MessagePort around an endpoint or to reach a port's endpoint; the public
// header keeps both private. Owner thread only (of the port). Never blocks.
// Never allocates.
#pragma once

#include <memory>
#include <utility>

#include "channel/message_port.h"

namespace weave::internal {

struct PortAccess {
  [[nodiscard]] static MessagePort make(std::shared_ptr<Endpoint> ep) noexcept {
    return MessagePort(std::move(ep));
  }
  [[nodiscard]] static const std::shared_ptr<Endpoint>& endpoint(const MessagePort& port) noexcept {
    return port.ep_;
  }
};

}  // namespace weave::internal
